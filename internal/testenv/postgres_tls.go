package testenv

import (
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// EnableSSL makes the server accept TLS connections with pair's
// certificate: it copies the certificate and key into the data directory
// (the key readable by the server's user only, as Postgres requires),
// turns ssl on and restarts the server.
func (p *Postgres) EnableSSL(pair Pair) {
	p.tb.Helper()
	for src, dst := range map[string]string{pair.CertFile: "server.crt", pair.KeyFile: "server.key"} {
		b, err := os.ReadFile(src) // #nosec G304 -- a certificate file the test generated
		if err != nil {
			p.tb.Fatal(err)
		}
		path := filepath.Join(p.data(), dst)
		if err := os.WriteFile(path, b, 0o600); err != nil { // #nosec G703 -- a path in the test's own temporary directory
			p.tb.Fatal(err)
		}
		p.chownToServer(path)
	}
	conf, err := os.OpenFile(filepath.Join(p.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		p.tb.Fatal(err)
	}
	_, err = fmt.Fprintln(conf, "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_min_protocol_version = 'TLSv1.2'")
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		p.tb.Fatal(err)
	}
	p.Stop()
	p.Start()
}

// chownToServer gives path to the postgres OS user when the test runs as
// root (the server then runs as that user).
func (p *Postgres) chownToServer(path string) {
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		p.tb.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		p.tb.Fatal(err)
	}
}

// VerifyFullURL is the server's `postgres` database over TLS with
// sslmode=verify-full: the server's certificate must chain to rootCert (a
// PEM file) and name host.
func (p *Postgres) VerifyFullURL(host, rootCert string) string {
	return fmt.Sprintf("postgres://postgres@%s:%d/postgres?sslmode=verify-full&sslrootcert=%s&connect_timeout=5",
		host, p.port, url.QueryEscape(rootCert))
}
