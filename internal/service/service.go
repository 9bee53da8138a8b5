// Package service is the feature store's behaviour, independent of transport:
// the registry (a snapshot of the system of record's, refreshed when any
// replica changes it), TMDB ingest, typed row writes, latest and
// point-in-time reads with the corpus-relative statistical features computed
// at read time, and the Feast-compatible batch read. The HTTP layer and the
// CLI both call it, so both are instrumented the same way.
package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// Observer receives the service's measurements. *metrics.Metrics satisfies it.
type Observer interface {
	ObserveRequest(op feature.Operation, group string, d time.Duration)
	CountRequest(op feature.Operation, group string)
	Error(op feature.Operation, code feature.Code)
	FeaturesWritten(group string, n int)
	FeatureStatuses(group string, present, notFound, null, outsideMaxAge int)
	Ingested(accepted, rejected int)
	SetNewestEvent(group string, t time.Time)
	SetStorageBytes(backend string, bytes int64)
	ForgetGroup(group string)
	Recomputed(movies int, d time.Duration, err error)
}

// Options configure a Service.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger; a no-op logger when nil.
	Logger *zap.Logger
	// Observer for metrics; none when nil.
	Observer Observer
	// Corpus reads the movie corpus aggregate from the system of record; nil
	// means the store itself, which must then be a CorpusReader (a cache in
	// front of the system of record is not: pass the system of record).
	Corpus CorpusReader
	// Registry pushes registry changes made through other replicas or the
	// CLI; nil means none (the embedded store has one writer), and the
	// periodic refresh is the only way they are seen.
	Registry RegistryListener
	// RecomputeDelay is ignored: nothing is recomputed after an ingest any
	// more (the corpus-relative features are computed at read time). Kept so
	// that existing configurations still start.
	RecomputeDelay time.Duration
	// RefreshInterval is how often the registry and storage statistics are
	// re-read from the store, the fallback for a registry change whose
	// notification was lost; 0 means 15s.
	RefreshInterval time.Duration
	// HistoryRetention is the history retention of groups that set none:
	// as-of reads older than it are refused (feature.CodeHistoryExpired),
	// and so are training-set rows older than a group's retention (see
	// docs/historical.md); 0 keeps all history. Pruning itself is
	// Retention's job.
	HistoryRetention time.Duration
	// Limits; zero means the defaults below.
	MaxBatchRecords int
	MaxEntities     int
	// MaxHistoricalRows bounds the entity rows of one training-set request.
	MaxHistoricalRows int

	// History answers training-set reads; nil means the store, if it can
	// (the cache wrapper cannot: pass the system of record).
	History HistoryReader
	// FeatureServices keeps feature services; nil means the store, if it
	// can (the cache wrapper cannot: pass the system of record).
	FeatureServices ServiceRegistry
	// ReadOnly builds a service for a command that only reads (such as
	// `featurestore historical`): New skips loading the movie corpus, which
	// only ingests and recomputes need, and those fail with errReadOnly.
	ReadOnly bool
	// Limits bounds what clients may register (the built-in groups are
	// exempt); zero fields take feature.DefaultLimits.
	Limits feature.Limits
}

// Default limits.
const (
	DefaultMaxBatchRecords   = 10000
	DefaultMaxEntities       = 1000
	DefaultMaxHistoricalRows = 1000000
)

// Service is the feature store.
type Service struct {
	st     store.Store
	corpus CorpusReader
	now    func() time.Time
	log    *zap.Logger
	obs    Observer
	opts   Options

	regMu    sync.Mutex                               // serialises registry changes
	registry atomic.Pointer[map[string]feature.Group] // read without locks on every request
	builtin  map[string]bool

	history     HistoryReader                                     // nil: no training-set reads
	fsReg       ServiceRegistry                                   // nil: no feature services
	svcRegistry atomic.Pointer[map[string]feature.FeatureService] // in-memory copy of fsReg

	wclock writeClock

	progress atomic.Pointer[RecomputeStatus]

	sorted sync.Map // group name → *groupSorted: its features in name order (GetEntityView)
}

