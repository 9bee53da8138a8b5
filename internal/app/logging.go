package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"

	"github.com/featurestore/featurestore/internal/logfile"
	"github.com/featurestore/featurestore/internal/metrics"
)

// newLogger builds the JSON logger on w; m (if not nil) counts the entries
// written by level.
func newLogger(w io.Writer, level string, m *metrics.Metrics) (*zap.Logger, error) {
	return buildLogger(level, m, logSink{w: w})
}

// newServiceLogger is newLogger for the service: with cfg.LogDir set, the
// same JSON lines also go to LOGDIR/app/application.log (every entry),
// LOGDIR/error/error.log (error level and above) and
// LOGDIR/performance/performance.log (requests slower than
// cfg.LogSlowRequest), the layout of the operators' guide; each file rotates
// by size and daily, and its rotated files are removed past cfg.LogMaxAge or
// cfg.LogMaxFiles. With cfg.LogFlushInterval set, each destination gathers
// its lines and writes them in batches (logfile.Buffered): every interval,
// when its buffer fills, and at once after a warning or an error. closeLog
// flushes and closes them; call it after the last log line.
func newServiceLogger(w io.Writer, cfg Config, m *metrics.Metrics) (log *zap.Logger, closeLog func() error, err error) {
	var buffers []*logfile.Buffered
	var files []*logfile.File
	closeLog = func() error {
		var errs []error
		for _, b := range buffers { // before the files they write to
			errs = append(errs, b.Close())
		}
		for _, f := range files {
			errs = append(errs, f.Close())
		}
		return errors.Join(errs...)
	}
	sink := func(w io.Writer) logSink {
		if cfg.LogFlushInterval <= 0 {
			return logSink{w: w}
		}
		b := logfile.NewBuffered(w, logBufferBytes, cfg.LogFlushInterval)
		buffers = append(buffers, b)
		return logSink{w: b, buffered: b}
	}
	sinks := []logSink{sink(w)}
	if cfg.LogDir != "" {
		names := []string{filepath.Join("app", "application.log"), filepath.Join("error", "error.log")}
		if cfg.LogSlowRequest > 0 {
			names = append(names, filepath.Join("performance", "performance.log"))
		}
		for _, name := range names {
			f, err := logfile.Open(filepath.Join(cfg.LogDir, name), cfg.LogMaxSize, int(cfg.LogMaxFiles), logfile.WithMaxAge(cfg.LogMaxAge))
			if err != nil {
				_ = closeLog()
				return nil, nil, fmt.Errorf("log dir: %w", err)
			}
			files = append(files, f)
		}
		app, errs := sink(files[0]), sink(files[1])
		errs.errorsOnly = true
		sinks = append(sinks, app, errs)
		if cfg.LogSlowRequest > 0 {
			slow := sink(files[2])
			slow.slowerThan = cfg.LogSlowRequest
			sinks = append(sinks, slow)
		}
	}
	log, err = buildLogger(cfg.LogLevel, m, sinks...)
	if err != nil {
		_ = closeLog()
		return nil, nil, err
	}
	return log, closeLog, nil
}

// logBufferBytes is the buffer of each log destination under
// --log-flush-interval: about a thousand request lines.
const logBufferBytes = 256 << 10

// logSink is one destination of the logger's JSON lines.
type logSink struct {
	w          io.Writer
	buffered   *logfile.Buffered // w, when it is buffered
	errorsOnly bool              // only entries at error level and above
	slowerThan time.Duration     // if set, only the access log entries of requests at least this slow
}

func buildLogger(level string, m *metrics.Metrics, sinks ...logSink) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "" // timeFirstEncoder writes it, first
	enc.EncodeDuration = zapcore.MillisDurationEncoder
	cores := make([]zapcore.Core, len(sinks))
	for i, s := range sinks {
		sinkLevel := lvl
		if s.errorsOnly {
			sinkLevel = max(lvl, zapcore.ErrorLevel)
		}
		if s.buffered != nil { // safe for concurrent use, flushed at once past info
			cores[i] = flushPastInfo{zapcore.NewCore(timeFirstEncoder{zapcore.NewJSONEncoder(enc)}, s.buffered, sinkLevel), s.buffered}
		} else {
			cores[i] = zapcore.NewCore(timeFirstEncoder{zapcore.NewJSONEncoder(enc)}, zapcore.Lock(zapcore.AddSync(s.w)), sinkLevel)
		}
		if s.slowerThan > 0 {
			cores[i] = slowRequests{Core: cores[i], threshold: s.slowerThan}
		}
	}
	// One tee under the counting core: an entry written to several sinks
	// is counted once.
	core := zapcore.NewTee(cores...)
	if m != nil {
		core = m.CountingCore(core)
	}
	return zap.New(core, zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel+1), zap.Fields(zap.String("service", "featurestore"))), nil
}

