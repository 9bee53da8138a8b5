package deploycheck

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/featurestore/featurestore/internal/testenv"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// dockerfileStages parses the Dockerfile into its stages (instructions from
// one FROM to the next); args holds the ARGs declared before the first FROM.
func dockerfileStages(t *testing.T) (stages [][]instruction, args map[string]string) {
	t.Helper()
	args = map[string]string{}
	lines := strings.Split(string(readFile(t, filepath.Join(testenv.RepoRoot(t), "Dockerfile"))), "\n")
	for i := 0; i < len(lines); i++ {
		start, text := i+1, strings.TrimSpace(lines[i])
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		for strings.HasSuffix(text, `\`) && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				continue
			}
			text = strings.TrimSuffix(text, `\`) + " " + next
		}
		cmd, rest, _ := strings.Cut(text, " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(rest)}
		switch {
		case in.cmd == "FROM":
			stages = append(stages, []instruction{in})
		case len(stages) == 0 && in.cmd == "ARG":
			name, def, _ := strings.Cut(in.args, "=")
			args[name] = def
		case len(stages) == 0:
			t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
		default:
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	return stages, args
}

// dockerfileUID is the user id the final stage runs as.
func dockerfileUID(t *testing.T) string {
	t.Helper()
	stages, _ := dockerfileStages(t)
	var user string
	for _, in := range stages[len(stages)-1] {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	return uid
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	stages, args := dockerfileStages(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build (builder and runtime)", len(stages))
	}

	// Base images: tagged, never latest.
	for _, st := range stages {
		fields := strings.Fields(st[0].args)
		var image string
		for _, f := range fields {
			if !strings.HasPrefix(f, "--") {
				image = f
				break
			}
		}
		for name, def := range args {
			image = strings.ReplaceAll(image, "${"+name+"}", def)
		}
		if _, tag, ok := strings.Cut(filepath.Base(image), ":"); !ok || tag == "" || tag == "latest" || strings.Contains(tag, "$") {
			t.Errorf("Dockerfile:%d: base image %q is not pinned to a tag", st[0].line, image)
		}
	}

	// The build: static, reproducible, stamped with the version.
	var build string
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st {
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
				build = in.args
			}
		}
	}
	for _, want := range []string{
		"CGO_ENABLED=0", "-trimpath", "-s -w", "--mount=type=cache,target=/go/pkg/mod", "./cmd/featurestore",
		"-X github.com/featurestore/featurestore/internal/app.version=${VERSION}",
		"-X github.com/featurestore/featurestore/internal/app.revision=${REVISION}",
	} {
		if !strings.Contains(build, want) {
			t.Errorf("the go build step does not have %q:\n%s", want, build)
		}
	}
	// -X on a variable that does not exist is silently ignored by the linker.
	for _, name := range []string{"version", "revision"} {
		if !appStringVar(t, name) {
			t.Errorf("internal/app has no package-level string variable %q for -ldflags -X", name)
		}
	}

	final := stages[len(stages)-1]
	if strings.Contains(final[0].args, "golang") {
		t.Errorf("Dockerfile:%d: the final stage is the Go toolchain image", final[0].line)
	}
	last := map[string]instruction{}
	envs := map[string]string{}
	var chowned []string
	for _, in := range final {
		last[in.cmd] = in
		if in.cmd == "ENV" {
			k, v, _ := strings.Cut(in.args, "=")
			envs[k] = v
		}
		if in.cmd == "COPY" && strings.Contains(in.args, "--chown=") {
			f := strings.Fields(in.args)
			chowned = append(chowned, f[len(f)-1])
		}
	}
	uid := dockerfileUID(t)
	if n, err := strconv.Atoi(uid); uid == "" || uid == "root" || (err == nil && n == 0) {
		t.Errorf("final stage runs as %q: want a non-root USER", uid)
	}
	if !slices.Contains(strings.Fields(last["EXPOSE"].args), strconv.Itoa(servicePort(t))) {
		t.Errorf("EXPOSE %q: want the service port %d", last["EXPOSE"].args, servicePort(t))
	}
	// The embedded store's directory is set and owned by the runtime user.
	dir := envs["FEATURESTORE_DATA_DIR"]
	if dir == "" || !slices.Contains(chowned, dir) {
		t.Errorf("FEATURESTORE_DATA_DIR=%q: want it set and COPY --chown'ed to the runtime user (chowned: %v)", dir, chowned)
	}
	var entrypoint []string
	if err := json.Unmarshal([]byte(last["ENTRYPOINT"].args), &entrypoint); err != nil || len(entrypoint) == 0 {
		t.Errorf("ENTRYPOINT %q: want the exec (JSON) form, so the binary is PID 1 and gets SIGTERM", last["ENTRYPOINT"].args)
	}
}

// appStringVar reports whether internal/app declares a package-level
// variable name initialised with a string literal.
func appStringVar(t *testing.T, name string) bool {
	t.Helper()
	pkgs, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "internal", "app", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range pkgs {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if id.Name != name || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						return true
					}
				}
			}
		}
	}
	return false
}

// TestDockerignore checks the allowlist: everything the build reads is in
// the context (the packages of ./cmd/featurestore and their embedded files,
// go.mod, go.sum), and nothing else, .env in particular.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	var patterns []string
	for _, line := range strings.Split(string(readFile(t, filepath.Join(root, ".dockerignore"))), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	if len(patterns) == 0 || patterns[0] != "*" {
		t.Fatalf(".dockerignore does not start with *: the context would include .env, .git and every local file")
	}
	included := map[string]bool{}
	for _, p := range patterns[1:] {
		if name, ok := strings.CutPrefix(p, "!"); ok {
			included[strings.TrimSuffix(name, "/")] = true
		}
	}
	for _, secret := range []string{".env", ".git"} {
		if included[secret] {
			t.Errorf(".dockerignore re-includes %s", secret)
		}
	}

	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the build's packages")
	}
	cmd := exec.CommandContext(t.Context(), goTool, "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/featurestore")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	need := map[string]bool{"go.mod": true, "go.sum": true}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		need[strings.Split(filepath.ToSlash(rel), "/")[0]] = true
	}
	for name := range need {
		if !included[name] {
			t.Errorf(".dockerignore leaves out %s, which the build of ./cmd/featurestore reads", name)
		}
	}
}
