package auth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/featurestore/featurestore/internal/reload"
)

// Label values of callers that are not a named token, for metrics. They
// are reserved: a token file may not use them as token names.
const (
	// LabelAnonymous is a request without credentials.
	LabelAnonymous = "anonymous"
	// LabelInvalid is a request whose credentials were refused.
	LabelInvalid = "invalid"
	// LabelJWT is any caller identified by a JWT: subjects are not a
	// bounded set, so they go to the logs only.
	LabelJWT = "jwt"
)

// Results of an authorization decision on a protected route: the values
// of the result label of feature_store_auth_requests_total.
const (
	ResultAllowed         = "allowed"
	ResultUnauthenticated = "unauthenticated" // 401: no or invalid credentials
	ResultForbidden       = "forbidden"       // 403: the role is too low
)

// Results are the decision results, in the order above.
func Results() []string { return []string{ResultAllowed, ResultUnauthenticated, ResultForbidden} }

// Principal is an authenticated caller.
type Principal struct {
	// Name identifies the caller in logs: the token's name in the token
	// file, or "jwt:" and the JWT's subject. Never the token itself.
	Name string
	// Label is the caller in metrics: the token's name, or LabelJWT.
	Label string
	// Role is what the caller may do; Anyone for a JWT that carries no
	// role the service knows.
	Role Role
}

// ErrNoCredentials is a request without an Authorization header.
var ErrNoCredentials = errors.New("no credentials: send Authorization: Bearer <token>")

// CredentialError is credentials that were presented and refused. Reason
// is safe to show to the client (it never quotes the token); Err is the
// cause, for the log.
type CredentialError struct {
	Reason string
	Err    error
}

func (e *CredentialError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("invalid credentials: %s: %v", e.Reason, e.Err)
	}
	return "invalid credentials: " + e.Reason
}

func (e *CredentialError) Unwrap() error { return e.Err }

// The names of the files an Authenticator reloads (reload.File.Name).
const (
	TokensFileName = "tokens"
	JWTKeyFileName = "jwt key"
)

// Options configure an Authenticator. An empty file name leaves that kind of
// credential out.
type Options struct {
	// TokensFile is the YAML token file (see ParseTokenFile).
	TokensFile string
	// JWTKeyFile holds the identity provider's public key(s) in PEM (RS256
	// or ES256), or an HS256 shared secret.
	JWTKeyFile string
	// JWT says how JWTs are checked; Audience is required with JWTKeyFile.
	JWT JWTConfig
}

// Authenticator turns an Authorization header into a Principal. Its
// files are reloaded through Reloaders.
type Authenticator struct {
	tokens *reload.File[*TokenSet]
	jwt    *JWTVerifier
}

// Open loads the configured files. It returns nil (and no error) when
// neither is configured: authentication is off.
func Open(opts Options) (*Authenticator, error) {
	if opts.TokensFile == "" && opts.JWTKeyFile == "" {
		return nil, nil
	}
	a := &Authenticator{}
	if opts.TokensFile != "" {
		f, err := reload.Open(TokensFileName, []string{opts.TokensFile}, func(c [][]byte) (*TokenSet, error) {
			return ParseTokenFile(c[0])
		})
		if err != nil {
			return nil, err
		}
		a.tokens = f
	}
	if opts.JWTKeyFile != "" {
		v, err := OpenJWTVerifier(opts.JWTKeyFile, opts.JWT)
		if err != nil {
			return nil, err
		}
		a.jwt = v
	}
	return a, nil
}

// Files are the Authenticator's reloadable files, those configured: the
// token file and the JWT key file.
func (a *Authenticator) Files() []reload.Reloader {
	var out []reload.Reloader
	if a.tokens != nil {
		out = append(out, a.tokens)
	}
	if a.jwt != nil {
		out = append(out, a.jwt.keys)
	}
	return out
}

// TokenNames are the names of the tokens in use, sorted; nil without a
// token file.
func (a *Authenticator) TokenNames() []string {
	if a == nil || a.tokens == nil {
		return nil
	}
	return a.tokens.Get().Names()
}

// Authenticate identifies the caller from the value of an Authorization
// header: ErrNoCredentials when it is empty, a *CredentialError when it is
// malformed or its token is unknown, expired or badly signed.
func (a *Authenticator) Authenticate(authorization string) (Principal, error) {
	if authorization == "" {
		return Principal{}, ErrNoCredentials
	}
	tok, err := bearerToken(authorization)
	if err != nil {
		return Principal{}, err
	}
	if a.tokens != nil {
		if p, ok := a.tokens.Get().Lookup(tok); ok {
			return p, nil
		}
	}
	if a.jwt != nil && strings.Count(tok, ".") == 2 {
		return a.jwt.Verify(tok)
	}
	return Principal{}, &CredentialError{Reason: "unknown token"}
}

// maxTokenLen bounds a bearer token; a JWT with a few claims is well under it.
const maxTokenLen = 8 << 10

// bearerToken returns the token of "Bearer <token>" (the scheme is
// case-insensitive, RFC 7235), checked against RFC 6750's token syntax.
func bearerToken(h string) (string, error) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", &CredentialError{Reason: "the Authorization header must be \"Bearer <token>\""}
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" {
		return "", &CredentialError{Reason: "the bearer token is empty"}
	}
	if len(tok) > maxTokenLen {
		return "", &CredentialError{Reason: fmt.Sprintf("the bearer token is longer than %d bytes", maxTokenLen)}
	}
	if !validB64Token(tok) {
		return "", &CredentialError{Reason: "the bearer token has characters a token cannot have"}
	}
	return tok, nil
}

// validB64Token reports whether s is RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func validB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