// New registers the built-in TMDB groups (creating or upgrading them), loads
// the registry and returns a ready Service. It reads nothing of the corpus:
// start-up costs the same whatever the number of movies.
func New(ctx context.Context, st store.Store, opts Options) (*Service, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = 15 * time.Second
	}
	if opts.MaxBatchRecords <= 0 {
		opts.MaxBatchRecords = DefaultMaxBatchRecords
	}
	if opts.MaxEntities <= 0 {
		opts.MaxEntities = DefaultMaxEntities
	}
	if opts.MaxHistoricalRows <= 0 {
		opts.MaxHistoricalRows = DefaultMaxHistoricalRows
	}
	if opts.History == nil {
		opts.History, _ = st.(HistoryReader)
	}
	if opts.FeatureServices == nil {
		opts.FeatureServices, _ = st.(ServiceRegistry)
	}
	corpus := opts.Corpus
	if corpus == nil {
		c, ok := st.(CorpusReader)
		if !ok {
			opts.Logger.Warn("the store keeps no movie corpus aggregate: corpus-relative statistical features scan the corpus on every read; pass the system of record as Options.Corpus")
			c = scanCorpus{st: st}
		}
		corpus = c
	}
	opts.Limits = opts.Limits.WithDefaults()
	s := &Service{
		st: st, corpus: corpus, now: opts.Now, log: opts.Logger, obs: opts.Observer, opts: opts,
		builtin: map[string]bool{},
		history: opts.History,
		fsReg:   opts.FeatureServices,
	}
	s.progress.Store(&RecomputeStatus{State: "idle"})
	if err := s.ensureBuiltins(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// errReadOnly is the error of a write on a ReadOnly service.
var errReadOnly = errors.New("service: read-only (built for a command that only reads): ingest and recompute are unavailable")

// ensureBuiltins creates the TMDB groups, or replaces a stored definition
// whose features differ from this version's.
func (s *Service) ensureBuiltins(ctx context.Context) error {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	for _, g := range tmdb.Groups() {
		s.builtin[g.Name] = true
		cur, err := s.st.GetGroup(ctx, g.Name)
		switch {
		case err == nil && sameSchema(cur, g):
			continue
		case err != nil && feature.ErrorCode(err) != feature.CodeNotFound:
			return fmt.Errorf("read built-in group %s: %w", g.Name, err)
		}
		if _, err := s.st.PutGroup(ctx, g, s.now()); err != nil {
			return fmt.Errorf("register built-in group %s: %w", g.Name, err)
		}
		s.log.Info("registered built-in feature group", zap.String("group", g.Name))
	}
	return s.reloadRegistryLocked(ctx)
}

func sameSchema(a, b feature.Group) bool {
	return a.EntityKey == b.EntityKey && a.TTL == b.TTL && a.Description == b.Description &&
		slices.Equal(a.Features, b.Features)
}

func (s *Service) reloadRegistryLocked(ctx context.Context) error {
	groups, err := s.st.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("load registry: %w", err)
	}
	m := make(map[string]feature.Group, len(groups))
	for _, g := range groups {
		m[g.Name] = g
	}
	if old := s.registry.Load(); old != nil {
		for name := range *old {
			if _, ok := m[name]; !ok {
				s.obs.ForgetGroup(name)
			}
		}
	}
	s.registry.Store(&m)
	return s.reloadServicesLocked(ctx)
}

// Run refreshes the registry when another writer changes it (pushed by
// Options.Registry), refreshes the registry and storage statistics
// periodically, and returns when ctx ends.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.refreshLoop(ctx) }()
	if s.opts.Registry != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.opts.Registry.ListenRegistry(ctx, func() { s.reloadRegistry(ctx) }) }()
	}
	wg.Wait()
}

// reloadRegistry re-reads the registry; a failure is logged and the last
// known registry stays in force.
func (s *Service) reloadRegistry(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s.regMu.Lock()
	err := s.reloadRegistryLocked(ctx)
	s.regMu.Unlock()
	if err != nil && ctx.Err() == nil {
		s.log.Warn("registry refresh failed", zap.Error(err))
	}
}

