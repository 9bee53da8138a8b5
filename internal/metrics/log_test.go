package metrics

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// syncBuffer is a concurrency-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Sync() error { return nil }

func (s *syncBuffer) lines() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), "\n")
}

func jsonCore(w zapcore.WriteSyncer, level zapcore.Level) zapcore.Core {
	return zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), w, level)
}

func logEvents(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, lv := range []string{"debug", "info", "warn", "error", "dpanic", "panic", "fatal"} {
		out[lv] = value(t, reg, "feature_store_log_events_total", "level", lv)
	}
	return out
}

func TestCountingCoreCountsWrittenEntriesByLevel(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{}, nil)
	var out syncBuffer
	log := zap.New(m.CountingCore(jsonCore(&out, zapcore.InfoLevel)))

	log.Debug("below the level: not written, not counted")
	log.Info("one")
	log.With(zap.String("component", "cache")).Info("two") // child loggers count too
	log.Warn("three")
	log.Error("four")
	log.DPanic("five") // production logger: does not panic
	func() {
		defer func() { _ = recover() }()
		log.Panic("six")
	}()

	want := map[string]float64{"debug": 0, "info": 2, "warn": 1, "error": 1, "dpanic": 1, "panic": 1, "fatal": 0}
	got := logEvents(t, reg)
	for lv, n := range want {
		if got[lv] != n {
			t.Errorf("log_events_total{level=%q} = %v, want %v", lv, got[lv], n)
		}
	}
	if lines := out.lines(); lines != 6 {
		t.Errorf("%d lines written, want 6", lines)
	}
	if zapcore.LevelOf(m.CountingCore(jsonCore(&out, zapcore.WarnLevel))) != zapcore.WarnLevel {
		t.Error("the counting core hides the wrapped core's level")
	}
}

func TestCountingCoreSkipsSampledEntries(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{}, nil)
	var out syncBuffer
	// Per second: the first entry of a message, then none.
	sampled := zapcore.NewSamplerWithOptions(jsonCore(&out, zapcore.InfoLevel), time.Hour, 1, 0)
	log := zap.New(m.CountingCore(sampled))
	for range 5 {
		log.Info("same message")
	}
	if got := logEvents(t, reg)["info"]; got != float64(out.lines()) || got != 1 {
		t.Errorf("counted %v info entries, %d written; want 1 and 1", got, out.lines())
	}
}

func TestCountingCoreInsideTee(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{}, nil)
	var all, warnings syncBuffer
	// The counted core is the tee's second member, so it receives an entry
	// that already holds the first member.
	log := zap.New(zapcore.NewTee(jsonCore(&all, zapcore.DebugLevel), m.CountingCore(jsonCore(&warnings, zapcore.WarnLevel))))
	log.Info("only the first core")
	log.Warn("both cores")
	got := logEvents(t, reg)
	if got["info"] != 0 || got["warn"] != 1 {
		t.Errorf("counted info=%v warn=%v, want 0 and 1", got["info"], got["warn"])
	}
	if all.lines() != 2 || warnings.lines() != 1 {
		t.Errorf("written %d and %d lines, want 2 and 1", all.lines(), warnings.lines())
	}
}
