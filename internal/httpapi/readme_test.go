package httpapi_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/testenv"
)

// readmeRequest is one curl command of the README against the API.
type readmeRequest struct {
	line           int
	method, target string
	body           string
	header         []string // name, value pairs
}

// TestREADMEExamples runs the README's curl commands against the API
// (localhost:8001), in order, through the real router, and wants each
// answered 2xx and matching the OpenAPI description. It runs them with
// today's clock and with a clock ten years on: an example that depends on
// the date it is run (an as_of before anything was written) fails here.
// Examples against a server with authentication on are in bash blocks, not
// sh: they answer 401 and 403 on purpose, and TestAuthDoneMeans and
// TestAuthEndToEnd prove them.
func TestREADMEExamples(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	reqs := readmeRequests(t, readFile(t, filepath.Join(root, "README.md")))
	if len(reqs) < 10 {
		t.Fatalf("found %d curl commands against localhost:8001 in README.md, want the examples of \"Use it\"", len(reqs))
	}
	for _, when := range []struct {
		name string
		now  time.Time
	}{{"today", time.Now()}, {"in ten years", time.Now().AddDate(10, 0, 0)}} {
		t.Run(when.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, backend{"embedded", openEmbedded})
			e.clock.mu.Lock()
			e.clock.t = when.now.UTC()
			e.clock.mu.Unlock()
			for _, r := range reqs {
				body := r.body
				if file, ok := strings.CutPrefix(body, "@"); ok {
					body = readFile(t, filepath.Join(root, file))
				}
				w := serve(t, e.router, r.method, r.target, body, r.header...)
				if w.Code < 200 || w.Code > 299 {
					t.Errorf("README.md:%d: %s %s answered %d: %s", r.line, r.method, r.target, w.Code, w.Body)
				}
			}
		})
	}
}

var fence = regexp.MustCompile("(?s)```sh\n(.*?)```")

// readmeRequests parses the curl commands of the README's sh blocks that
// address localhost:8001.
func readmeRequests(t *testing.T, doc string) []readmeRequest {
	t.Helper()
	var out []readmeRequest
	for _, m := range fence.FindAllStringSubmatchIndex(doc, -1) {
		block := doc[m[2]:m[3]]
		firstLine := strings.Count(doc[:m[2]], "\n") + 1
		for _, cmd := range shellCommands(t, block) {
			if len(cmd.words) == 0 || cmd.words[0] != "curl" {
				continue
			}
			r, ok := curlRequest(t, cmd.words[1:])
			if ok && cmd.subst {
				t.Errorf("README.md:%d: an API example uses a shell substitution: its answer would depend on when it runs", firstLine+cmd.line)
			}
			if ok {
				r.line = firstLine + cmd.line
				out = append(out, r)
			}
		}
	}
	return out
}

type shellCommand struct {
	line  int // within the block, from 0
	words []string
	// subst is set when the command uses $ or a backquote (a substitution
	// whose value depends on when and where it runs).
	subst bool
}

// shellCommands splits a block into commands of words: single and double
// quotes (which may span lines), backslash-newline continuations and
// comments. Enough for the README; anything fancier fails the test.
func shellCommands(t *testing.T, block string) []shellCommand {
	t.Helper()
	var (
		cmds    []shellCommand
		cur     shellCommand
		word    strings.Builder
		inWord  bool
		line    int
		runes   = []rune(block)
		endWord = func() {
			if inWord {
				cur.words = append(cur.words, word.String())
				word.Reset()
				inWord = false
			}
		}
	)
	for i := 0; i < len(runes); i++ {
		c := runes[i]
		switch {
		case c == '\\' && i+1 < len(runes) && runes[i+1] == '\n':
			i++
			line++
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(runes) && runes[j] != c {
				j++
			}
			if j == len(runes) {
				t.Fatalf("README: unterminated %c quote in a sh block", c)
			}
			word.WriteString(string(runes[i+1 : j]))
			line += strings.Count(string(runes[i+1:j]), "\n")
			inWord, i = true, j
		case c == '$' || c == '`':
			cur.subst = true
			word.WriteRune(c)
			inWord = true
		case c == '#' && !inWord:
			for i < len(runes) && runes[i] != '\n' {
				i++
			}
			i--
		case c == '\n':
			endWord()
			if len(cur.words) > 0 {
				cmds = append(cmds, cur)
			}
			line++
			cur = shellCommand{line: line}
		case c == ' ' || c == '\t':
			endWord()
		default:
			word.WriteRune(c)
			inWord = true
		}
	}
	endWord()
	if len(cur.words) > 0 {
		cmds = append(cmds, cur)
	}
	return cmds
}

// curlRequest turns curl's arguments into a request; ok is false for a
// command against another address than the API's.
func curlRequest(t *testing.T, args []string) (r readmeRequest, ok bool) {
	t.Helper()
	url := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 >= len(args) {
				t.Fatalf("README: curl %s without a value", a)
			}
			i++
			return args[i]
		}
		switch a {
		case "-s", "-sS", "-f", "-fsS":
		case "-o", "--output": // where curl saves the answer
			next()
		case "-X":
			r.method = next()
		case "-H":
			name, value, _ := strings.Cut(next(), ":")
			r.header = append(r.header, name, strings.TrimSpace(value))
		case "-d", "--data-binary", "--data":
			r.body = next()
		default:
			if strings.HasPrefix(a, "-") {
				t.Fatalf("README: curl option %s is not understood by this test", a)
			}
			url = a
		}
	}
	target, found := strings.CutPrefix(url, "localhost:8001")
	if !found {
		return r, false
	}
	if r.method == "" {
		r.method = http.MethodGet
		if r.body != "" {
			r.method = http.MethodPost
		}
	}
	r.target = target
	return r, true
}

// TestREADMEShellParser: the parser the README test relies on.
func TestREADMEShellParser(t *testing.T) {
	t.Parallel()
	block := "curl -s -X PUT localhost:8001/a -H 'Content-Type: application/json' -d '{\n  \"k\": 1}'\n" +
		"curl -s 'localhost:8001/b?x=1'   # a comment\n" +
		"TMDB=x go run . crawl \\\n  --ingest\n" +
		"curl localhost:9090/-/reload\n"
	var got []string
	for _, c := range shellCommands(t, block) {
		got = append(got, fmt.Sprintf("%d %q", c.line, c.words))
	}
	want := []string{
		`0 ["curl" "-s" "-X" "PUT" "localhost:8001/a" "-H" "Content-Type: application/json" "-d" "{\n  \"k\": 1}"]`,
		`2 ["curl" "-s" "localhost:8001/b?x=1"]`,
		`3 ["TMDB=x" "go" "run" "." "crawl" "--ingest"]`,
		`5 ["curl" "localhost:9090/-/reload"]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("shellCommands:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r, ok := curlRequest(t, []string{"-s", "-X", "PUT", "localhost:8001/a", "-d", "{}"})
	if !ok || r.method != "PUT" || r.target != "/a" || r.body != "{}" {
		t.Errorf("curlRequest = %+v, %v", r, ok)
	}
	if _, ok := curlRequest(t, []string{"localhost:9090/-/reload"}); ok {
		t.Error("a command against Prometheus was taken for the API")
	}
}
