package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/cache"
	"github.com/featurestore/featurestore/internal/testenv"
)

// servedSerial is the serial number of the certificate the server at addr
// presents in a new handshake, or the handshake's error.
func servedSerial(addr string, cfg *tls.Config) (string, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// TestTLSServesAndReloadsTheCertificate: the API over HTTPS with a
// certificate of the test's CA, TLS 1.2 at least, HSTS on its answers; a
// renewed certificate is served without a restart.
func TestTLSServesAndReloadsTheCertificate(t *testing.T) {
	t.Parallel()
	ca := testenv.NewCA(t)
	pair := ca.Server("api", "127.0.0.1")
	s := startSecured(t, []string{"--data-dir", t.TempDir(), "--tls-cert-file", pair.CertFile, "--tls-key-file", pair.KeyFile,
		"--reload-interval", "50ms"}, nil, ca.ClientConfig())
	defer logOnFailure(t, s.logs)
	addr := strings.TrimPrefix(s.base, "https://")

	code, _, hdr := s.call(t, "GET", "/v1/stats", "", "", "")
	if code != http.StatusOK || hdr.Get("Strict-Transport-Security") == "" {
		t.Errorf("GET /v1/stats over TLS: %d, HSTS %q", code, hdr.Get("Strict-Transport-Security"))
	}
	if got, err := servedSerial(addr, ca.ClientConfig()); err != nil || got != pair.Cert.SerialNumber.String() {
		t.Errorf("served certificate %s (%v), want %s", got, err, pair.Cert.SerialNumber)
	}
	old := ca.ClientConfig()
	old.MaxVersion = tls.VersionTLS11
	old.MinVersion = tls.VersionTLS10
	if _, err := servedSerial(addr, old); err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
	if _, err := servedSerial(addr, &tls.Config{MinVersion: tls.VersionTLS12}); err == nil {
		t.Error("a client that does not trust the test CA completed the handshake")
	}
	resp, err := http.Get("http://" + addr + "/health/live")
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port: %d, want 400", resp.StatusCode)
		}
	}

	renewed := ca.Server("api", "127.0.0.1") // overwrites the files, as a renewal does
	testenv.Eventually(t, time.Minute, "the renewed certificate is served", func() (bool, string) {
		got, err := servedSerial(addr, ca.ClientConfig())
		return got == renewed.Cert.SerialNumber.String(), fmt.Sprintf("serial %s, err %v", got, err)
	})
	if got, want := s.metric(t, "feature_store_tls_certificate_expiry_timestamp_seconds"), fmt.Sprint(renewed.Cert.NotAfter.Unix()); !sameFloat(got, want) {
		t.Errorf("certificate expiry metric %s, want %s", got, want)
	}
	if got := s.metric(t, `feature_store_reloads_total{file="tls_certificate",result="success"}`); got == "" || got == "0" {
		t.Errorf("tls_certificate reloads %q", got)
	}
}

// sameFloat compares a Prometheus sample (1.7e+09 notation) with an integer.
func sameFloat(sample, want string) bool {
	var a, b float64
	if _, err := fmt.Sscan(sample, &a); err != nil {
		return false
	}
	if _, err := fmt.Sscan(want, &b); err != nil {
		return false
	}
	return a == b
}

// slowMachine are Redis URL timeouts that a TLS handshake on a loaded
// machine under the race detector stays within, as the shared test Redis
// has (testenv.RedisURL).
const slowMachine = "?dial_timeout=10s&read_timeout=10s&write_timeout=10s&pool_timeout=10s"

// tlsBackends are a private Postgres with ssl on and a private redis-server
// with a TLS port, both with certificates of ca for 127.0.0.1.
func tlsBackends(t *testing.T, ca *testenv.CA) (*testenv.Postgres, *testenv.Redis) {
	t.Helper()
	pg := testenv.StartPostgres(t)
	pg.EnableSSL(ca.Server("postgres", "127.0.0.1"))
	redisPair := ca.Server("redis", "127.0.0.1")
	rd := testenv.StartRedis(t, testenv.RedisOptions{TLS: &testenv.RedisTLS{CertFile: redisPair.CertFile, KeyFile: redisPair.KeyFile, CAFile: ca.File}})
	return pg, rd
}

