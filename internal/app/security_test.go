package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/testenv"
)

// secured is a server started by run with its own HTTP client (one that
// trusts the test CA when the server speaks TLS).
type secured struct {
	base   string
	client *http.Client
	logs   *testenv.SyncBuffer
}

// startSecured runs the real program on a free port with args (after
// serve --addr 127.0.0.1:0) and waits until /health/ready answers 200
// through client, over https when tlsClient is set.
func startSecured(t *testing.T, args []string, env map[string]string, tlsClient *tls.Config) *secured {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &secured{logs: &testenv.SyncBuffer{}, client: &http.Client{Timeout: 30 * time.Second}}
	scheme := "http"
	if tlsClient != nil {
		scheme = "https"
		s.client.Transport = &http.Transport{TLSClientConfig: tlsClient}
	}
	addrCh := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), envFrom(env), s.logs, s.logs,
			func(a string) { addrCh <- a })
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("server: %v", err)
				}
			case <-time.After(30 * time.Second): // a hang guard
				t.Error("server did not stop")
			}
		})
	}
	select {
	case a := <-addrCh:
		s.base = scheme + "://" + a
	case err := <-done:
		cancel()
		t.Fatalf("server exited before listening: %v\n%s", err, s.logs)
	case <-time.After(60 * time.Second): // a hang guard
		cancel()
		t.Fatalf("server did not listen\n%s", s.logs)
	}
	t.Cleanup(stop)
	testenv.Eventually(t, time.Minute, "the server is ready", func() (bool, string) {
		code, body, _ := s.call(t, "GET", "/health/ready", "", "", "")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	return s
}

// call sends one request with a bearer token (none when empty) and a
// body of the given Content-Type; it returns 0 when the request failed.
func (s *secured) call(t *testing.T, method, path, token, contentType, body string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// mustCall is call that wants a status.
func (s *secured) mustCall(t *testing.T, want int, method, path, token, body string) string {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	code, got, _ := s.call(t, method, path, token, ct, body)
	if code != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, got)
	}
	return got
}

// newToken runs `featurestore token` and returns the token and its token
// file entry.
func newToken(t *testing.T, name, role string) (token, entry string) {
	t.Helper()
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"token", "--name", name, "--role", role}, envFrom(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "token: "); ok {
			token = v
		}
		if strings.HasPrefix(line, "  - {name: "+name+",") {
			entry = line
		}
	}
	if token == "" || entry == "" {
		t.Fatalf("featurestore token printed:\n%s", out.String())
	}
	return token, entry
}

