package deploycheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/testenv"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serviceFlags are the feature store's settings as the code declares them in
// internal/app (config.go, security_config.go, ...): environment variable
// name → default as written in
// the source (string defaults unquoted, other defaults as Go expressions,
// empty when the declaring helper takes none).
// Reading the source keeps the deployment files honest about variable names
// without exporting anything from the app.
func serviceFlags(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "internal", "app", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]string{}
	for _, path := range files {
		if !strings.HasSuffix(path, "_test.go") {
			declaredFlags(t, path, flags)
		}
	}
	// A refactoring of config.go must fail here, not make every check vacuous.
	for _, want := range []string{"FEATURESTORE_ADDR", "FEATURESTORE_POSTGRES_URL", "FEATURESTORE_REDIS_URL", "FEATURESTORE_SHUTDOWN_DELAY", "FEATURESTORE_SHUTDOWN_TIMEOUT", "FEATURESTORE_DATA_DIR", "FEATURESTORE_AUTH_TOKENS_FILE"} {
		if _, ok := flags[want]; !ok {
			t.Fatalf("internal/app: no flag declared for %s (found %d flags); update serviceFlags", want, len(flags))
		}
	}
	return flags
}

// declaredFlags adds the flags the Go file at path declares to flags.
func declaredFlags(t *testing.T, path string, flags map[string]string) {
	t.Helper()
	src := readFile(t, path)
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		// The declaring helpers of flagSet: helper(&cfg.Field, "flag-name", [default,] usage).
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 3 {
			return true
		}
		if _, ok := call.Fun.(*ast.Ident); !ok {
			return true
		}
		if ref, ok := call.Args[0].(*ast.UnaryExpr); !ok || ref.Op != token.AND {
			return true
		}
		lit, ok := call.Args[1].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		name, err := strconv.Unquote(lit.Value)
		if err != nil {
			t.Fatal(err)
		}
		var def string
		if len(call.Args) == 4 {
			def = string(src[fset.Position(call.Args[2].Pos()).Offset:fset.Position(call.Args[2].End()).Offset])
			if s, err := strconv.Unquote(def); err == nil {
				def = s
			}
		}
		flags["FEATURESTORE_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = def
		return true
	})
}

// checkServiceEnv reports every FEATURESTORE_* name the service does not read.
func checkServiceEnv(t *testing.T, where string, names []string) {
	t.Helper()
	flags := serviceFlags(t)
	for _, name := range names {
		if !strings.HasPrefix(name, "FEATURESTORE_") {
			continue
		}
		if _, ok := flags[name]; !ok {
			t.Errorf("%s: %s is not a setting of the service (internal/app)", where, name)
		}
	}
}

// servicePort is the port of the service's default listen address (--addr).
func servicePort(t *testing.T) int {
	t.Helper()
	addr := serviceFlags(t)["FEATURESTORE_ADDR"]
	i := strings.LastIndexByte(addr, ':')
	port, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("default --addr %q has no port", addr)
	}
	return port
}

// durationDefault is the default of a duration flag, whose source text is
// a Go expression like 20*time.Second, time.Hour or 0.
func durationDefault(t *testing.T, env string) time.Duration {
	t.Helper()
	expr := serviceFlags(t)[env]
	units := map[string]time.Duration{"time.Millisecond": time.Millisecond, "time.Second": time.Second, "time.Minute": time.Minute, "time.Hour": time.Hour}
	n, unit, ok := strings.Cut(expr, "*")
	if !ok {
		n, unit = "1", expr
	}
	if expr == "0" {
		return 0
	}
	k, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || units[strings.TrimSpace(unit)] == 0 {
		t.Fatalf("default of %s is %q: not a duration this test understands", env, expr)
	}
	return time.Duration(k) * units[strings.TrimSpace(unit)]
}
