package service

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
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
// int64) or all strings. Timestamps are RFC 3339 strings with a time zone
// offset ("T" or a space between date and time); they are read with
// microsecond precision.
type HistoricalRequest struct {
	Entities         map[string][]any `json:"entities"`
	Features         []string         `json:"features,omitempty"`
	FeatureService   string           `json:"feature_service,omitempty"`
	FullFeatureNames bool             `json:"full_feature_names"`
}

// HistoricalSink receives a training set: Begin once with the columns,
// then Write once per entity row. *export.Writer values satisfy it; the
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

// maxFieldProblems bounds the per-row problems an error lists.
const maxFieldProblems = 10

// GetHistoricalFeatures builds a point-in-time correct training set and
// writes it to sink: one row per entity row, in request order (duplicates
// included), with the entity id, the event timestamp and then one column
// per requested feature — the value of the group's newest row at or before
// the timestamp, or null when there is none or it is older than the
// group's TTL (Feast's semantics; see docs/historical.md).
//
// Every problem with the request is found before sink.Begin is called, and
// storage errors before the first row are too: an error returned while
// sink has not begun can still be answered with a status. After Begin an
// error means the training set is incomplete; an HTTP handler must then
// abort the response (panic(http.ErrAbortHandler)) rather than end it as if
// it were whole.
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
	err = s.history.ReadHistory(ctx, plan.query(), run.emit)
	if err == nil && !run.begun { // not reached: a plan has entity rows
		err = sink.Begin(plan.cols)
	}
	return run.result(), err
}

// historicalPlan is a validated training-set request.
type historicalPlan struct {
	onlinePlan
	times []time.Time
	// idVals are the ids as the entity column holds them: int64 or string.
	idVals []any
	cols   []export.Column
	// features are, per group, the names of the features to read; pos is,
	// per ref, the index of its feature in its group's list.
	features [][]string
	pos      []int
}

// planHistorical validates a request: the entity dataframe, the feature
// references (each group keyed by the entity column), the column names,
// and the groups' history retention. All problems of one kind are
// reported at once.
func (s *Service) planHistorical(ctx context.Context, req HistoricalRequest) (p historicalPlan, err error) {
	idCol, tsCol, err := s.entityColumns(req.Entities, &p)
	if err != nil {
		return p, err
	}
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
	fields := p.parseHistoricalIDs(idCol)
	fields = append(fields, p.parseTimes(tsCol)...)
	if len(fields) > 0 {
		return p, feature.Invalid("invalid entity rows; nothing was written", capFields(fields)...)
	}
	if err := p.columns(req.FullFeatureNames, refField); err != nil {
		return p, err
	}
	return p, s.checkRetention(p)
}

// entityColumns checks the shape of the entity dataframe: the entity key's
// column and event_timestamp, of one length between 1 and the limit.
func (s *Service) entityColumns(ent map[string][]any, p *historicalPlan) (ids, times []any, err error) {
	times, hasTS := ent[EventTimestampColumn]
	if len(ent) != 2 || !hasTS {
		return nil, nil, feature.Invalid("entities must hold two columns: the entity key and event_timestamp",
			feature.FieldError{Field: "entities", Problem: `must be {"<entity key>": [ids...], "event_timestamp": [times...]}`})
	}
	for k, v := range ent {
		if k != EventTimestampColumn {
			p.entityKey, ids = k, v
		}
	}
	field := "entities." + p.entityKey
	switch {
	case len(ids) != len(times):
		return nil, nil, feature.Invalid("entity columns differ in length", feature.FieldError{Field: "entities." + EventTimestampColumn,
			Problem: fmt.Sprintf("has %d values, %s has %d", len(times), field, len(ids))})
	case len(ids) == 0:
		return nil, nil, feature.Invalid("no entity rows", feature.FieldError{Field: field, Problem: "at least one entity row is required"})
	case len(ids) > s.opts.MaxHistoricalRows:
		return nil, nil, &feature.Error{Code: feature.CodeTooLarge,
			Message: fmt.Sprintf("%d entity rows in one request; the limit is %d", len(ids), s.opts.MaxHistoricalRows),
			Fields:  []feature.FieldError{{Field: field, Problem: "too many entity rows"}}}
	}
	return ids, times, nil
}