func writeTokens(t *testing.T, path string, entries ...string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("tokens:\n"+strings.Join(entries, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// metric returns the value of one series of /metrics ("" when absent).
func (s *secured) metric(t *testing.T, series string) string {
	t.Helper()
	code, body, _ := s.call(t, "GET", "/metrics", "", "", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

const (
	testGroup = `{"entity_key": "user_id", "features": [{"name": "age", "type": "int64"}]}`
	testRows  = `[{"entity_id": "u1", "event_time": "2025-06-05T00:00:00Z", "values": {"age": 31}}]`
)

// TestAuthEndToEnd runs the service with a token file made by
// `featurestore token`: the definition of done over real HTTP, the
// command-line clients with a token, metrics and logs that name tokens and
// never hold one, and a reload on SIGHUP.
func TestAuthEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reader, readerEntry := newToken(t, "dashboards", "reader")
	writer, writerEntry := newToken(t, "ci-ingest", "writer")
	admin, adminEntry := newToken(t, "ops", "admin")
	tokens := filepath.Join(dir, "tokens.yaml")
	writeTokens(t, tokens, readerEntry, writerEntry, adminEntry)
	// Polling is off (an hour): only SIGHUP reloads in this test.
	s := startSecured(t, []string{"--data-dir", filepath.Join(dir, "data"), "--auth-tokens-file", tokens,
		"--reload-interval", "1h", "--recompute-delay", "0"}, nil, nil)
	defer logOnFailure(t, s.logs)

	s.mustCall(t, http.StatusCreated, "PUT", "/v1/feature-groups/user_profile", admin, testGroup)
	const rows = "/v1/feature-groups/user_profile/rows"
	code, body, hdr := s.call(t, "POST", rows, "", "application/json", testRows)
	if code != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthenticated"`) || hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("anonymous write: %d %s %v", code, body, hdr)
	}
	if code, body, _ := s.call(t, "POST", rows, reader, "application/json", testRows); code != http.StatusForbidden || !strings.Contains(body, `"code":"forbidden"`) {
		t.Errorf("reader's write: %d %s", code, body)
	}
	if code, body, _ := s.call(t, "POST", rows, writer, "text/plain", testRows); code != http.StatusUnsupportedMediaType || !strings.Contains(body, `"code":"unsupported_media_type"`) {
		t.Errorf("text/plain write: %d %s", code, body)
	}
	s.mustCall(t, http.StatusNotFound, "GET", "/v1/feature-groups/user_profile/entities/u1", reader, "")
	s.mustCall(t, http.StatusOK, "POST", rows, writer, testRows)
	if got := s.mustCall(t, http.StatusOK, "GET", "/v1/feature-groups/user_profile/entities/u1", reader, ""); !strings.Contains(got, `"age":31`) {
		t.Errorf("read after the writer's write: %s", got)
	}

	t.Run("ingest --api sends the token", func(t *testing.T) {
		file := testenv.TMDBFile(t)
		err := Run(context.Background(), []string{"ingest", "--api", s.base, file}, envFrom(nil), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "--token-file") {
			t.Errorf("ingest --api without a token: %v", err)
		}
		var out bytes.Buffer
		if err := Run(context.Background(), []string{"ingest", "--api", s.base, file}, envFrom(map[string]string{"FEATURESTORE_TOKEN": writer}), &out, io.Discard); err != nil {
			t.Fatalf("ingest --api with FEATURESTORE_TOKEN: %v", err)
		}
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(writer+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		if err := Run(context.Background(), []string{"ingest", "--api", s.base, "--token-file", tokenFile, file}, envFrom(nil), &out, io.Discard); err != nil {
			t.Fatalf("ingest --api --token-file: %v", err)
		}
		if !strings.Contains(out.String(), "accepted 100") {
			t.Errorf("ingest output: %s", out.String())
		}
	})

	t.Run("verify sends the token", func(t *testing.T) {
		var out bytes.Buffer
		_ = Run(context.Background(), []string{"verify", "--api", s.base, "--json"}, envFrom(map[string]string{"FEATURESTORE_TOKEN": reader}), &out, io.Discard)
		if detail := checkDetail(t, out.Bytes(), "service health"); !strings.Contains(detail, "sqlite UP") {
			t.Errorf("verify with a reader's token: service health %q", detail)
		}
		out.Reset()
		_ = Run(context.Background(), []string{"verify", "--api", s.base, "--json"}, envFrom(nil), &out, io.Discard)
		if detail := checkDetail(t, out.Bytes(), "service health"); !strings.Contains(detail, "status only") {
			t.Errorf("verify without a token: service health %q", detail)
		}
	})

	if got := s.metric(t, "feature_store_auth_enabled"); got != "1" {
		t.Errorf("feature_store_auth_enabled %q", got)
	}
	if got := s.metric(t, `feature_store_auth_requests_total{result="forbidden",token="dashboards"}`); got != "1" {
		t.Errorf("dashboards forbidden = %q, want 1", got)
	}
	if got := s.metric(t, `feature_store_auth_requests_total{result="unauthenticated",token="anonymous"}`); got == "" || got == "0" {
		t.Errorf("anonymous unauthenticated = %q", got)
	}

	// SIGHUP: ci-ingest is revoked and ci-2 added; then a broken edit is
	// refused and the tokens in use stay.
	writer2, writer2Entry := newToken(t, "ci-2", "writer")
	writeTokens(t, tokens, readerEntry, adminEntry, writer2Entry)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "the reloaded token file is in use", func() (bool, string) {
		newCode, _, _ := s.call(t, "GET", "/v1/stats", writer2, "", "")
		oldCode, _, _ := s.call(t, "GET", "/v1/stats", writer, "", "")
		return newCode == http.StatusOK && oldCode == http.StatusUnauthorized, fmt.Sprintf("new token %d, revoked token %d", newCode, oldCode)
	})
	if err := os.WriteFile(tokens, []byte("tokens: [{name: x, role: root}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "the broken token file is reported", func() (bool, string) {
		return strings.Contains(s.logs.String(), `"msg":"reload failed"`), "no reload failure logged"
	})
	s.mustCall(t, http.StatusOK, "GET", "/v1/stats", writer2, "")
	if got := s.metric(t, `feature_store_reloads_total{file="tokens",result="failure"}`); got != "1" {
		t.Errorf("tokens reload failures = %q, want 1", got)
	}
	if got := s.metric(t, `feature_store_auth_requests_total{result="allowed",token="ci-ingest"}`); got != "" {
		t.Errorf("a revoked token keeps its series: %q", got)
	}

	logs := s.logs.String()
	for _, tok := range []string{reader, writer, admin, writer2} {
		if strings.Contains(logs, tok) {
			t.Fatalf("the log holds a token")
		}
	}
	if !strings.Contains(logs, `"auth":"ci-ingest"`) {
		t.Error("the access log does not name the caller")
	}
}

// checkDetail is the detail of one check in verify's JSON report.
func checkDetail(t *testing.T, report []byte, name string) string {
	t.Helper()
	var rep struct {
		Checks []struct{ Check, Detail string } `json:"checks"`
	}
	if err := json.Unmarshal(report, &rep); err != nil {
		t.Fatalf("verify report: %v\n%s", err, report)
	}
	for _, c := range rep.Checks {
		if c.Check == name {
			return c.Detail
		}
	}
	t.Fatalf("no check %q in %s", name, report)
	return ""
}

// TestTokenFileIsPolled: an edit of the token file is in use within the
// reload interval, without a signal.
func TestTokenFileIsPolled(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, readerEntry := newToken(t, "dashboards", "reader")
	tokens := filepath.Join(dir, "tokens.yaml")
	writeTokens(t, tokens, readerEntry)
	s := startSecured(t, []string{"--data-dir", filepath.Join(dir, "data"), "--auth-tokens-file", tokens,
		"--reload-interval", "50ms"}, nil, nil)
	added, addedEntry := newToken(t, "added", "reader")
	s.mustCall(t, http.StatusUnauthorized, "GET", "/v1/stats", added, "")
	writeTokens(t, tokens, readerEntry, addedEntry)
	testenv.Eventually(t, time.Minute, "the added token works", func() (bool, string) {
		code, body, _ := s.call(t, "GET", "/v1/stats", added, "", "")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
}

// TestStartUpSaysHowExposedItIs: beyond loopback without authentication
// the service warns loudly and feature_store_auth_enabled is 0; with
// authentication but without TLS it warns that tokens travel in clear; on
// loopback it says nothing.
func TestStartUpSaysHowExposedItIs(t *testing.T) {
	t.Parallel()
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	_, entry := newToken(t, "a", "reader")
	writeTokens(t, tokens, entry)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"all interfaces, no auth", []string{"--addr", "0.0.0.0:0"}, "WITHOUT AUTHENTICATION"},
		{"all interfaces, auth, no TLS", []string{"--addr", "0.0.0.0:0", "--auth-tokens-file", tokens}, "TLS is off"},
		{"loopback, no auth", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := startSecured(t, append([]string{"--data-dir", t.TempDir()}, c.args...), nil, nil)
			logs := s.logs.String()
			for _, w := range []string{"WITHOUT AUTHENTICATION", "TLS is off"} {
				if strings.Contains(logs, w) != (w == c.want) {
					t.Errorf("log mentions %q: %v, want %v\n%s", w, !(w == c.want), w == c.want, logs)
				}
			}
			if c.want != "" && !strings.Contains(logs, `"level":"warn"`) {
				t.Error("the warning is not at warn level")
			}
			want := "0"
			if len(c.args) > 2 {
				want = "1"
			}
			if got := s.metric(t, "feature_store_auth_enabled"); got != want {
				t.Errorf("feature_store_auth_enabled %q, want %s", got, want)
			}
		})
	}
}

func TestSecurityConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badTokens := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badTokens, []byte("tokens: [{name: a, role: root, sha256: x}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	notACert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(notACert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert-file", notACert}, "tls-cert-file and tls-key-file go together"},
		{[]string{"--redis-cert-file", notACert}, "redis-cert-file and redis-key-file go together"},
		{[]string{"--auth-jwt-key-file", notACert}, "auth-jwt-audience is required"},
		{[]string{"--redis-ca-file", notACert, "--redis-url", "redis://127.0.0.1:6379/0"}, "need a rediss:// redis-url"},
		{[]string{"--cors-allowed-origins", "*"}, "needs authentication"},
		{[]string{"--cors-allowed-origins", "evil.example"}, "not a web origin"},
		{[]string{"--reload-interval", "0s"}, "reload-interval must be positive"},
		{[]string{"--auth-tokens-file", badTokens}, "tokens file " + badTokens},
		{[]string{"--auth-tokens-file", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"--tls-cert-file", notACert, "--tls-key-file", notACert}, "tls certificate files"},
		{[]string{"--auth-jwt-key-file", notACert, "--auth-jwt-audience", "fs"}, "HS256 secret must be at least 32 bytes"},
	} {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data")}, c.args...)
		err := Run(context.Background(), args, envFrom(nil), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"token", "--name", "x", "--role", "root"}, envFrom(nil), &out, io.Discard); err == nil {
		t.Error("token --role root succeeded")
	}
}
