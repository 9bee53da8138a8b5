package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
)

const benchGroup = `{"entity_key": "user_id", "features": [{"name": "f1", "type": "int64"}, {"name": "f2", "type": "float64"},
	{"name": "f3", "type": "string"}, {"name": "f4", "type": "bool"}, {"name": "f5", "type": "float64"}]}`

// benchEnv is an env with 100 entities u0..u99 of a five-feature group.
func benchEnv(b *testing.B, be backend) *env {
	b.Helper()
	e := newEnv(b, be)
	e.putGroup(b, "bench", benchGroup)
	rows := make([]any, 100)
	for i := range rows {
		rows[i] = map[string]any{"entity_id": fmt.Sprintf("u%d", i),
			"values": map[string]any{"f1": i, "f2": float64(i) / 3, "f3": fmt.Sprintf("segment-%d", i%7), "f4": i%2 == 0, "f5": 1.5}}
	}
	e.writeRows(b, "bench", rows...)
	return e
}

// BenchmarkGetOnlineFeatures: one Feast batch read of 100 entities × 5
// features through the router (no network), cache warm.
func BenchmarkGetOnlineFeatures(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			e := benchEnv(b, be)
			ids := make([]string, 100)
			for i := range ids {
				ids[i] = fmt.Sprintf("u%d", i)
			}
			body := mustJSON(b, map[string]any{
				"entities": map[string]any{"user_id": ids},
				"features": []string{"bench:f1", "bench:f2", "bench:f3", "bench:f4", "bench:f5"},
			})
			e.mustDo(b, http.StatusOK, "POST", "/get-online-features", body)
			b.ReportAllocs()
			for b.Loop() {
				if w := e.do("POST", "/get-online-features", body); w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkGetEntity: one GET of one entity's five features through the
// router (no network), cache warm.
func BenchmarkGetEntity(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			e := benchEnv(b, be)
			for i := range 100 {
				e.mustDo(b, http.StatusOK, "GET", fmt.Sprintf("/v1/feature-groups/bench/entities/u%d", i), "")
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				target := fmt.Sprintf("/v1/feature-groups/bench/entities/u%d", i%100)
				if w := e.do("GET", target, ""); w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
				i++
			}
		})
	}
}