func (s *Service) refreshLoop(ctx context.Context) {
	s.Refresh(ctx)
	t := time.NewTicker(s.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Refresh(ctx)
		}
	}
}

// Refresh re-reads the registry and the storage statistics that feed the
// storage and freshness metrics. Failures are logged, not fatal: the last
// known registry stays in force.
func (s *Service) Refresh(ctx context.Context) {
	s.reloadRegistry(ctx)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := s.st.Stats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("storage stats refresh failed", zap.Error(err))
		}
		return
	}
	s.obs.SetStorageBytes(st.Backend, st.StorageBytes)
	reg := s.groups()
	for _, g := range st.Groups {
		if _, ok := reg[g.Group]; ok && !g.NewestEventTime.IsZero() {
			s.obs.SetNewestEvent(g.Group, g.NewestEventTime)
		}
	}
}

func (s *Service) clock() *writeClock { return &s.wclock }

func (s *Service) groups() map[string]feature.Group { return *s.registry.Load() }

// group returns a registered group or a NotFound error naming field.
func (s *Service) group(name, field string) (feature.Group, error) {
	g, ok := s.groups()[name]
	if !ok {
		return g, feature.NotFound("unknown feature group "+quote(name), feature.FieldError{Field: field, Problem: "no such feature group"})
	}
	return g, nil
}

// instrument records one operation's duration, request count and error code.
func (s *Service) instrument(op feature.Operation, group string, start time.Time, err error) {
	s.obs.ObserveRequest(op, group, s.now().Sub(start))
	if err != nil {
		s.obs.Error(op, feature.ErrorCode(err))
	}
}

// ListGroups returns the registered groups ordered by name.
func (s *Service) ListGroups(ctx context.Context) []feature.Group {
	start := s.now()
	reg := s.groups()
	out := make([]feature.Group, 0, len(reg))
	for _, g := range reg {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b feature.Group) int { return compareStrings(a.Name, b.Name) })
	s.instrument(feature.OpListGroups, "", start, nil)
	return out
}

// GetGroup returns one registered group.
func (s *Service) GetGroup(ctx context.Context, name string) (g feature.Group, err error) {
	start := s.now()
	defer func() { s.instrument(feature.OpGetGroup, s.groupLabel(name), start, err) }()
	return s.group(name, "group")
}

// IsBuiltin reports whether a group is one of the TMDB groups the service manages.
func (s *Service) IsBuiltin(name string) bool { return s.builtin[name] }

