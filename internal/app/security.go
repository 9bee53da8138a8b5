package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/auth"
	"github.com/featurestore/featurestore/internal/httpapi"
	"github.com/featurestore/featurestore/internal/metrics"
	"github.com/featurestore/featurestore/internal/reload"
)

// tlsCertFileName names the TLS certificate and key in reload reports.
const tlsCertFileName = "tls certificate"

// security is what serve needs to authenticate callers and to serve TLS,
// with the files it keeps current.
type security struct {
	cfg     SecurityConfig
	authn   *auth.Authenticator            // nil: authentication is off
	cert    *reload.File[*tls.Certificate] // nil: plain HTTP
	origins []string
	m       *metrics.Security
}

// openSecurity loads the token file, the JWT key and the TLS certificate;
// an error is a configuration error, reported at once.
func openSecurity(cfg SecurityConfig, m *metrics.Security) (*security, error) {
	s := &security{cfg: cfg, m: m}
	var err error
	if s.origins, err = httpapi.ParseOrigins(cfg.CORSAllowedOrigins); err != nil {
		return nil, err
	}
	s.authn, err = auth.Open(auth.Options{
		TokensFile: cfg.AuthTokensFile,
		JWTKeyFile: cfg.AuthJWTKeyFile,
		JWT:        auth.JWTConfig{Audience: cfg.AuthJWTAudience, Issuer: cfg.AuthJWTIssuer, RoleClaim: cfg.AuthJWTRoleClaim},
	})
	if err != nil {
		return nil, err
	}
	if cfg.TLSCertFile != "" {
		s.cert, err = reload.Open(tlsCertFileName, []string{cfg.TLSCertFile, cfg.TLSKeyFile}, func(c [][]byte) (*tls.Certificate, error) {
			cert, err := tls.X509KeyPair(c[0], c[1])
			return &cert, err
		})
		if err != nil {
			return nil, err
		}
	}
	s.m.SetAuth(s.authn != nil, s.authn.TokenNames(), cfg.AuthJWTKeyFile != "")
	var names []string
	for _, f := range s.files() {
		names = append(names, f.Name())
	}
	s.m.ReloadFiles(names...)
	s.noteCertificate()
	return s, nil
}

// files are the files to reload.
func (s *security) files() []reload.Reloader {
	var out []reload.Reloader
	if s.authn != nil {
		out = s.authn.Files()
	}
	if s.cert != nil {
		out = append(out, s.cert)
	}
	return out
}

// routerAuth is the router's Authenticator: nil (not a nil pointer in an
// interface) when authentication is off.
func (s *security) routerAuth() httpapi.Authenticator {
	if s.authn == nil {
		return nil
	}
	return s.authn
}

// tlsConfig is the API server's TLS configuration (nil: plain HTTP): TLS
// 1.2 or newer, with the certificate in use at each handshake, so a renewed
// certificate is served without a restart.
func (s *security) tlsConfig() *tls.Config {
	if s.cert == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Get(), nil
		},
	}
}

// serveOn serves srv on ln, over TLS when the API has a certificate
// (srv.TLSConfig holds it). Serve itself may set a TLSConfig, so this is
// decided from the configuration, not from srv.
func (s *security) serveOn(srv *http.Server, ln net.Listener) error {
	if s.cert != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

func (s *security) noteCertificate() {
	if s.cert != nil {
		if leaf := s.cert.Get().Leaf; leaf != nil {
			s.m.SetCertificateExpiry(leaf.NotAfter)
		}
	}
}

// watch keeps the files current until the returned stop is called: it
// polls them every interval and reloads them all on SIGHUP. Without files
// it does nothing (and SIGHUP keeps its default action).
func (s *security) watch(interval time.Duration, log *zap.Logger) (stop func()) {
	files := s.files()
	if len(files) == 0 {
		return func() {}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	report := func(name string, res reload.Result, err error) { s.report(log, name, res, err) }
	wg.Go(func() { reload.Watch(ctx, interval, files, report) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the token file, JWT key and TLS certificate")
				reload.All(files, report)
			}
		}
	})
	return func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
}

// report logs a reload and updates the metrics. A file that does not load
// is an error: the previous one stays in use until it is fixed.
func (s *security) report(log *zap.Logger, name string, res reload.Result, err error) {
	switch res {
	case reload.Failed:
		s.m.Reloaded(name, false)
		log.Error("reload failed", zap.String("file", name), zap.Error(err))
		return
	case reload.Unchanged:
		log.Info("reload: unchanged", zap.String("file", name))
		return
	}
	s.m.Reloaded(name, true)
	fields := []zap.Field{zap.String("file", name)}
	switch name {
	case auth.TokensFileName:
		names := s.authn.TokenNames()
		s.m.SetAuth(true, names, s.cfg.AuthJWTKeyFile != "")
		fields = append(fields, zap.Strings("tokens", names))
	case tlsCertFileName:
		s.noteCertificate()
		if leaf := s.cert.Get().Leaf; leaf != nil {
			fields = append(fields, zap.Time("not_after", leaf.NotAfter), zap.Strings("dns_names", leaf.DNSNames))
		}
	}
	log.Info("reloaded", fields...)
}

// warnIfExposed says loudly at start-up how the API is protected when it
// listens beyond loopback: without authentication anyone who can reach it
// may read, write and delete; with authentication but without TLS, tokens
// cross the network in clear unless a proxy terminates TLS in front.
func (s *security) warnIfExposed(log *zap.Logger, addr net.Addr) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.IsLoopback() {
		return
	}
	switch {
	case s.authn == nil:
		log.Warn("the API listens beyond loopback WITHOUT AUTHENTICATION: anyone who can reach "+
			"it can read, write and delete features; set --auth-tokens-file or --auth-jwt-key-file",
			zap.String("addr", addr.String()))
	case s.cert == nil:
		log.Warn("authentication is on but TLS is off: bearer tokens cross the network in clear unless a "+
			"TLS-terminating proxy is in front; set --tls-cert-file and --tls-key-file",
			zap.String("addr", addr.String()))
	}
}

// redisTLS completes the TLS configuration go-redis makes for a rediss://
// URL (nil for redis://, which refuses the TLS flags): TLS 1.2 or newer,
// the CA of --redis-ca-file instead of the system's, and the client
// certificate of --redis-cert-file.
func redisTLS(conf *tls.Config, c SecurityConfig) error {
	if conf == nil {
		if c.RedisCAFile != "" || c.RedisCertFile != "" {
			return errors.New("redis-ca-file and redis-cert-file need a rediss:// redis-url")
		}
		return nil
	}
	conf.MinVersion = tls.VersionTLS12
	if c.RedisCAFile != "" {
		pem, err := os.ReadFile(c.RedisCAFile)
		if err != nil {
			return fmt.Errorf("redis-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("redis-ca-file %s holds no PEM certificate", c.RedisCAFile)
		}
		conf.RootCAs = pool
	}
	if c.RedisCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.RedisCertFile, c.RedisKeyFile)
		if err != nil {
			return fmt.Errorf("redis-cert-file: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return nil
}