// parseHistoricalIDs sets the canonical ids and the entity column's values:
// all integers (int64) or all strings, the first value deciding.
func (p *historicalPlan) parseHistoricalIDs(vals []any) []feature.FieldError {
	var fields []feature.FieldError
	p.ids = make([]string, len(vals))
	p.idVals = make([]any, len(vals))
	_, wantString := vals[0].(string)
	for i, v := range vals {
		id, ok := EntityID(v)
		_, isString := v.(string)
		switch {
		case !ok:
			fields = append(fields, feature.FieldError{Field: fmt.Sprintf("entities.%s[%d]", p.entityKey, i), Problem: "must be a non-empty string or an integer"})
			continue
		case isString != wantString:
			fields = append(fields, feature.FieldError{Field: fmt.Sprintf("entities.%s[%d]", p.entityKey, i),
				Problem: "must be " + map[bool]string{true: "a string", false: "an integer"}[wantString] + " like entities." + p.entityKey + "[0]"})
			continue
		}
		p.ids[i] = id
		p.idVals[i] = id
		if !isString {
			p.idVals[i], _ = strconv.ParseInt(id, 10, 64)
		}
	}
	return fields
}

// parseTimes reads the event timestamps.
func (p *historicalPlan) parseTimes(vals []any) []feature.FieldError {
	var fields []feature.FieldError
	p.times = make([]time.Time, len(vals))
	for i, v := range vals {
		t, ok := ParseTimestamp(v)
		if !ok {
			fields = append(fields, feature.FieldError{Field: fmt.Sprintf("entities.%s[%d]", EventTimestampColumn, i),
				Problem: "must be an RFC 3339 time with a time zone offset, such as 2025-06-01T00:00:00Z"})
		}
		p.times[i] = t
	}
	return fields
}

// ParseTimestamp reads an event timestamp: an RFC 3339 string with a time
// zone offset, with "T" or a space between date and time (as pandas writes
// them), truncated to microseconds, in UTC.
func ParseTimestamp(v any) (time.Time, bool) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, false
	}
	if len(s) > 10 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC().Truncate(time.Microsecond), true
}

// capFields keeps the first maxFieldProblems problems and says how many
// more there were.
func capFields(fields []feature.FieldError) []feature.FieldError {
	if len(fields) <= maxFieldProblems {
		return fields
	}
	more := len(fields) - maxFieldProblems
	return append(fields[:maxFieldProblems:maxFieldProblems], feature.FieldError{Field: "entities", Problem: fmt.Sprintf("%d more problems like these", more)})
}

