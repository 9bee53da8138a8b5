package service

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// RecomputeStatus is the outcome of the last recompute request.
type RecomputeStatus struct {
	// State is idle, running, succeeded or failed.
	State      string     `json:"state"`
	Done       int        `json:"done"`
	Total      int        `json:"total"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Error      string     `json:"error,omitempty"`
}

// RecomputeStatus returns the outcome of the last recompute request.
func (s *Service) RecomputeStatus() RecomputeStatus { return *s.progress.Load() }

// ErrRecomputeRunning is kept for callers that still test for it; Recompute
// no longer returns it (there is nothing left to run).
var ErrRecomputeRunning = feature.Conflict("a recompute is already running")

// Recompute is deprecated: there is nothing to recompute. The
// corpus-relative statistical features (rating_zscore, popularity_zscore,
// rating_percentile) are computed at read time from the corpus aggregate
// that the system of record updates in the same transaction as every write
// (docs/statistics.md), and the other statistical features depend on the
// movie alone. Recompute writes nothing; it reads the corpus size (one row,
// whatever N) and reports every movie as up to date, calling progress once
// with (n, n). It is kept so that `POST /v1/recompute` and `featurestore
// recompute` still answer.
func (s *Service) Recompute(ctx context.Context, progress func(done, total int)) (n int, err error) {
	if s.opts.ReadOnly {
		return 0, errReadOnly
	}
	start := s.now()
	defer func() {
		s.instrument(feature.OpRecompute, tmdb.GroupStatistical, start, err)
		s.obs.Recomputed(n, s.now().Sub(start), err)
		fin := s.now()
		st := RecomputeStatus{State: "succeeded", Done: n, Total: n, StartedAt: &start, FinishedAt: &fin}
		if err != nil {
			st = RecomputeStatus{State: "failed", Error: err.Error(), StartedAt: &start, FinishedAt: &fin}
		}
		s.progress.Store(&st)
	}()
	n, err = s.corpusMovies(ctx)
	if err != nil {
		return 0, err
	}
	s.log.Info("recompute requested: statistical features are computed at read time; nothing to do", zap.Int("movies", n))
	if progress != nil {
		progress(n, n)
	}
	return n, nil
}

// StartRecompute runs Recompute (for the HTTP API). It is synchronous, as
// Recompute costs one small query; the outcome is in RecomputeStatus.
func (s *Service) StartRecompute(ctx context.Context) error {
	_, err := s.Recompute(ctx, nil)
	return err
}
