package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"

	"github.com/featurestore/featurestore/internal/reload"
)

// JWTConfig says how JWTs are checked.
type JWTConfig struct {
	// Audience must be one of the token's aud values (required): a token
	// the identity provider issued for another service is refused.
	Audience string
	// Issuer, when set, must be the token's iss.
	Issuer string
	// RoleClaim names the claim holding the role: a string or an array of
	// strings (the highest role found wins); a dotted path walks nested
	// objects (realm_access.roles). Default "role".
	RoleClaim string
	// Leeway is the clock skew allowed on exp and nbf. Default 30s.
	Leeway time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// DefaultRoleClaim is the claim holding the role when none is configured.
const DefaultRoleClaim = "role"

// JWTVerifier checks JWTs against the identity provider's key(s), kept in a
// file that is reloaded like the token file (key rotation).
type JWTVerifier struct {
	cfg  JWTConfig
	keys *reload.File[jwtKeys]
}

// jwtKeys are the verification keys of a key file and the algorithms they
// verify.
type jwtKeys struct {
	algs []string
	set  jwt.VerificationKeySet
}

// OpenJWTVerifier loads the key file (see ParseJWTKeys) and checks cfg.
func OpenJWTVerifier(keyFile string, cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.Audience == "" {
		return nil, errors.New("a JWT key file needs an audience: the aud value the identity provider puts in tokens meant for this service")
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = DefaultRoleClaim
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	f, err := reload.Open(JWTKeyFileName, []string{keyFile}, func(c [][]byte) (jwtKeys, error) { return ParseJWTKeys(c[0]) })
	if err != nil {
		return nil, err
	}
	return &JWTVerifier{cfg: cfg, keys: f}, nil
}

// minHMACSecret is the shortest accepted HS256 secret: as many bytes as
// the hash (RFC 7518 section 3.2).
const minHMACSecret = 32

// ParseJWTKeys reads a key file: one or more PEM public keys (PUBLIC KEY,
// RSA PUBLIC KEY or CERTIFICATE; RSA of at least 2048 bits verifies RS256,
// ECDSA P-256 verifies ES256), or, when the file holds no PEM at all, an
// HS256 shared secret of at least 32 bytes (a trailing newline is not part
// of it). A private key is refused: the service only verifies.
func ParseJWTKeys(data []byte) (jwtKeys, error) {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		secret := bytes.TrimRight(data, "\r\n")
		if len(secret) < minHMACSecret {
			return jwtKeys{}, fmt.Errorf("an HS256 secret must be at least %d bytes, got %d (or give a PEM public key for RS256/ES256)", minHMACSecret, len(secret))
		}
		return jwtKeys{algs: []string{"HS256"}, set: jwt.VerificationKeySet{Keys: []jwt.VerificationKey{secret}}}, nil
	}
	var k jwtKeys
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) > 0 || n == 1 {
				return jwtKeys{}, fmt.Errorf("PEM block %d is malformed", n)
			}
			break
		}
		key, alg, err := pemPublicKey(block)
		if err != nil {
			return jwtKeys{}, fmt.Errorf("PEM block %d: %w", n, err)
		}
		k.set.Keys = append(k.set.Keys, key)
		if !slices.Contains(k.algs, alg) {
			k.algs = append(k.algs, alg)
		}
	}
	return k, nil
}

func pemPublicKey(block *pem.Block) (any, string, error) {
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return nil, "", fmt.Errorf("%s: give the identity provider's public key, never a private key", block.Type)
		}
		return nil, "", fmt.Errorf("%s is not a public key (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", block.Type, err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, "", fmt.Errorf("RSA key of %d bits: at least 2048 are required", k.N.BitLen())
		}
		return k, "RS256", nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("ECDSA key on %s: ES256 needs P-256", k.Curve.Params().Name)
		}
		return k, "ES256", nil
	}
	return nil, "", fmt.Errorf("%T keys are not supported (want RSA for RS256 or ECDSA P-256 for ES256)", pub)
}

// Verify checks a JWT's signature (with the algorithms of the configured
// keys only), exp (required), nbf, aud and iss, and returns its caller:
// "jwt:" and the subject, with the role of the role claim (Anyone when it
// names none the service knows: such a caller gets 403, not 401).
func (v *JWTVerifier) Verify(token string) (Principal, error) {
	keys := v.keys.Get()
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(keys.algs),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithLeeway(v.cfg.Leeway),
		jwt.WithTimeFunc(v.cfg.Now),
	}
	if v.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.cfg.Issuer))
	}
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(opts...).ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return keys.set, nil })
	if err != nil {
		return Principal{}, &CredentialError{Reason: jwtReason(err), Err: err}
	}
	sub, _ := claims["sub"].(string)
	return Principal{Name: "jwt:" + printable(sub, 128), Label: LabelJWT, Role: roleOf(claimAt(claims, v.cfg.RoleClaim))}, nil
}

// jwtReason says why a JWT was refused, in words safe to show.
func jwtReason(err error) string {
	for _, c := range []struct {
		err    error
		reason string
	}{
		{jwt.ErrTokenMalformed, "malformed JWT"},
		{jwt.ErrTokenSignatureInvalid, "JWT signature does not verify"},
		{jwt.ErrTokenUnverifiable, "JWT cannot be verified with the configured key (wrong algorithm?)"},
		{jwt.ErrTokenExpired, "JWT has expired"},
		{jwt.ErrTokenNotValidYet, "JWT is not valid yet (nbf)"},
		{jwt.ErrTokenInvalidAudience, "JWT is not meant for this service (aud)"},
		{jwt.ErrTokenInvalidIssuer, "JWT comes from another issuer (iss)"},
		{jwt.ErrTokenRequiredClaimMissing, "JWT lacks a required claim (exp and aud are required)"},
	} {
		if errors.Is(err, c.err) {
			return c.reason
		}
	}
	return "invalid JWT"
}

// claimAt walks a dotted path through nested objects.
func claimAt(claims map[string]any, path string) any {
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// roleOf is the highest role named by a claim value: a string or an array
// of strings. Unknown names are ignored.
func roleOf(v any) Role {
	var names []string
	switch x := v.(type) {
	case string:
		names = []string{x}
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				names = append(names, s)
			}
		}
	}
	best := Anyone
	for _, n := range names {
		if r, err := ParseRole(n); err == nil && r > best {
			best = r
		}
	}
	return best
}

// printable cuts s to max runes and replaces control characters, for a
// value from a client that goes into logs.
func printable(s string, max int) string {
	r := []rune(s)
	if len(r) > max {
		r = r[:max]
	}
	for i, c := range r {
		if !unicode.IsPrint(c) {
			r[i] = '?'
		}
	}
	return string(r)
}
