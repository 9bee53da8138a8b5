package httpapi

import "net/http"

// securityHeaders sets the headers every answer carries: the body is
// exactly its declared type (nosniff); API answers are never stored by a
// browser or a proxy (a handler whose answer may be cached says so); no page
// may frame or run an answer; and over TLS, browsers keep to HTTPS (HSTS).
//
// The values are shared by every response rather than allocated per
// request (six allocations of a small read's hundred): a header is only
// ever replaced (Set), extended (Add, which copies a full slice) or
// deleted, never written in place.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for _, kv := range securityHeaderValues {
			h[kv.name] = kv.value
		}
		if r.TLS != nil {
			h["Strict-Transport-Security"] = hstsValue
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaderValues are the headers securityHeaders sets, names in
// canonical form, each value a full slice (len == cap).
var securityHeaderValues = []struct {
	name  string
	value []string
}{
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"Cache-Control", []string{"no-store"}},
	{"Content-Security-Policy", []string{"default-src 'none'; frame-ancestors 'none'"}},
	{"X-Frame-Options", []string{"DENY"}},
	{"Referrer-Policy", []string{"no-referrer"}},
	{"Cross-Origin-Resource-Policy", []string{"same-origin"}},
}

var hstsValue = []string{"max-age=31536000"}