// TestTLSEndToEnd: the API over HTTPS with a token, on Postgres with
// sslmode=verify-full and Redis over rediss:// with the test CA and a
// client certificate; every connection is encrypted and verified, and a
// wrong CA or host name is refused.
func TestTLSEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private Postgres and redis-server")
	}
	t.Parallel()
	ca := testenv.NewCA(t)
	pg, rd := tlsBackends(t, ca)
	ctx := context.Background()

	t.Run("postgres verify-full refuses a wrong CA or host", func(t *testing.T) {
		other := testenv.NewCA(t)
		for _, c := range []struct{ url, want string }{
			{pg.VerifyFullURL("127.0.0.1", other.File), "certificate signed by unknown authority"},
			{pg.VerifyFullURL("localhost", ca.File), "wanted to match localhost"},
		} {
			err := Run(ctx, []string{"migrate", "--postgres-url", c.url}, envFrom(nil), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("migrate with %s: %v, want %q", maskURL(c.url), err, c.want)
			}
		}
	})

	client := ca.Client("featurestore")
	api := ca.Server("api", "127.0.0.1")
	reader, readerEntry := newToken(t, "dashboards", "reader")
	writer, writerEntry := newToken(t, "ci-ingest", "writer")
	admin, adminEntry := newToken(t, "ops", "admin")
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	writeTokens(t, tokens, readerEntry, writerEntry, adminEntry)
	s := startSecured(t, []string{
		"--postgres-url", pg.VerifyFullURL("127.0.0.1", ca.File),
		"--redis-url", rd.TLSURL() + slowMachine, "--redis-ca-file", ca.File,
		"--redis-cert-file", client.CertFile, "--redis-key-file", client.KeyFile,
		"--tls-cert-file", api.CertFile, "--tls-key-file", api.KeyFile,
		"--auth-tokens-file", tokens,
	}, nil, ca.ClientConfig())
	defer logOnFailure(t, s.logs)

	s.mustCall(t, http.StatusCreated, "PUT", "/v1/feature-groups/user_profile", admin, testGroup)
	s.mustCall(t, http.StatusOK, "POST", "/v1/feature-groups/user_profile/rows", writer, testRows)
	for range 2 { // the second read is a cache hit: Redis over TLS answered
		if got := s.mustCall(t, http.StatusOK, "GET", "/v1/feature-groups/user_profile/entities/u1", reader, ""); !strings.Contains(got, `"age":31`) {
			t.Errorf("read: %s", got)
		}
	}
	health := s.mustCall(t, http.StatusOK, "GET", "/health", reader, "")
	for _, want := range []string{`"status":"UP"`, `"postgres":{"status":"UP"`, `"redis":{"status":"UP"`} {
		if !strings.Contains(health, want) {
			t.Errorf("/health lacks %s: %s", want, health)
		}
	}
	if got := s.metric(t, `feature_store_cache_hits_total{cache_type="redis",feature_group="user_profile"}`); got == "" || got == "0" {
		t.Errorf("no Redis cache hit: %q", got)
	}

	// Every connection of the service to Postgres is encrypted.
	conn, err := pgx.Connect(ctx, pg.VerifyFullURL("127.0.0.1", ca.File))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var total, encrypted int
	err = conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE s.ssl AND s.version IN ('TLSv1.2', 'TLSv1.3'))
		FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()`).Scan(&total, &encrypted)
	if err != nil || total == 0 || encrypted != total {
		t.Errorf("service connections: %d, encrypted with TLS 1.2+: %d (%v)", total, encrypted, err)
	}
}

// TestRedisTLSOptions: a rediss:// URL is verified against the system's
// CAs unless --redis-ca-file names the CA; a server that requires client
// certificates gets --redis-cert-file's.
func TestRedisTLSOptions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private redis-server")
	}
	t.Parallel()
	ca := testenv.NewCA(t)
	redisPair := ca.Server("redis", "127.0.0.1")
	rd := testenv.StartRedis(t, testenv.RedisOptions{TLS: &testenv.RedisTLS{CertFile: redisPair.CertFile, KeyFile: redisPair.KeyFile, CAFile: ca.File}})
	client := ca.Client("featurestore")
	ping := func(c SecurityConfig) error {
		opts, err := cache.RedisOptionsFromURL(rd.TLSURL() + slowMachine)
		if err != nil {
			return err
		}
		if err := redisTLS(opts.TLSConfig, c); err != nil {
			return err
		}
		opts.MaxRetries = -1
		rc := redis.NewClient(opts)
		defer rc.Close()
		return rc.Ping(context.Background()).Err()
	}
	for _, c := range []struct {
		name string
		cfg  SecurityConfig
		want string
	}{
		{"system CAs", SecurityConfig{RedisCertFile: client.CertFile, RedisKeyFile: client.KeyFile}, "certificate signed by unknown authority"},
		{"no client certificate", SecurityConfig{RedisCAFile: ca.File}, ""},
		{"CA and client certificate", SecurityConfig{RedisCAFile: ca.File, RedisCertFile: client.CertFile, RedisKeyFile: client.KeyFile}, ""},
		{"not a CA file", SecurityConfig{RedisCAFile: client.KeyFile}, "holds no PEM certificate"},
	} {
		err := ping(c.cfg)
		switch {
		case c.name == "no client certificate":
			if err == nil {
				t.Errorf("%s: PING succeeded against a server that requires a client certificate", c.name)
			}
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	opts, err := cache.RedisOptionsFromURL(rd.URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := redisTLS(opts.TLSConfig, SecurityConfig{RedisCAFile: ca.File}); err == nil {
		t.Error("a CA file with a redis:// URL is accepted")
	}
}
