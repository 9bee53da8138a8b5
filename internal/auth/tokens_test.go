package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/reload"
)

func digest(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

func TestParseTokenFileRefusesMistakes(t *testing.T) {
	t.Parallel()
	ok := digest("a-token")
	for _, tc := range []struct {
		name, file, want string
	}{
		{"not YAML", "tokens: [", "not a token file"},
		{"unknown key", "tokens:\n  - {name: a, role: reader, sha256: " + ok + ", expires: never}", "field expires not found"},
		{"misspelt top key", "token: []", "field token not found"},
		{"bad name", "tokens: [{name: 'CI Ingest', role: reader, sha256: " + ok + "}]", "name must match"},
		{"reserved name", "tokens: [{name: anonymous, role: reader, sha256: " + ok + "}]", "name anonymous is reserved"},
		{"unknown role", "tokens: [{name: a, role: root, sha256: " + ok + "}]", `unknown role "root"`},
		{"short digest", "tokens: [{name: a, role: reader, sha256: abc}]", "sha256 must be 64 hex digits"},
		{"token instead of digest", "tokens: [{name: a, role: reader, sha256: fst_abcdef}]", "sha256 must be 64 hex digits"},
		{"digest of nothing", "tokens: [{name: a, role: reader, sha256: " + digest("") + "}]", "digest of an empty token"},
		{"name twice", "tokens: [{name: a, role: reader, sha256: " + ok + "}, {name: a, role: admin, sha256: " + digest("b") + "}]", "tokens[1] (a): name is used twice"},
		{"digest twice", "tokens: [{name: a, role: reader, sha256: " + ok + "}, {name: b, role: admin, sha256: " + ok + "}]", "same sha256 as a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseTokenFile([]byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "a-token") {
				t.Errorf("the error quotes a token: %v", err)
			}
		})
	}
}