// columns names the training set's columns, Feast's way: the entity key,
// event_timestamp, then each feature as group__feature with full names,
// else as its name. Two columns of one name are an error. It also lists
// each group's features to read.
func (p *historicalPlan) columns(full bool, refField string) error {
	idType := export.Int64
	if _, ok := p.idVals[0].(string); ok {
		idType = export.String
	}
	p.cols = []export.Column{{Name: p.entityKey, Type: idType, NotNull: true}, {Name: EventTimestampColumn, Type: export.Timestamp, NotNull: true}}
	seen := map[string]string{p.entityKey: "the entity key", EventTimestampColumn: "the event timestamp"}
	p.features = make([][]string, len(p.groups))
	p.pos = make([]int, len(p.refs))
	var fields []feature.FieldError
	for i, ref := range p.refs {
		name := ref.spec.Name
		if full {
			name = ref.group.Name + "__" + ref.spec.Name
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

// checkRetention refuses entity rows older than a group's history
// retention: their answer may have been deleted, and a training set with
// silently missing values is worse than none. It is an Invalid error
// naming the rows, before anything is written.
func (s *Service) checkRetention(p historicalPlan) error {
	if s.opts.HistoryRetention == nil {
		return nil
	}
	now := s.now()
	var fields []feature.FieldError
	for _, g := range p.groups {
		keep := s.opts.HistoryRetention(g)
		if keep <= 0 {
			continue
		}
		horizon := now.Add(-keep).Truncate(time.Microsecond)
		for i, t := range p.times {
			if t.Before(horizon) {
				fields = append(fields, feature.FieldError{Field: fmt.Sprintf("entities.%s[%d]", EventTimestampColumn, i),
					Problem: "before the history retention of group " + g.Name + " (history is kept from " + horizon.Format(time.RFC3339) + ")"})
			}
		}
	}
	if len(fields) > 0 {
		return feature.Invalid("entity rows older than the history retention; nothing was written", capFields(fields)...)
	}
	return nil
}

// query is the store query of a plan.
func (p historicalPlan) query() store.HistoryQuery {
	q := store.HistoryQuery{Groups: make([]store.HistoryGroup, len(p.groups)), Entities: make([]store.PointInTime, len(p.ids))}
	for g, grp := range p.groups {
		q.Groups[g] = store.HistoryGroup{Name: grp.Name, Features: p.features[g]}
	}
	for i, id := range p.ids {
		q.Entities[i] = store.PointInTime{EntityID: id, Time: p.times[i]}
	}
	return q
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
	t := r.plan.times[i]
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
	r.row[0], r.row[1] = r.plan.idVals[i], t
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

// ReadEntityCSV reads entity rows from CSV with a header: the entity key's
// column and event_timestamp, in either order. An id column whose every
// value is an integer holds integers (as pandas reads it), else strings.
// More than maxRows rows is a TooLarge error; a malformed file is Invalid,
// naming the line.
func ReadEntityCSV(in io.Reader, maxRows int) (map[string][]any, error) {
	r := csv.NewReader(in)
	r.ReuseRecord = true
	header, err := r.Read() // sets the number of fields of every row
	if errors.Is(err, io.EOF) {
		return nil, feature.Invalid("empty CSV", feature.FieldError{Field: "csv", Problem: "a header line entity_key,event_timestamp is required"})
	}
	if err != nil {
		return nil, csvError(err)
	}
	header = append([]string(nil), header...)
	header[0] = strings.TrimPrefix(header[0], "\ufeff") // a byte order mark
	key, keyName := 0, ""
	if len(header) == 2 {
		if strings.TrimSpace(header[0]) == EventTimestampColumn {
			key = 1
		}
		if strings.TrimSpace(header[1-key]) == EventTimestampColumn {
			keyName = strings.TrimSpace(header[key])
		}
	}
	if !feature.ValidName(keyName) || keyName == EventTimestampColumn {
		return nil, feature.Invalid("the CSV header must name the entity key and event_timestamp",
			feature.FieldError{Field: "csv line 1", Problem: fmt.Sprintf("header %q; want e.g. movie_id,event_timestamp", strings.Join(header, ","))})
	}
	ids, times, err := readCSVRows(r, key, maxRows)
	if err != nil {
		return nil, err
	}
	return map[string][]any{keyName: ids, EventTimestampColumn: times}, nil
}

// readCSVRows reads the rows after the header.
func readCSVRows(r *csv.Reader, key, maxRows int) (ids, times []any, err error) {
	allInts := true
	var raw []string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, csvError(err)
		}
		if len(raw) == maxRows {
			return nil, nil, &feature.Error{Code: feature.CodeTooLarge, Message: fmt.Sprintf("more than %d entity rows; the limit is %d", maxRows, maxRows),
				Fields: []feature.FieldError{{Field: "csv", Problem: "too many entity rows"}}}
		}
		id := strings.TrimSpace(rec[key])
		allInts = allInts && isInteger(id)
		raw = append(raw, id)
		times = append(times, strings.TrimSpace(rec[1-key]))
	}
	ids = make([]any, len(raw))
	for i, id := range raw {
		ids[i] = id
		if allInts {
			ids[i] = json.Number(id)
		}
	}
	return ids, times, nil
}

// isInteger reports whether s is a decimal int64, with an optional sign.
func isInteger(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// csvError is the Invalid error of a malformed CSV file, naming the line.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return feature.Invalid("malformed CSV: "+pe.Err.Error(), feature.FieldError{Field: fmt.Sprintf("csv line %d", pe.Line), Problem: pe.Err.Error()})
	}
	return feature.Invalid("malformed CSV: "+err.Error(), feature.FieldError{Field: "csv", Problem: err.Error()})
}
