package service

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// HistoryPruner is what the retention loop needs of the system of record:
// both engines have it (the cache wrapper does not, so the caller hands the
// engine itself).
type HistoryPruner interface {
	PruneHistory(ctx context.Context, horizons []store.Horizon, batch int) (store.PruneResult, error)
}

// PruneObserver receives the result of each pruning pass.
// *metrics.Metrics satisfies it.
type PruneObserver interface {
	HistoryPruned(rows int64, skipped bool, err error)
}

// RetentionOptions configure a Retention.
type RetentionOptions struct {
	// Default is the history retention of groups that set none; 0 keeps
	// their history.
	Default time.Duration
	// Interval between pruning passes; 0 means 1 minute.
	Interval time.Duration
	// BatchSize is the number of rows one delete removes; 0 means 1000.
	BatchSize int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger; a no-op logger when nil.
	Logger *zap.Logger
	// Observer; none when nil.
	Observer PruneObserver
}

// Retention prunes the history of every group past its retention, one
// pass every interval. Passes on several replicas are safe: the store runs
// one at a time in the cluster and the others skip.
type Retention struct {
	pruner HistoryPruner
	groups func() []feature.Group
	opts   RetentionOptions
}

// NewRetention returns the pruning loop of pruner over the groups that
// groups returns (the live registry).
func NewRetention(pruner HistoryPruner, groups func() []feature.Group, opts RetentionOptions) *Retention {
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	return &Retention{pruner: pruner, groups: groups, opts: opts}
}

// Horizons returns, for each group with a retention, where its retained
// history begins at now.
func (r *Retention) Horizons(now time.Time) []store.Horizon {
	var out []store.Horizon
	for _, g := range r.groups() {
		if d := g.Retention(r.opts.Default); d > 0 {
			out = append(out, store.Horizon{Group: g.Name, Before: now.Add(-d)})
		}
	}
	return out
}

// Prune runs one pass. A pass also folds the store's count deltas, so it
// runs even when no group has a retention.
func (r *Retention) Prune(ctx context.Context) (store.PruneResult, error) {
	res, err := r.pruner.PruneHistory(ctx, r.Horizons(r.opts.Now()), r.opts.BatchSize)
	if r.opts.Observer != nil {
		r.opts.Observer.HistoryPruned(res.Rows, res.Skipped, err)
	}
	switch {
	case err != nil && ctx.Err() == nil:
		r.opts.Logger.Warn("history pruning failed", zap.Error(err), zap.Int64("rows_pruned", res.Rows))
	case res.Rows > 0:
		r.opts.Logger.Info("pruned history", zap.Int64("rows", res.Rows))
	}
	return res, err
}

// Run prunes once at start and then every interval until ctx ends.
func (r *Retention) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		_, _ = r.Prune(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkRetention refuses an as-of read older than the group's retention at
// now, whether or not that history has been pruned yet, so the answer does
// not depend on when the pruner last ran. (The store also refuses times
// before what it has actually pruned, which covers clocks that disagree.)
func (s *Service) checkRetention(g feature.Group, asOf time.Time) error {
	d := g.Retention(s.opts.HistoryRetention)
	if d <= 0 {
		return nil
	}
	if start := s.now().Add(-d); asOf.Before(start) {
		return feature.HistoryExpired("as_of "+asOf.UTC().Format(time.RFC3339Nano)+" is older than the history retention of group "+g.Name+
			" ("+d.String()+"): as-of reads are answered from "+start.UTC().Format(time.RFC3339)+" on",
			feature.FieldError{Field: "as_of", Problem: "older than the group's history retention (" + d.String() + ")"})
	}
	return nil
}

// Groups returns the registered groups (the live registry), unordered and
// without recording an operation: for background work such as Retention.
func (s *Service) Groups() []feature.Group {
	reg := s.groups()
	out := make([]feature.Group, 0, len(reg))
	for _, g := range reg {
		out = append(out, g)
	}
	return out
}