func TestTokenLookup(t *testing.T) {
	t.Parallel()
	set, err := ParseTokenFile([]byte(`
tokens:
  - {name: dashboards, role: reader, sha256: ` + digest("r-token") + `}
  - name: ci-ingest
    role: writer
    sha256: ` + strings.ToUpper(digest("w-token")) + `
  - {name: ops, role: Admin, sha256: ` + digest("a-token") + `}
`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ci-ingest", "dashboards", "ops"}, set.Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	for token, want := range map[string]Principal{
		"r-token": {Name: "dashboards", Label: "dashboards", Role: Reader},
		"w-token": {Name: "ci-ingest", Label: "ci-ingest", Role: Writer},
		"a-token": {Name: "ops", Label: "ops", Role: Admin},
	} {
		got, ok := set.Lookup(token)
		if !ok || got != want {
			t.Errorf("Lookup(%q) = %+v %v, want %+v", token, got, ok, want)
		}
	}
	for _, token := range []string{"", "r-token ", "R-TOKEN", digest("r-token")} {
		if p, ok := set.Lookup(token); ok {
			t.Errorf("Lookup(%q) found %+v", token, p)
		}
	}
	empty, err := ParseTokenFile(nil)
	if err != nil || empty.Len() != 0 {
		t.Errorf("empty file: %v, %d tokens", err, empty.Len())
	}
}

func TestNewTokenMakesAnEntryThatParses(t *testing.T) {
	t.Parallel()
	token, entry, err := NewToken("ci-ingest", Writer)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, TokenPrefix) || len(token) != len(TokenPrefix)+43 || !validB64Token(token) {
		t.Errorf("token %q: want fst_ and 43 base64url characters", token)
	}
	set, err := ParseTokenFile([]byte("tokens:\n" + entry + "\n"))
	if err != nil {
		t.Fatalf("entry %q: %v", entry, err)
	}
	if p, ok := set.Lookup(token); !ok || p.Role != Writer || p.Name != "ci-ingest" {
		t.Errorf("Lookup = %+v %v", p, ok)
	}
	if strings.Contains(entry, token) {
		t.Error("the entry holds the token itself")
	}
	other, _, _ := NewToken("ci-ingest", Writer)
	if other == token {
		t.Error("two tokens are equal")
	}
	for _, bad := range []struct {
		name string
		role Role
	}{{"Bad Name", Reader}, {"jwt", Reader}, {"x", Anyone}} {
		if _, _, err := NewToken(bad.name, bad.role); err == nil {
			t.Errorf("NewToken(%q, %v) succeeded", bad.name, bad.role)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticateBearerTokens(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	writeFile(t, path, "tokens: [{name: ci, role: writer, sha256: "+digest("fst_w")+"}]")
	a, err := Open(Options{TokensFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := a.Authenticate("Bearer fst_w"); err != nil || p.Name != "ci" || p.Role != Writer {
		t.Errorf("good token: %+v %v", p, err)
	}
	if p, err := a.Authenticate("bearer   fst_w"); err != nil || p.Name != "ci" {
		t.Errorf("scheme is case-insensitive: %+v %v", p, err)
	}
	if _, err := a.Authenticate(""); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no header: %v", err)
	}
	for header, reason := range map[string]string{
		"Basic dXNlcjpwYXNz":                    "must be \"Bearer <token>\"",
		"Bearer":                                "must be \"Bearer <token>\"",
		"Bearer ":                               "empty",
		"Bearer fst_w x":                        "characters a token cannot have",
		"Bearer fst_x":                          "unknown token",
		"Bearer a.b.c":                          "unknown token", // no JWT key: not tried as a JWT
		"Bearer " + strings.Repeat("a", 9000):   "longer than",
		"Bearer fst_w\x00":                      "characters a token cannot have",
		"Bearer " + strings.Repeat("=", 3):      "characters a token cannot have",
		"Bearer " + digest("fst_w"):             "unknown token",
		"Bearer fst_w" + strings.Repeat("=", 2): "unknown token",
	} {
		_, err := a.Authenticate(header)
		var ce *CredentialError
		if !errors.As(err, &ce) || !strings.Contains(ce.Reason, reason) {
			t.Errorf("%.40q: err = %v, want a credential error saying %q", header, err, reason)
		}
	}

	// The token file is reloaded: a new token works, a removed one stops.
	writeFile(t, path, "tokens: [{name: ci-2, role: reader, sha256: "+digest("fst_r")+"}]")
	files := a.Files()
	if len(files) != 1 {
		t.Fatalf("Files() = %d files", len(files))
	}
	if res, err := files[0].Reload(false); res != reload.Reloaded {
		t.Fatalf("reload: %v %v", res, err)
	}
	if _, err := a.Authenticate("Bearer fst_w"); err == nil {
		t.Error("a removed token still works")
	}
	if p, err := a.Authenticate("Bearer fst_r"); err != nil || p.Role != Reader {
		t.Errorf("new token: %+v %v", p, err)
	}
	if diff := cmp.Diff([]string{"ci-2"}, a.TokenNames()); diff != "" {
		t.Errorf("TokenNames (-want +got):\n%s", diff)
	}
}

func TestOpenWithoutFilesIsOff(t *testing.T) {
	t.Parallel()
	a, err := Open(Options{})
	if a != nil || err != nil {
		t.Errorf("Open(nothing) = %v, %v; want nil, nil", a, err)
	}
	if a.TokenNames() != nil {
		t.Error("a nil Authenticator has token names")
	}
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	writeFile(t, path, "tokens: [{name: a, role: superuser, sha256: "+digest("x")+"}]")
	if _, err := Open(Options{TokensFile: path}); err == nil || !strings.Contains(err.Error(), "tokens file "+path) {
		t.Errorf("bad token file: err = %v, want it to name the file", err)
	}
}

func TestClientToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	writeFile(t, file, "fst_abc\n")
	for _, tc := range []struct {
		file, env, want, err string
	}{
		{"", "", "", ""},
		{"", " fst_env ", "fst_env", ""},
		{file, "fst_env", "fst_abc", ""},
		{filepath.Join(dir, "missing"), "", "", "no such file"},
		{"", "two words", "", "not a bearer token"},
	} {
		got, err := ClientToken(tc.file, tc.env)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ClientToken(%q, %q) = %q, %v; want %q, %q", tc.file, tc.env, got, err, tc.want, tc.err)
		}
	}
	empty := filepath.Join(dir, "empty")
	writeFile(t, empty, "\n")
	if _, err := ClientToken(empty, "fst_env"); err == nil {
		t.Error("an empty token file is accepted")
	}
}
