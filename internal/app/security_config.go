package app

import (
	"strings"
	"time"

	"github.com/featurestore/featurestore/internal/auth"
	"github.com/featurestore/featurestore/internal/envflag"
	"github.com/featurestore/featurestore/internal/httpapi"
)

// SecurityConfig is the part of Config about who may call the API and how
// connections are protected: authentication, CORS, TLS for the API and for
// Redis, and how often their files are checked for changes.
type SecurityConfig struct {
	AuthTokensFile     string
	AuthJWTKeyFile     string
	AuthJWTAudience    string
	AuthJWTIssuer      string
	AuthJWTRoleClaim   string
	CORSAllowedOrigins string
	TLSCertFile        string
	TLSKeyFile         string
	RedisCAFile        string
	RedisCertFile      string
	RedisKeyFile       string
	ReloadInterval     time.Duration
}

// securityFlags declares the SecurityConfig flags.
func securityFlags(flags *envflag.Set, c *SecurityConfig) {
	str := flags.String
	str(&c.AuthTokensFile, "auth-tokens-file", "", "YAML `FILE` of API tokens, stored as SHA-256 digests: tokens: [{name, role: reader|writer|admin, sha256}] (featurestore token makes entries); reloaded on change and on SIGHUP. With it (or --auth-jwt-key-file) every API route but /health, /health/live, /health/ready, /metrics and /openapi.yaml needs Authorization: Bearer")
	str(&c.AuthJWTKeyFile, "auth-jwt-key-file", "", "accept JWTs signed by an identity provider: a PEM file of its public key(s) (RS256, ES256) or an HS256 secret of 32+ bytes; reloaded like the token file")
	str(&c.AuthJWTAudience, "auth-jwt-audience", "", "the aud a JWT must carry (required with --auth-jwt-key-file)")
	str(&c.AuthJWTIssuer, "auth-jwt-issuer", "", "the iss a JWT must carry (empty: not checked)")
	str(&c.AuthJWTRoleClaim, "auth-jwt-role-claim", auth.DefaultRoleClaim, "JWT claim holding the role (reader, writer or admin; a string or an array, highest wins); a dotted path reads nested claims, e.g. realm_access.roles")
	str(&c.CORSAllowedOrigins, "cors-allowed-origins", "", "comma-separated web origins (https://app.example.com) whose pages may call the API from a browser; * for any (needs authentication); empty: none, and browsers' cross-origin writes are refused")
	str(&c.TLSCertFile, "tls-cert-file", "", "serve the API over HTTPS (TLS 1.2+) with this PEM certificate (chain); reloaded on change and on SIGHUP")
	str(&c.TLSKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	str(&c.RedisCAFile, "redis-ca-file", "", "PEM CA certificate(s) that sign the Redis server's certificate, for a rediss:// URL (empty: the system's CAs)")
	str(&c.RedisCertFile, "redis-cert-file", "", "PEM client certificate for a rediss:// server that requires one (tls-auth-clients yes)")
	str(&c.RedisKeyFile, "redis-key-file", "", "PEM private key of --redis-cert-file")
	flags.Duration(&c.ReloadInterval, "reload-interval", 10*time.Second, "how often the token file, the JWT key and the TLS certificate are checked for changes")
}

// authConfigured reports whether API authentication is configured.
func (c SecurityConfig) authConfigured() bool {
	return c.AuthTokensFile != "" || c.AuthJWTKeyFile != ""
}

// problems checks the security settings that must go together. redisURL is
// the configured Redis URL.
func (c SecurityConfig) problems(redisURL string) []string {
	var errs []string
	pair := func(a, b, aVal, bVal string) {
		if (aVal == "") != (bVal == "") {
			errs = append(errs, a+" and "+b+" go together: set both or neither")
		}
	}
	pair("tls-cert-file", "tls-key-file", c.TLSCertFile, c.TLSKeyFile)
	pair("redis-cert-file", "redis-key-file", c.RedisCertFile, c.RedisKeyFile)
	if c.AuthJWTKeyFile != "" && c.AuthJWTAudience == "" {
		errs = append(errs, "auth-jwt-audience is required with auth-jwt-key-file (the aud the identity provider sets for this service)")
	}
	if (c.RedisCAFile != "" || c.RedisCertFile != "") && !strings.HasPrefix(redisURL, "rediss://") {
		errs = append(errs, "redis-ca-file and redis-cert-file need a rediss:// redis-url (Redis over TLS)")
	}
	origins, err := httpapi.ParseOrigins(c.CORSAllowedOrigins)
	if err != nil {
		errs = append(errs, "cors-allowed-origins: "+err.Error())
	}
	if len(origins) == 1 && origins[0] == httpapi.AnyOrigin && !c.authConfigured() {
		errs = append(errs, "cors-allowed-origins=* lets any web page call the API: it needs authentication (auth-tokens-file or auth-jwt-key-file)")
	}
	if c.ReloadInterval <= 0 {
		errs = append(errs, "reload-interval must be positive")
	}
	return errs
}

// masked is the security configuration for the start-up log: file names
// only, never a file's content.
func (c SecurityConfig) masked() map[string]any {
	return map[string]any{
		"auth_tokens_file": c.AuthTokensFile, "auth_jwt_key_file": c.AuthJWTKeyFile,
		"auth_jwt_audience": c.AuthJWTAudience, "auth_jwt_issuer": c.AuthJWTIssuer, "auth_jwt_role_claim": c.AuthJWTRoleClaim,
		"cors_allowed_origins": c.CORSAllowedOrigins, "tls_cert_file": c.TLSCertFile, "tls_key_file": c.TLSKeyFile,
		"redis_ca_file": c.RedisCAFile, "redis_cert_file": c.RedisCertFile, "redis_key_file": c.RedisKeyFile,
		"reload_interval": c.ReloadInterval.String(),
	}
}
