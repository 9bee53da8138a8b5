package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testKeys are an identity provider's signing keys and the key files the
// service is given.
type testKeys struct {
	rsa    *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
	secret []byte
}

func newTestKeys(t *testing.T) testKeys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKeys{rsa: rk, ec: ek, secret: []byte(strings.Repeat("s3cret-", 6))}
}

func publicPEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

var jwtNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claims are valid claims for audience featurestore, with changes.
func claims(changes jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "svc-recs", "aud": "featurestore", "iss": "https://idp.example",
		"exp": jwtNow.Add(time.Hour).Unix(), "nbf": jwtNow.Add(-time.Minute).Unix(), "role": "writer",
	}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func verifier(t *testing.T, keyFile string, cfg JWTConfig) *Authenticator {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwt.key")
	writeFile(t, path, keyFile)
	cfg.Now = func() time.Time { return jwtNow }
	a, err := Open(Options{JWTKeyFile: path, JWT: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestJWTAlgorithms(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t)
	cfg := JWTConfig{Audience: "featurestore"}
	for _, tc := range []struct {
		name    string
		keyFile string
		method  jwt.SigningMethod
		signKey any
	}{
		{"RS256", publicPEM(t, &k.rsa.PublicKey), jwt.SigningMethodRS256, k.rsa},
		{"ES256", publicPEM(t, &k.ec.PublicKey), jwt.SigningMethodES256, k.ec},
		{"HS256", string(k.secret) + "\n", jwt.SigningMethodHS256, k.secret},
		{"second key of two", publicPEM(t, &k.ec.PublicKey) + publicPEM(t, &k.rsa.PublicKey), jwt.SigningMethodRS256, k.rsa},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := verifier(t, tc.keyFile, cfg)
			p, err := a.Authenticate("Bearer " + sign(t, tc.method, tc.signKey, claims(nil)))
			if err != nil {
				t.Fatal(err)
			}
			want := Principal{Name: "jwt:svc-recs", Label: LabelJWT, Role: Writer}
			if p != want {
				t.Errorf("principal %+v, want %+v", p, want)
			}
		})
	}
}

func TestJWTRefusals(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t)
	other := newTestKeys(t)
	rsaPEM := publicPEM(t, &k.rsa.PublicKey)
	a := verifier(t, rsaPEM, JWTConfig{Audience: "featurestore", Issuer: "https://idp.example"})
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"expired", sign(t, jwt.SigningMethodRS256, k.rsa, claims(jwt.MapClaims{"exp": jwtNow.Add(-time.Minute).Unix()})), "expired"},
		{"not yet valid", sign(t, jwt.SigningMethodRS256, k.rsa, claims(jwt.MapClaims{"nbf": jwtNow.Add(time.Hour).Unix()})), "not valid yet"},
		{"no exp", sign(t, jwt.SigningMethodRS256, k.rsa, claims(jwt.MapClaims{"exp": nil})), "required claim"},
		{"other audience", sign(t, jwt.SigningMethodRS256, k.rsa, claims(jwt.MapClaims{"aud": "billing"})), "not meant for this service"},
		{"no audience", sign(t, jwt.SigningMethodRS256, k.rsa, claims(jwt.MapClaims{"aud": nil})), "required claim"},
		{"other issuer", sign(t, jwt.SigningMethodRS256, k.rsa, claims(jwt.MapClaims{"iss": "https://evil.example"})), "another issuer"},
		{"other key", sign(t, jwt.SigningMethodRS256, other.rsa, claims(nil)), "signature does not verify"},
		{"other algorithm", sign(t, jwt.SigningMethodES256, k.ec, claims(nil)), "signature"},
		// The classic confusion: an HMAC keyed with the public key's PEM.
		{"HS256 keyed with the public key", sign(t, jwt.SigningMethodHS256, []byte(rsaPEM), claims(nil)), "signature"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), "signature"},
		{"tampered", tamper(sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil))), "signature does not verify"},
		{"garbage", "eyJ.eyJ.abc", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := a.Authenticate("Bearer " + tc.token)
			var ce *CredentialError
			if !errors.As(err, &ce) || !strings.Contains(ce.Reason, tc.reason) {
				t.Errorf("err = %v, want a credential error saying %q", err, tc.reason)
			}
		})
	}
	// Within the leeway, a just-expired token still passes.
	late := sign(t, jwt.SigningMethodRS256, k.rsa, claims(jwt.MapClaims{"exp": jwtNow.Add(-10 * time.Second).Unix()}))
	if _, err := a.Authenticate("Bearer " + late); err != nil {
		t.Errorf("10s past exp with a 30s leeway: %v", err)
	}
}

// tamper raises the payload's role to admin but keeps the signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"writer"`, `"admin"`, 1)))
	return strings.Join(parts, ".")
}

func TestJWTRoleClaim(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t)
	secret := string(k.secret)
	for _, tc := range []struct {
		name  string
		claim string
		value any
		want  Role
	}{
		{"string", "", "reader", Reader},
		{"case", "", "ADMIN", Admin},
		{"array: highest wins", "", []any{"reader", "offline_access", "admin", "writer"}, Admin},
		{"nested path", "realm_access.roles", map[string]any{"roles": []any{"writer"}}, Writer},
		{"unknown role", "", "superuser", Anyone},
		{"no role", "", nil, Anyone},
		{"wrong type", "", 3, Anyone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := verifier(t, secret, JWTConfig{Audience: "featurestore", RoleClaim: tc.claim})
			c := claims(jwt.MapClaims{"role": nil})
			if tc.value != nil {
				top, _, _ := strings.Cut(tc.claim, ".")
				if top == "" {
					top = "role"
				}
				c[top] = tc.value
			}
			p, err := a.Authenticate("Bearer " + sign(t, jwt.SigningMethodHS256, k.secret, c))
			if err != nil {
				t.Fatal(err)
			}
			if p.Role != tc.want {
				t.Errorf("role %v, want %v", p.Role, tc.want)
			}
		})
	}
	// Aud may be an array holding ours; the subject is cleaned for the log.
	a := verifier(t, secret, JWTConfig{Audience: "featurestore"})
	p, err := a.Authenticate("Bearer " + sign(t, jwt.SigningMethodHS256, k.secret,
		claims(jwt.MapClaims{"aud": []any{"billing", "featurestore"}, "sub": "evil\nINFO fake line"})))
	if err != nil || p.Name != "jwt:evil?INFO fake line" {
		t.Errorf("principal %+v, %v", p, err)
	}
}

func TestParseJWTKeysRefusals(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := newTestKeys(t)
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, file, want string }{
		{"short secret", "too-short\n", "at least 32 bytes"},
		{"private key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})), "never a private key"},
		{"small RSA", publicPEM(t, &small.PublicKey), "at least 2048"},
		{"P-384", publicPEM(t, &p384.PublicKey), "ES256 needs P-256"},
		{"broken PEM", "-----BEGIN PUBLIC KEY-----\nnot base64\n", "malformed"},
		{"trailing junk", publicPEM(t, &k.ec.PublicKey) + "junk", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := ParseJWTKeys([]byte(tc.file)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := OpenJWTVerifier("/nonexistent", JWTConfig{}); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("no audience: %v", err)
	}
}
