package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
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
// same JSON lines also go to LOGDIR/app/application.log (every entry) and
// LOGDIR/error/error.log (error level and above), both rotated by size.
// closeFiles closes those files; call it after the last log line.
func newServiceLogger(w io.Writer, cfg Config, m *metrics.Metrics) (log *zap.Logger, closeFiles func() error, err error) {
	if cfg.LogDir == "" {
		log, err := newLogger(w, cfg.LogLevel, m)
		return log, func() error { return nil }, err
	}
	var files []*logfile.File
	closeFiles = func() error {
		var errs []error
		for _, f := range files {
			errs = append(errs, f.Close())
		}
		return errors.Join(errs...)
	}
	for _, name := range []string{filepath.Join("app", "application.log"), filepath.Join("error", "error.log")} {
		f, err := logfile.Open(filepath.Join(cfg.LogDir, name), cfg.LogMaxSize, int(cfg.LogMaxFiles))
		if err != nil {
			_ = closeFiles()
			return nil, nil, fmt.Errorf("log dir: %w", err)
		}
		files = append(files, f)
	}
	log, err = buildLogger(cfg.LogLevel, m, logSink{w: w}, logSink{w: files[0]}, logSink{w: files[1], errorsOnly: true})
	if err != nil {
		_ = closeFiles()
		return nil, nil, err
	}
	return log, closeFiles, nil
}

// logSink is one destination of the logger's JSON lines.
type logSink struct {
	w          io.Writer
	errorsOnly bool // only entries at error level and above
}

func buildLogger(level string, m *metrics.Metrics, sinks ...logSink) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	enc.EncodeDuration = zapcore.MillisDurationEncoder
	cores := make([]zapcore.Core, len(sinks))
	for i, s := range sinks {
		sinkLevel := lvl
		if s.errorsOnly {
			sinkLevel = max(lvl, zapcore.ErrorLevel)
		}
		cores[i] = zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(s.w)), sinkLevel)
	}
	// One tee under the counting core: an entry written to several sinks
	// is counted once.
	core := zapcore.NewTee(cores...)
	if m != nil {
		core = m.CountingCore(core)
	}
	return zap.New(core, zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel+1), zap.Fields(zap.String("service", "featurestore"))), nil
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
