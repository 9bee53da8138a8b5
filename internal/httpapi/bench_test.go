package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/featurestore/featurestore/internal/health"
	"github.com/featurestore/featurestore/internal/httpapi"
	"github.com/featurestore/featurestore/internal/store"
)

// benchFeatures is the width of the benchmark group: like the TMDB groups,
// many more features per row than a typical read asks for.
const benchFeatures = 39

// benchGroup is a group of benchFeatures features f0..f38 cycling through
// the four value types (f0 int64, f1 float64, f2 string, f3 bool, ...).
func benchGroup() string {
	types := []string{"int64", "float64", "string", "bool"}
	specs := make([]string, benchFeatures)
	for i := range specs {
		specs[i] = fmt.Sprintf(`{"name": "f%d", "type": %q}`, i, types[i%len(types)])
	}
	return `{"entity_key": "user_id", "features": [` + strings.Join(specs, ", ") + `]}`
}

// benchValue is entity i's value of feature f: a mix of small and large
// numbers, fractions, text needing escapes, and a null now and then.
func benchValue(i, f int) any {
	switch f % 4 {
	case 0:
		return int64(i*1_000_003 + f)
	case 1:
		return float64(i)/3 + float64(f)
	case 2:
		if (i+f)%11 == 0 {
			return nil
		}
		return fmt.Sprintf("segment-%d <%d> \"q\" é", i%7, f)
	}
	return (i+f)%2 == 0
}

// benchEnv is an env with 100 entities u0..u99 of the benchmark group
// "bench", served by a router that logs every request as JSON (to
// io.Discard) the way the service's logger does.
func benchEnv(b *testing.B, be backend) (*env, http.Handler) {
	b.Helper()
	e := newEnv(b, be)
	e.putGroup(b, "bench", benchGroup())
	rows := make([]any, 100)
	for i := range rows {
		vals := map[string]any{}
		for f := range benchFeatures {
			vals[fmt.Sprintf("f%d", f)] = benchValue(i, f)
		}
		rows[i] = map[string]any{"entity_id": fmt.Sprintf("u%d", i), "values": vals}
	}
	e.writeRows(b, "bench", rows...)
	d := e.deps()
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)
	d.Logger = zap.New(core, zap.AddCaller())
	return e, httpapi.NewRouter(d)
}

// benchWriter is a ResponseWriter that keeps the status and counts the
// bytes, like a server's, without the recorder's copies.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

// benchServe runs b's loop over one request per iteration (req makes it),
// through h, failing on any status but 200.
func benchServe(b *testing.B, h http.Handler, req func(i int) *http.Request) {
	b.Helper()
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		clear(w.h)
		w.status, w.n = 0, 0
		h.ServeHTTP(w, req(i))
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
		i++
	}
	b.SetBytes(int64(w.n))
}

// benchBackends are the backends of the tests and Postgres with the near
// cache in front of Redis, as scripts/perf.sh runs it.
func benchBackends() []backend {
	return append(backends(), backend{"postgres-near", func(tb testing.TB) (store.Store, []health.Component) {
		return openPostgresNear(tb, 50_000)
	}})
}

// BenchmarkGetOnlineFeatures: Feast batch reads through the router (no
// network), cache warm: 1 entity × 5 features, 100 entities × 5 features
// and 1 entity × all 39 features.
func BenchmarkGetOnlineFeatures(b *testing.B) {
	refs := func(n int) []string {
		out := make([]string, n)
		for f := range out {
			out[f] = fmt.Sprintf("bench:f%d", f*benchFeatures/n) // spread over the row
		}
		return out
	}
	cases := []struct {
		name               string
		entities, features int
	}{
		{"1x5", 1, 5},
		{"100x5", 100, 5},
		{"1x39", 1, benchFeatures},
	}
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			e, h := benchEnv(b, be)
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) {
					bodies := make([]string, 100)
					for i := range bodies {
						ids := make([]string, c.entities)
						for j := range ids {
							ids[j] = fmt.Sprintf("u%d", (i+j)%100)
						}
						bodies[i] = mustJSON(b, map[string]any{
							"entities": map[string]any{"user_id": ids},
							"features": refs(c.features),
						})
						e.mustDo(b, http.StatusOK, "POST", "/get-online-features", bodies[i])
					}
					benchServe(b, h, func(i int) *http.Request {
						r, _ := http.NewRequest("POST", "/get-online-features", strings.NewReader(bodies[i%len(bodies)]))
						r.Header.Set("Content-Type", "application/json")
						return r
					})
				})
			}
		})
	}
}

// BenchmarkGetEntity: one GET of one entity's features through the router
// (no network), cache warm: all 39, and 5 named in ?features=.
func BenchmarkGetEntity(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			e, h := benchEnv(b, be)
			for _, c := range []struct{ name, query string }{{"all", ""}, {"5", "?features=f0,f9,f18,f27,f36"}} {
				b.Run(c.name, func(b *testing.B) {
					targets := make([]string, 100)
					for i := range targets {
						targets[i] = fmt.Sprintf("/v1/feature-groups/bench/entities/u%d%s", i, c.query)
						e.mustDo(b, http.StatusOK, "GET", targets[i], "")
					}
					benchServe(b, h, func(i int) *http.Request {
						r, _ := http.NewRequest("GET", targets[i%len(targets)], nil)
						return r
					})
				})
			}
		})
	}
}
