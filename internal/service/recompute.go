package service

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// RecomputeStatus is the progress of the statistical-feature recompute.
type RecomputeStatus struct {
	// State is idle, running, succeeded or failed.
	State      string     `json:"state"`
	Done       int        `json:"done"`
	Total      int        `json:"total"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Error      string     `json:"error,omitempty"`
}

// RecomputeStatus returns the progress of the running or last recompute.
func (s *Service) RecomputeStatus() RecomputeStatus { return *s.progress.Load() }

// ErrRecomputeRunning is returned when a recompute is already in progress.
var ErrRecomputeRunning = feature.Conflict("a recompute is already running")

// recomputeChunk is how many movies' statistical rows go in one transaction.
const recomputeChunk = 1000

// Recompute refreshes movie_statistical for every stored movie against the
// whole stored corpus: it reads each movie's latest movie_basic row, builds
// the corpus, and writes new statistical rows in transactions of
// recomputeChunk movies. progress, if not nil, is called after each chunk.
func (s *Service) Recompute(ctx context.Context, progress func(done, total int)) (n int, err error) {
	if s.opts.ReadOnly {
		return 0, errReadOnly
	}
	if !s.recomputeMu.TryLock() {
		return 0, ErrRecomputeRunning
	}
	defer s.recomputeMu.Unlock()
	return s.recompute(ctx, progress)
}

// recompute runs with recomputeMu held.
func (s *Service) recompute(ctx context.Context, progress func(done, total int)) (n int, err error) {
	start := s.now()
	startedAt := start
	s.progress.Store(&RecomputeStatus{State: "running", StartedAt: &startedAt})
	defer func() {
		d := s.now().Sub(start)
		s.instrument(feature.OpRecompute, tmdb.GroupStatistical, start, err)
		s.obs.Recomputed(n, d, err)
		st := *s.progress.Load()
		fin := s.now()
		st.FinishedAt = &fin
		if err != nil {
			st.State, st.Error = "failed", err.Error()
			s.log.Error("recompute of statistical features failed", zap.Error(err))
		} else {
			st.State = "succeeded"
			s.log.Info("recomputed statistical features", zap.Int("movies", n), zap.Duration("duration", d))
		}
		s.progress.Store(&st)
	}()

	s.corpusMu.Lock()
	s.sinceScan = []basicInput{}
	s.corpusMu.Unlock()
	defer func() {
		s.corpusMu.Lock()
		s.sinceScan = nil
		s.corpusMu.Unlock()
	}()
	corpus := tmdb.NewCorpus()
	var movies []basicInput
	err = s.st.ScanLatest(ctx, tmdb.GroupBasic, func(r feature.Row) error {
		in, ok := basicInputs(r)
		if !ok {
			return nil
		}
		corpus.Set(in.id, in.voteAverage, in.popularity)
		movies = append(movies, in)
		return nil
	})
	if err != nil {
		return 0, err
	}
	total := len(movies)
	s.progress.Store(&RecomputeStatus{State: "running", Total: total, StartedAt: &startedAt})
	eventTime := s.clock().next(s.now())
	values := 0
	for lo := 0; lo < total; lo += recomputeChunk {
		hi := min(lo+recomputeChunk, total)
		rows := make([]feature.Row, 0, hi-lo)
		for _, m := range movies[lo:hi] {
			v := tmdb.Statistical(m.voteAverage, m.popularity, m.voteCount, corpus)
			values += len(v)
			rows = append(rows, feature.Row{Group: tmdb.GroupStatistical, EntityID: strconv.FormatInt(m.id, 10),
				EventTime: eventTime, WriteTime: eventTime, Values: v})
		}
		if err := s.st.WriteRows(ctx, rows); err != nil {
			return lo, err
		}
		s.progress.Store(&RecomputeStatus{State: "running", Done: hi, Total: total, StartedAt: &startedAt})
		if progress != nil {
			progress(hi, total)
		}
	}
	if total > 0 {
		s.obs.FeaturesWritten(tmdb.GroupStatistical, values)
		s.obs.SetNewestEvent(tmdb.GroupStatistical, eventTime)
	}
	s.corpusMu.Lock()
	for _, m := range s.sinceScan { // ingested after the scan began
		corpus.Set(m.id, m.voteAverage, m.popularity)
	}
	s.corpus = corpus
	s.corpusMu.Unlock()
	return total, nil
}

// StartRecompute runs Recompute in the background (for the HTTP API) and
// returns at once; ErrRecomputeRunning if one is already running.
func (s *Service) StartRecompute(ctx context.Context) error {
	if !s.recomputeMu.TryLock() {
		return ErrRecomputeRunning
	}
	now := s.now()
	s.progress.Store(&RecomputeStatus{State: "running", StartedAt: &now})
	go func() {
		defer s.recomputeMu.Unlock()
		_, _ = s.recompute(context.WithoutCancel(ctx), nil) // the outcome is logged and kept in the status
	}()
	return nil
}

func (s *Service) kickRecompute() {
	if s.opts.RecomputeDelay <= 0 {
		return
	}
	select {
	case s.recomputeKick <- struct{}{}:
	default:
	}
}

// recomputeLoop recomputes once ingests have been quiet for RecomputeDelay.
func (s *Service) recomputeLoop(ctx context.Context) {
	if s.opts.RecomputeDelay <= 0 {
		return
	}
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-s.recomputeKick:
			if timer == nil {
				timer = time.NewTimer(s.opts.RecomputeDelay)
			} else {
				timer.Reset(s.opts.RecomputeDelay)
			}
			fire = timer.C
		case <-fire:
			fire = nil
			if _, err := s.Recompute(ctx, nil); errors.Is(err, ErrRecomputeRunning) {
				s.kickRecompute() // try again after the running one
			}
		}
	}
}

type basicInput struct {
	id                      int64
	voteAverage, popularity float64
	voteCount               int64
}

// basicInputs reads a movie's statistical inputs from its movie_basic row.
func basicInputs(r feature.Row) (basicInput, bool) {
	id, err := strconv.ParseInt(r.EntityID, 10, 64)
	if err != nil {
		return basicInput{}, false
	}
	va, ok1 := r.Values["vote_average"].(float64)
	pop, ok2 := r.Values["popularity"].(float64)
	vc, ok3 := r.Values["vote_count"].(int64)
	if !ok1 || !ok2 || !ok3 {
		return basicInput{}, false
	}
	return basicInput{id: id, voteAverage: va, popularity: pop, voteCount: vc}, true
}