// PutGroup creates or replaces a group. Built-in groups are managed by the
// service; changing a feature's type or the entity key of a group that
// exists is a conflict (stored rows would no longer match the schema).
func (s *Service) PutGroup(ctx context.Context, g feature.Group) (out feature.Group, created bool, err error) {
	start := s.now()
	defer func() { s.instrument(feature.OpPutGroup, s.groupLabel(g.Name), start, err) }()
	if err := g.Validate(); err != nil {
		return out, false, err
	}
	if err := g.CheckSize(s.opts.Limits); err != nil {
		return out, false, err
	}
	if s.builtin[g.Name] {
		return out, false, feature.Conflict("feature group "+quote(g.Name)+" is built in and managed by the service",
			feature.FieldError{Field: "name", Problem: "built-in group"})
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	cur, exists := s.groups()[g.Name]
	if max := s.opts.Limits.MaxGroups; !exists && len(s.groups()) >= max {
		return out, false, &feature.Error{Code: feature.CodeLimitExceeded,
			Message: fmt.Sprintf("the registry holds %d feature groups, its limit; delete one first", max),
			Fields:  []feature.FieldError{{Field: "name", Problem: fmt.Sprintf("at most %d feature groups (--max-groups)", max)}}}
	}
	if exists {
		var fields []feature.FieldError
		if cur.EntityKey != g.EntityKey {
			fields = append(fields, feature.FieldError{Field: "entity_key", Problem: "cannot change the entity key of an existing group (was " + quote(cur.EntityKey) + ")"})
		}
		for i, f := range g.Features {
			if old, ok := cur.Feature(f.Name); ok && old.Type != f.Type {
				fields = append(fields, feature.FieldError{Field: fmt.Sprintf("features[%d].type", i), Problem: "cannot change the type of existing feature " + quote(f.Name) + " (was " + string(old.Type) + ")"})
			}
		}
		if len(fields) > 0 {
			return out, false, feature.Conflict("incompatible change to feature group "+quote(g.Name), fields...)
		}
		if err := s.servicesDropping(ctx, g); err != nil {
			return out, false, err
		}
	}
	out, err = s.st.PutGroup(ctx, g, s.now())
	if err != nil {
		return out, false, err
	}
	reg := s.groups()
	next := make(map[string]feature.Group, len(reg)+1)
	for k, v := range reg {
		next[k] = v
	}
	next[out.Name] = out
	s.registry.Store(&next)
	// Created: the store inserted it (its first schema version), whatever
	// this replica's registry knew.
	return out, out.SchemaVersion == 1, nil
}

// DeleteGroup removes a user-defined group with all its rows. A group that
// feature services use is a Conflict naming them (the store refuses it in
// the deleting transaction).
func (s *Service) DeleteGroup(ctx context.Context, name string) (err error) {
	start := s.now()
	defer func() { s.instrument(feature.OpDeleteGroup, s.groupLabel(name), start, err) }()
	if s.builtin[name] {
		return feature.Conflict("feature group "+quote(name)+" is built in and cannot be deleted",
			feature.FieldError{Field: "group", Problem: "built-in group"})
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if _, err := s.group(name, "group"); err != nil {
		return err
	}
	if err := s.st.DeleteGroup(ctx, name); err != nil {
		return err
	}
	reg := s.groups()
	next := make(map[string]feature.Group, len(reg))
	for k, v := range reg {
		if k != name {
			next[k] = v
		}
	}
	s.registry.Store(&next)
	s.obs.ForgetGroup(name)
	return nil
}

// groupLabel bounds the feature_group label: only registered names pass.
func (s *Service) groupLabel(name string) string {
	if _, ok := s.groups()[name]; ok {
		return name
	}
	return ""
}

// Stats is what GET /v1/stats reports.
type Stats struct {
	store.Stats
	RegisteredGroups int             `json:"registered_groups"`
	CorpusMovies     int             `json:"corpus_movies"`
	Recompute        RecomputeStatus `json:"recompute"`
}

// Stats reports storage statistics.
func (s *Service) Stats(ctx context.Context) (out Stats, err error) {
	start := s.now()
	defer func() { s.instrument(feature.OpStats, "", start, err) }()
	st, err := s.st.Stats(ctx)
	if err != nil {
		return out, err
	}
	n, err := s.corpusMovies(ctx)
	if err != nil {
		return out, err
	}
	return Stats{Stats: st, RegisteredGroups: len(s.groups()), CorpusMovies: n, Recompute: *s.progress.Load()}, nil
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type nopObserver struct{}

func (nopObserver) ObserveRequest(feature.Operation, string, time.Duration) {}
func (nopObserver) CountRequest(feature.Operation, string)                  {}
func (nopObserver) Error(feature.Operation, feature.Code)                   {}
func (nopObserver) FeaturesWritten(string, int)                             {}
func (nopObserver) FeatureStatuses(string, int, int, int, int)              {}
func (nopObserver) Ingested(int, int)                                       {}
func (nopObserver) SetNewestEvent(string, time.Time)                        {}
func (nopObserver) SetStorageBytes(string, int64)                           {}
func (nopObserver) ForgetGroup(string)                                      {}
func (nopObserver) Recomputed(int, time.Duration, error)                    {}

// CorpusSize is the number of movies in the corpus, as the system of record
// holds it; 0 if it cannot be read within 5 seconds.
func (s *Service) CorpusSize() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := s.corpusMovies(ctx)
	if err != nil {
		s.log.Warn("read movie corpus size", zap.Error(err))
	}
	return n
}
