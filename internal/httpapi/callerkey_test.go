package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/featurestore/featurestore/internal/auth"
)

// TestCallerKey: with authentication on, an accepted caller is rate limited
// by its principal's name, wherever it calls from; a request without valid
// credentials, or with authentication off, by its address.
func TestCallerKey(t *testing.T) {
	t.Parallel()
	key := CallerKey(func(*http.Request) string { return "addr" })
	with := func(id *identity) *http.Request {
		r := httptest.NewRequest("GET", "/v1/stats", nil)
		if id == nil {
			return r
		}
		return r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
	}
	for _, c := range []struct {
		name string
		id   *identity
		want string
	}{
		{"authentication off", nil, "addr"},
		{"accepted token", &identity{principal: auth.Principal{Name: "ci-ingest", Role: auth.Writer}}, "caller:ci-ingest"},
		{"accepted JWT", &identity{principal: auth.Principal{Name: "jwt:svc", Role: auth.Reader}}, "caller:jwt:svc"},
		{"refused credentials", &identity{err: errors.New("unknown token")}, "addr"},
		{"no credentials", &identity{principal: auth.Principal{}}, "addr"},
	} {
		if got := key(with(c.id)); got != c.want {
			t.Errorf("%s: key %q, want %q", c.name, got, c.want)
		}
	}
}
