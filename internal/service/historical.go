package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/featurestore/featurestore/internal/export"
	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// HistoryReader answers point-in-time reads over many entity rows: the
// system of record (*postgres.Store and *sqlite.Store satisfy it; see
// storetest.HistoryStore for the contract).
type HistoryReader interface {
	ReadHistory(ctx context.Context, q store.HistoryQuery, fn func(i int, rows []store.HistoryRow) error) error
}

// EventTimestampColumn is the name of the entity rows' time column, in
// requests and in the training set, as in Feast.
const EventTimestampColumn = "event_timestamp"

// HistoricalRequest is Feast's get-historical-features request: the entity
// dataframe in columns — the entity key's ids and, for each, the time to
// read the features as of — and the features, as a list or a feature
// service.
//
//	{"entities": {"movie_id": [550, 550], "event_timestamp": ["2025-06-01T00:00:00Z", "2025-07-01T00:00:00Z"]},
//	 "features": ["movie_basic:popularity"], "full_feature_names": true}
//
// Entity ids are all integers (JSON numbers; the entity column is then
// int64) or all strings: the first decides. Timestamps are RFC 3339
// strings with a time zone offset ("T" or a space between date and time);
// they are read with microsecond precision.
//
// EntityRows, instead of Entities, streams the entity rows (an uploaded
// CSV: NewEntityCSV): they are validated and answered a chunk at a time,
// so memory does not grow with their number.
type HistoricalRequest struct {
	Entities         map[string][]any `json:"entities"`
	EntityRows       EntityRowReader  `json:"-"`
	Features         []string         `json:"features,omitempty"`
	FeatureService   string           `json:"feature_service,omitempty"`
	FullFeatureNames bool             `json:"full_feature_names"`
}

// HistoricalSink receives a training set: Begin once with the columns,
// then Write once per entity row. export.Writer values satisfy it; the
// caller closes them.
type HistoricalSink interface {
	Begin(cols []export.Column) error
	Write(row []any) error
}

// HistoricalResult summarises a training set that was written.
type HistoricalResult struct {
	Rows    int                     `json:"rows"`
	Columns []string                `json:"columns"`
	Groups  []HistoricalGroupResult `json:"groups"`
}

// HistoricalGroupResult counts how a group answered the entity rows.
type HistoricalGroupResult struct {
	Group string `json:"feature_group"`
	// Found rows had a group row at or before their time within the TTL.
	Found int `json:"found"`
	// NotFound rows had no group row at or before their time (nulls).
	NotFound int `json:"not_found"`
	// OutsideTTL rows had only group rows older than the group's TTL
	// before their time (nulls, as in Feast).
	OutsideTTL int `json:"outside_ttl"`
}

// GetHistoricalFeatures builds a point-in-time correct training set and
// writes it to sink: one row per entity row, in request order (duplicates
// included), with the entity id, the event timestamp and then one column
// per requested feature — the value of the group's newest row at or before
// the timestamp, or null when there is none or it is older than the
// group's TTL (Feast's semantics; see docs/historical.md).
//
// Every problem with the request (with streamed EntityRows: with its first
// chunk of rows) is found before sink.Begin is called, and so are storage
// errors before the first row: an error returned while sink has not begun
// can still be answered with a status. After Begin an error means the
// training set is incomplete (a sink or storage failure, or a bad row of a
// later chunk of a stream); an HTTP handler must then abort the response
// (panic(http.ErrAbortHandler)) rather than end it as if it were whole.
func (s *Service) GetHistoricalFeatures(ctx context.Context, req HistoricalRequest, sink HistoricalSink) (res HistoricalResult, err error) {
	start := s.now()
	var plan historicalPlan
	defer func() { s.instrumentGroups(feature.OpGetHistoricalFeatures, plan.groups, start, err) }()
	if s.history == nil {
		return res, errors.New("service: no history reader (the store cannot answer training-set reads)")
	}
	plan, err = s.planHistorical(ctx, req)
	if err != nil {
		return res, err
	}
	run := newHistoricalRun(plan, sink)
	q := store.HistoryQuery{Groups: make([]store.HistoryGroup, len(plan.groups)), Entities: plan.src.chunks}
	for g, grp := range plan.groups {
		q.Groups[g] = store.HistoryGroup{Name: grp.Name, Features: plan.features[g]}
	}
	err = s.history.ReadHistory(ctx, q, run.emit)
	if err == nil && !run.begun { // not reached: a plan has entity rows
		err = sink.Begin(plan.cols)
	}
	return run.result(), err
}

// historicalPlan is a validated training-set request.
type historicalPlan struct {
	onlinePlan // the entity key, the groups and the references
	src        *entitySource
	cols       []export.Column
	// features are, per group, the names of the features to read; pos is,
	// per ref, the index of its feature in its group's list.
	features [][]string
	pos      []int
}

