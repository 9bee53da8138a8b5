package httpapi

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/auth"
	"github.com/featurestore/featurestore/internal/feature"
)

// Authenticator identifies the caller from the Authorization header
// (*auth.Authenticator). A nil Deps.Auth turns authentication off: every
// route is open, as in the embedded quick start.
type Authenticator interface {
	Authenticate(authorization string) (auth.Principal, error)
}

// AuthObserver counts the decisions on protected routes by caller label
// (a token name, auth.LabelJWT, auth.LabelAnonymous or auth.LabelInvalid)
// and result (auth.Result*) (*metrics.Security).
type AuthObserver interface {
	AuthDecision(label, result string)
}

// identity is who a request comes from, as the authenticate middleware
// found it: a principal, or why there is none.
type identity struct {
	principal auth.Principal
	err       error // nil: authenticated
}

type identityKey struct{}

// identityOf returns the request's identity; ok is false when
// authentication is off.
func identityOf(ctx context.Context) (identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*identity)
	if !ok {
		return identity{}, false
	}
	return *id, true
}

// authenticate identifies the caller of every request once, before the
// access log, which names it. It refuses nothing: each route decides what
// it needs (guard), so public routes stay public whatever a client sends.
func authenticate(a Authenticator) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if a == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := a.Authenticate(r.Header.Get("Authorization"))
			ctx := context.WithValue(r.Context(), identityKey{}, &identity{principal: p, err: err})
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// callerFields are the access log's fields naming the caller: auth, the
// token's name (never the token), anonymous or invalid, and its role; none
// with authentication off.
func callerFields(ctx context.Context) []zap.Field {
	id, ok := identityOf(ctx)
	if !ok {
		return nil
	}
	return []zap.Field{zap.String("auth", callerName(id)), zap.String("role", id.principal.Role.String())}
}

func callerName(id identity) string {
	switch {
	case errors.Is(id.err, auth.ErrNoCredentials):
		return auth.LabelAnonymous
	case id.err != nil:
		return auth.LabelInvalid
	}
	return id.principal.Name
}

func callerLabel(id identity) string {
	if id.err != nil {
		return callerName(id)
	}
	return id.principal.Label
}

// mayRead reports whether the caller may see what a reader sees (the
// details of /health): always with authentication off.
func mayRead(r *http.Request) bool {
	id, ok := identityOf(r.Context())
	return !ok || (id.err == nil && id.principal.Role.Allows(auth.Reader))
}

// guard is what every route's handler is wrapped in: requireRole, then
// requireJSON.
func guard(need auth.Role, obs AuthObserver, h http.Handler) http.Handler {
	return requireRole(need, obs, requireJSON(h))
}

// requireRole: with authentication on, a route that needs a role answers
// 401 to a caller without valid credentials and 403 to one whose role is
// too low.
func requireRole(need auth.Role, obs AuthObserver, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, on := identityOf(r.Context()); on && need > auth.Anyone {
			if err := authorize(w, id, need, obs); err != nil {
				writeError(w, r, err)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// requireJSON: a request with a body must send it as JSON (415
// otherwise), which also keeps browsers from sending it cross-site without
// a CORS preflight.
func requireJSON(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkMediaType(r); err != nil {
			writeError(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// realm names the service in WWW-Authenticate challenges.
const realm = `Bearer realm="featurestore"`

// authorize decides whether id may use a route that needs role need. It
// sets the RFC 6750 challenge on a refusal and counts the decision.
func authorize(w http.ResponseWriter, id identity, need auth.Role, obs AuthObserver) error {
	decide := func(result string) {
		if obs != nil {
			obs.AuthDecision(callerLabel(id), result)
		}
	}
	var ce *auth.CredentialError
	switch {
	case errors.Is(id.err, auth.ErrNoCredentials):
		decide(auth.ResultUnauthenticated)
		w.Header().Set("WWW-Authenticate", realm)
		return &feature.Error{Code: feature.CodeUnauthenticated, Message: "authentication required: send Authorization: Bearer <token>",
			Fields: []feature.FieldError{{Field: "Authorization", Problem: "missing"}}}
	case errors.As(id.err, &ce):
		decide(auth.ResultUnauthenticated)
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`%s, error="invalid_token", error_description=%q`, realm, strings.ReplaceAll(ce.Reason, `"`, "'")))
		return &feature.Error{Code: feature.CodeUnauthenticated, Message: "invalid credentials: " + ce.Reason,
			Fields: []feature.FieldError{{Field: "Authorization", Problem: ce.Reason}}, Err: ce.Err}
	case id.err != nil:
		decide(auth.ResultUnauthenticated)
		return fmt.Errorf("authenticate: %w", id.err) // a bug: the Authenticator returned an uncoded error
	case !id.principal.Role.Allows(need):
		decide(auth.ResultForbidden)
		w.Header().Set("WWW-Authenticate", realm+`, error="insufficient_scope"`)
		problem := fmt.Sprintf("%s has role %s; this needs %s", id.principal.Name, id.principal.Role, need)
		if id.principal.Role == auth.Anyone {
			problem = id.principal.Name + " has no role the service knows; this needs " + need.String()
		}
		return &feature.Error{Code: feature.CodeForbidden, Message: "the caller's role does not allow this: it needs " + need.String(),
			Fields: []feature.FieldError{{Field: "Authorization", Problem: problem}}}
	}
	decide(auth.ResultAllowed)
	return nil
}

// feastPaths are the Feast-compatible routes. Feast's own clients post
// their JSON there with no Content-Type at all, so a body without one is
// taken as JSON on these routes only; a browser cannot use that to write
// cross-site, since crossOrigin refuses its cross-origin writes whatever
// they carry.
var feastPaths = map[string]bool{"/get-online-features": true, "/push": true, "/write-to-online-store": true}

// otherBodyTypes are the routes that take a body in a media type besides
// application/json: a training set's entity rows may be uploaded as CSV.
// Their handlers look at the Content-Type to read the body.
var otherBodyTypes = map[string][]string{"/get-historical-features": {"text/csv"}}

// checkMediaType wants a request body to be application/json, or one of
// the route's otherBodyTypes (with no charset, or UTF-8). A request without
// a body passes, and so does one without a Content-Type on the Feast
// routes.
func checkMediaType(r *http.Request) error {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" && feastPaths[r.URL.Path] {
		return nil
	}
	if ct == "application/json" { // what nearly every request says, accepted without parsing it
		return nil
	}
	want := append([]string{"application/json"}, otherBodyTypes[r.URL.Path]...)
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && slices.Contains(want, mt) {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			return nil
		}
	}
	got := "no Content-Type"
	if ct != "" {
		got = strconv.Quote(printableHeader(ct, 100))
	}
	must := "must be " + strings.Join(want, " or ")
	return &feature.Error{Code: feature.CodeUnsupportedMediaType, Message: "the request body " + must + ", got " + got,
		Fields: []feature.FieldError{{Field: "Content-Type", Problem: must}}}
}

// printableHeader cuts a header value a client sent to max bytes for an
// error message.
func printableHeader(s string, max int) string {
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// CallerKey names the client of a request for rate limiting: the token's
// (or JWT subject's) principal once authentication has accepted it, so
// that one caller behind many addresses shares one budget; ipKey (the
// address) otherwise: authentication off, or no valid credentials.
func CallerKey(ipKey func(*http.Request) string) func(*http.Request) string {
	return func(r *http.Request) string {
		if id, on := identityOf(r.Context()); on && id.err == nil && id.principal.Name != "" {
			return "caller:" + id.principal.Name
		}
		return ipKey(r)
	}
}