// flushPastInfo is the core of a buffered destination: a warning or an
// error is written out at once, with the lines buffered before it, so what
// an operator must see is never held back, nor lost with the process.
type flushPastInfo struct {
	zapcore.Core
	buf *logfile.Buffered
}

func (c flushPastInfo) With(fields []zapcore.Field) zapcore.Core {
	return flushPastInfo{c.Core.With(fields), c.buf}
}

func (c flushPastInfo) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c flushPastInfo) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	err := c.Core.Write(ent, fields)
	if ent.Level > zapcore.InfoLevel {
		err = errors.Join(err, c.buf.Flush())
	}
	return err
}

// timeFirstEncoder is zap's JSON encoder with the entry's time, in UTC
// RFC 3339 with nanoseconds, as the first key:
//
//	{"ts":"2026-01-02T03:04:05.678901234Z","level":"info","caller":...,"msg":...}
//
// The operators' log checks date a line by a digit among its first 20
// characters, and zap's own encoder writes the level first.
type timeFirstEncoder struct{ zapcore.Encoder }

var lineBuffers = buffer.NewPool()

func (e timeFirstEncoder) Clone() zapcore.Encoder { return timeFirstEncoder{e.Encoder.Clone()} }

func (e timeFirstEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	inner, err := e.Encoder.EncodeEntry(ent, fields)
	if err != nil {
		return nil, err
	}
	defer inner.Free()
	out := lineBuffers.Get()
	out.AppendString(`{"ts":"`)
	out.AppendTime(ent.Time.UTC(), time.RFC3339Nano)
	out.AppendByte('"')
	rest := inner.Bytes()[1:] // after the inner object's {
	if len(rest) > 0 && rest[0] != '}' {
		out.AppendByte(',')
	}
	_, _ = out.Write(rest)
	return out, nil
}

// accessLogMessage is the message of the access log's one entry per request
// (internal/httpapi), which carries route, status and duration_ms.
const accessLogMessage = "request"

// slowRequests is the core of the performance log: of every entry it keeps
// only the access log's of requests that took at least threshold, renamed
// "slow request" and with the threshold added. The entry keeps all its
// fields: request id, method, route, status, duration_ms, and the slowest
// step wherever the request's log line names one.
type slowRequests struct {
	zapcore.Core
	threshold time.Duration
}

func (c slowRequests) With(fields []zapcore.Field) zapcore.Core {
	return slowRequests{Core: c.Core.With(fields), threshold: c.threshold}
}

func (c slowRequests) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if ent.Message == accessLogMessage && c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c slowRequests) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	for _, f := range fields {
		if f.Key != "duration_ms" || f.Type != zapcore.Float64Type {
			continue
		}
		ms := math.Float64frombits(uint64(f.Integer)) // #nosec G115 -- a bit-for-bit reinterpretation of the float zap stored, not an arithmetic conversion
		if ms < float64(c.threshold)/float64(time.Millisecond) {
			return nil
		}
		ent.Message = "slow request"
		withThreshold := append(fields[:len(fields):len(fields)], zap.Float64("threshold_ms", float64(c.threshold)/float64(time.Millisecond)))
		return c.Core.Write(ent, withThreshold)
	}
	return nil
}

// go-redis logs its own messages (dial failures, pool events) through one
// package-level logger. routeRedisLogs sends them into the JSON log of the
// most recently opened service, as warnings, so they are counted by level
// and reach --log-dir instead of going to stderr as plain text. The hook
// is installed once per process and the target swapped atomically, so
// clients already running never race with a new service's start.
var (
	redisLogOnce   sync.Once
	redisLogTarget atomic.Pointer[zap.Logger]
)

func routeRedisLogs(log *zap.Logger) {
	redisLogTarget.Store(log)
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}

type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	if log := redisLogTarget.Load(); log != nil {
		log.Warn(fmt.Sprintf(format, v...), zap.String("component", "go-redis"))
	}
}