// planHistorical validates a request: the entity rows' shape, the feature
// references (each group keyed by the entity column), the column names,
// and the first chunk of entity rows (all of them, given as columns),
// including the groups' history retention.
func (s *Service) planHistorical(ctx context.Context, req HistoricalRequest) (p historicalPlan, err error) {
	if p.src, err = s.entitySource(req); err != nil {
		return p, err
	}
	p.entityKey = p.src.key
	refs, refField, err := s.requestedFeatures(ctx, req.Features, req.FeatureService)
	if err != nil {
		return p, err
	}
	if len(refs) > feature.MaxServiceFeatures {
		return p, &feature.Error{Code: feature.CodeTooLarge, Message: fmt.Sprintf("%d features in one request; the limit is %d", len(refs), feature.MaxServiceFeatures),
			Fields: []feature.FieldError{{Field: refField, Problem: "too many features"}}}
	}
	if fields, notFound := p.resolveRefs(s.groups(), refs, refField); len(fields) > 0 {
		if notFound {
			return p, feature.NotFound("unknown feature reference", fields...)
		}
		return p, feature.Invalid("invalid get-historical-features request", fields...)
	}
	if err := p.columns(req.FullFeatureNames, refField); err != nil {
		return p, err
	}
	p.src.horizons = s.retentionHorizons(p.groups)
	if err := p.src.first(); err != nil {
		return p, err
	}
	if p.src.strings {
		p.cols[0].Type = export.String
	}
	return p, nil
}

// columns names the training set's columns, Feast's way: the entity key,
// event_timestamp, then each feature as group__feature with full names,
// else as its name. Two columns of one name are an error. It also lists
// each group's features to read. The entity column is int64 until the
// first row says otherwise.
func (p *historicalPlan) columns(full bool, refField string) error {
	p.cols = []export.Column{{Name: p.entityKey, Type: export.Int64, NotNull: true}, {Name: EventTimestampColumn, Type: export.Timestamp, NotNull: true}}
	seen := map[string]string{p.entityKey: "the entity key", EventTimestampColumn: "the event timestamp"}
	p.features = make([][]string, len(p.groups))
	p.pos = make([]int, len(p.refs))
	var fields []feature.FieldError
	for i, ref := range p.refs {
		name := ref.spec.Name
		if full {
			name = ref.group + "__" + ref.spec.Name
		}
		field := fmt.Sprintf("%s[%d]", refField, i)
		if other, dup := seen[name]; dup {
			fields = append(fields, feature.FieldError{Field: field, Problem: "column " + quote(name) + " would also be " + other + "; name each feature once, or set full_feature_names"})
			continue
		}
		seen[name] = field
		p.cols = append(p.cols, export.Column{Name: name, Type: export.Type(ref.spec.Type)})
		p.pos[i] = len(p.features[ref.gi])
		p.features[ref.gi] = append(p.features[ref.gi], ref.spec.Name)
	}
	if len(fields) > 0 {
		return feature.Invalid("training set columns collide", fields...)
	}
	return nil
}

// retentionHorizons lists, for each group with a history retention, the
// time before which its history may be gone.
func (s *Service) retentionHorizons(groups []feature.Group) []horizon {
	now := s.now()
	var out []horizon
	for _, g := range groups {
		if keep := g.Retention(s.opts.HistoryRetention); keep > 0 {
			out = append(out, horizon{group: g.Name, from: now.Add(-keep).Truncate(time.Microsecond)})
		}
	}
	return out
}

// historicalRun writes the rows of a plan as the store answers them.
type historicalRun struct {
	plan  historicalPlan
	sink  HistoricalSink
	begun bool
	next  int
	row   []any
	live  []bool // per group: the row found is within the TTL
	stats []HistoricalGroupResult
}

func newHistoricalRun(p historicalPlan, sink HistoricalSink) *historicalRun {
	r := &historicalRun{plan: p, sink: sink, row: make([]any, len(p.cols)), live: make([]bool, len(p.groups)),
		stats: make([]HistoricalGroupResult, len(p.groups))}
	for g, grp := range p.groups {
		r.stats[g].Group = grp.Name
	}
	return r
}

// emit writes entity row i from what each group had for it.
func (r *historicalRun) emit(i int, rows []store.HistoryRow) error {
	if i != r.next {
		return fmt.Errorf("service: history answered entity row %d, expected %d", i, r.next)
	}
	r.next++
	if !r.begun {
		if err := r.sink.Begin(r.plan.cols); err != nil {
			return err
		}
		r.begun = true
	}
	id, t := r.plan.src.row(i)
	for g, grp := range r.plan.groups {
		st := &r.stats[g]
		ttl := time.Duration(grp.TTL)
		switch {
		case !rows[g].Found:
			r.live[g] = false
			st.NotFound++
		case ttl > 0 && rows[g].EventTime.Before(t.Add(-ttl)):
			r.live[g] = false
			st.OutsideTTL++
		default:
			r.live[g] = true
			st.Found++
		}
	}
	r.row[0], r.row[1] = id, t
	for j, ref := range r.plan.refs {
		var v any
		if r.live[ref.gi] {
			v = ofType(ref.spec.Type, rows[ref.gi].Values[r.plan.pos[j]])
		}
		r.row[2+j] = v
	}
	return r.sink.Write(r.row)
}

func (r *historicalRun) result() HistoricalResult {
	res := HistoricalResult{Rows: r.next, Columns: make([]string, len(r.plan.cols)), Groups: r.stats}
	for i, c := range r.plan.cols {
		res.Columns[i] = c.Name
	}
	return res
}
