package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestJudgeFreshness(t *testing.T) {
	t.Parallel()
	sample := func(evalAt float64, ts string) promSample {
		return promSample{Metric: map[string]string{"job": "featurestore"}, Value: [2]any{evalAt, ts}}
	}
	cases := []struct {
		name       string
		samples    []promSample
		wantDetail string
		wantErr    string
	}{
		{"absent", nil, "", "no m series in Prometheus"},
		{"fresh: the newest series counts", []promSample{sample(1000, "900"), sample(1000, "998.5")}, "2 series, newest sample 1.5s old", ""},
		{"exactly at the limit", []promSample{sample(1000, "970")}, "1 series, newest sample 30s old", ""},
		{"stale", []promSample{sample(1000, "955"), sample(1000, "940")}, "", "2 series, but the newest sample is 45s old (limit 30s)"},
		{"sample in the future counts as fresh", []promSample{sample(1000, "1002")}, "1 series, newest sample 0s old", ""},
		{"malformed", []promSample{sample(1000, "soon")}, "", "unexpected sample"},
	}
	for _, c := range cases {
		detail, err := judgeFreshness("m", c.samples, 30*time.Second)
		switch {
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.wantErr)
		case c.wantErr == "" && (err != nil || detail != c.wantDetail):
			t.Errorf("%s: %q, %v; want %q", c.name, detail, err, c.wantDetail)
		}
	}
}

func TestEmptyURLsSkip(t *testing.T) {
	t.Parallel()
	checks := Run(context.Background(), Config{})
	if len(checks) != 8+len(RequiredMetrics())+5 {
		t.Fatalf("%d checks", len(checks))
	}
	for _, c := range checks {
		if c.Result != Skip || !strings.HasPrefix(c.Detail, "no --") {
			t.Errorf("%+v, want a skip naming its flag", c)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	ok := Config{Prometheus: "http://localhost:9090", Timeout: time.Second, Freshness: time.Second}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Timeout: time.Second, Freshness: time.Second}, "nothing to verify"},
		{Config{Grafana: "localhost:3000", Timeout: time.Second, Freshness: time.Second}, `--grafana "localhost:3000" is not an http(s) URL`},
		{Config{API: "http://x", Freshness: time.Second}, "--timeout must be positive"},
	} {
		if err := c.cfg.validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("validate(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestReportFormats(t *testing.T) {
	t.Parallel()
	checks := []Check{
		{Name: "service health", Result: Pass, Detail: "UP: sqlite UP, memory UP", Duration: 1500 * time.Microsecond},
		{Name: "prometheus targets", Result: Fail, Detail: "1 of 3 targets not up:\nredis", Duration: 2 * time.Millisecond},
		{Name: "grafana health", Result: Skip, Detail: "no --grafana URL given"},
	}
	var table bytes.Buffer
	if err := WriteTable(&table, checks); err != nil {
		t.Fatal(err)
	}
	want := `CHECK               RESULT  TIME   DETAIL
service health      PASS    1.5ms  UP: sqlite UP, memory UP
prometheus targets  FAIL    2.0ms  1 of 3 targets not up: redis
grafana health      SKIP    -      no --grafana URL given

1 passed, 1 failed, 1 skipped
`
	if diff := cmp.Diff(want, table.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}

	var js bytes.Buffer
	if err := WriteJSON(&js, checks); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, js.String())
	}
	wantJSON := map[string]any{
		"checks": []any{
			map[string]any{"check": "service health", "result": "PASS", "detail": "UP: sqlite UP, memory UP", "duration_ms": 1.5},
			map[string]any{"check": "prometheus targets", "result": "FAIL", "detail": "1 of 3 targets not up:\nredis", "duration_ms": 2.0},
			map[string]any{"check": "grafana health", "result": "SKIP", "detail": "no --grafana URL given", "duration_ms": 0.0},
		},
		"failed":  []any{"prometheus targets"},
		"summary": map[string]any{"passed": 1.0, "failed": 1.0, "skipped": 1.0, "ok": false},
	}
	if diff := cmp.Diff(wantJSON, got); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
}
