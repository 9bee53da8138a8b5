package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/featurestore/featurestore/internal/feature"
)

// AnyOrigin in the allowed origins lets every web origin call the API
// from a browser; it needs authentication on (a bearer token is never sent
// by a browser on its own, so a page can only use a token it was given).
const AnyOrigin = "*"

// ParseOrigins parses a comma-separated list of web origins
// (scheme://host[:port], no path), or "*". Empty: none.
func ParseOrigins(s string) ([]string, error) {
	var out, bad []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		switch {
		case o == "":
			continue
		case o == AnyOrigin:
		default:
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
				u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
				bad = append(bad, fmt.Sprintf("%q", o))
				continue
			}
			host := strings.ToLower(u.Host)
			if (u.Scheme == "https" && strings.HasSuffix(host, ":443")) || (u.Scheme == "http" && strings.HasSuffix(host, ":80")) {
				host = host[:strings.LastIndexByte(host, ':')] // browsers leave the default port out
			}
			o = u.Scheme + "://" + host
		}
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("not a web origin (scheme://host[:port]): %s", strings.Join(bad, ", "))
	}
	if slices.Contains(out, AnyOrigin) && len(out) > 1 {
		return nil, fmt.Errorf("%q allows every origin: list no other", AnyOrigin)
	}
	return out, nil
}

// crossOrigin keeps browsers from writing cross-site, and lets the allowed
// origins in.
//
// A browser sends a cross-site "simple" request (a form POST, a text/plain
// fetch) without asking first; guard already refuses a body that is not JSON,
// and http.CrossOriginProtection refuses every write (POST, PUT, DELETE) a
// browser marks as cross-site (Sec-Fetch-Site, or an Origin that is not the
// host), from any origin but the allowed ones. Requests without those
// headers (curl, SDKs, other services) are not browsers and pass.
//
// For the allowed origins it answers CORS preflights and adds the CORS
// headers to their requests. With none (the default), no CORS header is ever
// sent, so a page elsewhere cannot read an answer either.
func crossOrigin(allowed []string) func(http.Handler) http.Handler {
	anyOrigin := slices.Contains(allowed, AnyOrigin)
	cop := http.NewCrossOriginProtection()
	for _, o := range allowed {
		if o != AnyOrigin {
			// ParseOrigins accepted it, so AddTrustedOrigin does too.
			_ = cop.AddTrustedOrigin(o)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, &feature.Error{Code: feature.CodeForbidden,
			Message: "cross-origin write refused: the page's origin is not allowed (--cors-allowed-origins)",
			Fields:  []feature.FieldError{{Field: "Origin", Problem: "not an allowed origin"}}})
	}))
	isAllowed := func(origin string) bool {
		return origin != "" && (anyOrigin || slices.Contains(allowed, strings.ToLower(origin)))
	}
	return func(next http.Handler) http.Handler {
		protected := next
		if !anyOrigin {
			protected = cop.Handler(next)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if len(allowed) > 0 {
				w.Header().Add("Vary", "Origin")
			}
			if !isAllowed(origin) {
				protected.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
				h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id, Idempotency-Key")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
			h.Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After, Location, WWW-Authenticate")
			protected.ServeHTTP(w, r)
		})
	}
}
