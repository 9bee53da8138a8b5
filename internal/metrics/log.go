package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
)

// numLevels is the number of zap levels, debug through fatal.
const numLevels = int(zapcore.FatalLevel-zapcore.DebugLevel) + 1

func levelName(i int) string { return (zapcore.DebugLevel + zapcore.Level(i)).String() } // #nosec G115 -- i is an index below numLevels (7)

// CountingCore wraps core so that every entry it writes is counted in
// feature_store_log_events_total{level}: the Go counterpart of logback's
// logback_events_total. Entries the core drops (below its level, or
// sampled away) are not counted. Wrap the logger's root core with it.
func (m *Metrics) CountingCore(core zapcore.Core) zapcore.Core {
	return &countingCore{Core: core, tally: &tallyCore{counters: &m.logEvents}}
}

type countingCore struct {
	zapcore.Core
	tally *tallyCore
}

// Level reports the wrapped core's level, for zapcore.LevelOf.
func (c *countingCore) Level() zapcore.Level { return zapcore.LevelOf(c.Core) }

func (c *countingCore) With(fields []zapcore.Field) zapcore.Core {
	return &countingCore{Core: c.Core.With(fields), tally: c.tally}
}

// Check lets the wrapped core decide (and register itself on the checked
// entry, so write errors reach the logger's error output as usual), then
// adds the tally, which counts the entry when the logger writes it.
func (c *countingCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	had := ce != nil
	out := c.Core.Check(ent, ce)
	// With an entry already holding another core (a tee's earlier member),
	// a non-nil result says nothing; fall back to the wrapped core's level.
	if out == nil || (had && !c.Core.Enabled(ent.Level)) {
		return out
	}
	return out.AddCore(ent, c.tally)
}

// tallyCore counts the entries it is asked to write and writes nothing.
type tallyCore struct {
	counters *[numLevels]prometheus.Counter
}

func (t *tallyCore) Enabled(zapcore.Level) bool        { return true }
func (t *tallyCore) With([]zapcore.Field) zapcore.Core { return t }
func (t *tallyCore) Sync() error                       { return nil }
func (t *tallyCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(ent, t)
}

func (t *tallyCore) Write(ent zapcore.Entry, _ []zapcore.Field) error {
	if i := int(ent.Level - zapcore.DebugLevel); i >= 0 && i < numLevels {
		t.counters[i].Inc()
	}
	return nil
}
