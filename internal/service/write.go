package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// writeClock hands out write times truncated to the stores' microsecond
// precision and strictly increasing within the process, so two writes of the
// same entity and event time never tie.
type writeClock struct {
	mu   sync.Mutex
	last time.Time
}

func (c *writeClock) next(now time.Time) time.Time {
	t := now.UTC().Truncate(time.Microsecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.After(c.last) {
		t = c.last.Add(time.Microsecond)
	}
	c.last = t
	return t
}

// IngestResult reports what an ingest stored and what it refused.
type IngestResult struct {
	// Received is the number of records in the payload.
	Received int `json:"received"`
	// Accepted is the number of movies written (each as six feature rows).
	Accepted int `json:"accepted"`
	// Rejected lists each refused record with the fields at fault.
	Rejected []Rejection `json:"rejected"`
	// Superseded lists the indexes of records whose movie id appears again
	// later in the same payload: the later record is the one written.
	Superseded []int `json:"superseded,omitempty"`
	// FeaturesWritten counts the feature values written: 68 per movie, as
	// the three corpus-relative statistical features are computed by reads.
	FeaturesWritten int `json:"features_written"`
	// EventTime is the event time of every row written.
	EventTime time.Time `json:"event_time"`
	// MovieIDs are the accepted movies' ids in payload order.
	MovieIDs []int64 `json:"movie_ids"`
}

// Rejection is one refused record.
type Rejection struct {
	Index  int                  `json:"index"`
	Fields []feature.FieldError `json:"fields"`
}

// IngestPayload decodes a TMDB payload (one movie, an array, a TMDB list
// page or the crawler file) and ingests its records.
func (s *Service) IngestPayload(ctx context.Context, body []byte) (IngestResult, error) {
	raws, err := tmdb.Decode(body)
	if err != nil {
		start := s.now()
		s.instrument(feature.OpIngest, "", start, err)
		return IngestResult{}, err
	}
	return s.Ingest(ctx, raws)
}

// Ingest validates each raw TMDB record, computes its six feature groups
// (movie_statistical without its corpus-relative features, which reads
// compute) and writes every valid movie in one transaction, which also
// updates the corpus aggregate in the system of record:
// all valid records are committed before it returns, or none is. Invalid
// records are reported and never become partial rows.
func (s *Service) Ingest(ctx context.Context, raws []json.RawMessage) (IngestResult, error) {
	p, err := s.PrepareIngest(raws)
	if err != nil || p.rows == nil {
		return p.res, err
	}
	return s.WritePrepared(ctx, p)
}

// PreparedIngest is a batch of TMDB records validated and turned into the
// rows Ingest writes, not written yet (see PrepareIngest).
type PreparedIngest struct {
	res      IngestResult
	rows     []feature.Row
	perGroup map[string]int
	start    time.Time
}

// Result is the answer Ingest gives for the batch if it is written (or, with
// the error PrepareIngest returned, the answer Ingest gives with it).
func (p *PreparedIngest) Result() IngestResult { return p.res }

// PrepareIngest is the first half of Ingest: it validates the records and
// computes the rows of the valid movies, with their event time, without
// writing anything. A caller that writes batches one after the other (the
// ingest command) prepares the next batch while the store writes the
// previous one, then calls WritePrepared with each in order. A batch with
// nothing to write (every record rejected, or none) is answered by
// PrepareIngest itself: its result, or its error.
func (s *Service) PrepareIngest(raws []json.RawMessage) (p *PreparedIngest, err error) {
	p = &PreparedIngest{start: s.now()}
	defer func() {
		if err != nil || p.rows == nil {
			s.instrument(feature.OpIngest, "", p.start, err)
		}
	}()
	if s.opts.ReadOnly {
		return p, errReadOnly
	}
	if len(raws) > s.opts.MaxBatchRecords {
		return p, &feature.Error{Code: feature.CodeTooLarge,
			Message: fmt.Sprintf("%d records in one request; the limit is %d", len(raws), s.opts.MaxBatchRecords),
			Fields:  []feature.FieldError{{Field: "body", Problem: "too many records"}}}
	}
	res := &p.res
	res.Received = len(raws)
	res.Rejected = []Rejection{}
	res.MovieIDs = []int64{}
	movies := make([]tmdb.Movie, 0, len(raws))
	index := map[int64]int{} // movie id -> position in movies
	positions := []int{}     // payload index of each entry of movies
	for i, raw := range raws {
		m, problems := tmdb.ParseMovie(raw)
		if len(problems) > 0 {
			res.Rejected = append(res.Rejected, Rejection{Index: i, Fields: problems})
			continue
		}
		if j, dup := index[m.ID]; dup {
			res.Superseded = append(res.Superseded, positions[j])
			movies[j], positions[j] = m, i
			continue
		}
		index[m.ID] = len(movies)
		movies = append(movies, m)
		positions = append(positions, i)
	}
	s.obs.Ingested(0, len(res.Rejected))
	if len(movies) == 0 {
		if len(res.Rejected) > 0 {
			return p, &feature.Error{Code: feature.CodeInvalid, Message: "no record in the payload is a valid movie",
				Fields: prefixed(res.Rejected)}
		}
		return p, nil
	}

	eventTime := s.clock().next(s.now())
	p.rows = make([]feature.Row, 0, len(movies)*6)
	p.perGroup = map[string]int{}
	for _, m := range movies {
		id := strconv.FormatInt(m.ID, 10)
		for group, values := range tmdb.StoredFeatures(m, eventTime) {
			p.rows = append(p.rows, feature.Row{Group: group, EntityID: id, EventTime: eventTime, WriteTime: eventTime, Values: values})
			p.perGroup[group] += len(values)
		}
		res.MovieIDs = append(res.MovieIDs, m.ID)
	}
	res.Accepted = len(movies)
	res.EventTime = eventTime
	for _, n := range p.perGroup {
		res.FeaturesWritten += n
	}
	return p, nil
}

// WritePrepared is the second half of Ingest: it writes a batch that
// PrepareIngest returned, all or nothing, and answers as Ingest does. A
// batch is written once at most.
func (s *Service) WritePrepared(ctx context.Context, p *PreparedIngest) (res IngestResult, err error) {
	if p.rows == nil {
		return p.res, nil // answered and instrumented by PrepareIngest
	}
	defer func() { s.instrument(feature.OpIngest, "", p.start, err) }()
	res = p.res
	store.RecordAnswer(ctx, res) // the answer an Idempotency-Key records with the write
	if err := s.st.WriteRows(ctx, p.rows); err != nil {
		return IngestResult{}, err
	}

	for group, n := range p.perGroup {
		s.obs.FeaturesWritten(group, n)
		s.obs.SetNewestEvent(group, res.EventTime)
	}
	s.obs.Ingested(res.Accepted, 0)
	s.log.Info("ingested movies", zap.Int("accepted", res.Accepted), zap.Int("rejected", len(res.Rejected)),
		zap.Int("features_written", res.FeaturesWritten))
	return res, nil
}

func prefixed(rs []Rejection) []feature.FieldError {
	var out []feature.FieldError
	for _, r := range rs {
		for _, f := range r.Fields {
			out = append(out, feature.FieldError{Field: fmt.Sprintf("records[%d].%s", r.Index, f.Field), Problem: f.Problem})
		}
	}
	return out
}

// RowInput is one row of a write request, as decoded from JSON (numbers as
// json.Number).
type RowInput struct {
	EntityID  any            `json:"entity_id"`
	EventTime *time.Time     `json:"event_time,omitempty"`
	Values    map[string]any `json:"values"`
}

// WriteResult reports a write.
type WriteResult struct {
	Group           string    `json:"feature_group"`
	Rows            int       `json:"rows"`
	FeaturesWritten int       `json:"features_written"`
	WriteTime       time.Time `json:"write_time"`
}

// WriteRows validates rows against the group's schema and writes them all
// in one transaction; one invalid row rejects the whole request and nothing
// is written. The six built-in TMDB groups refuse it (409): they are written
// by the TMDB ingest only, which keeps the six groups of a movie and the
// statistical corpus consistent.
func (s *Service) WriteRows(ctx context.Context, group string, in []RowInput) (WriteResult, error) {
	return s.writeRows(ctx, group, "group", in, rowField)
}

// fieldNamer names, in the request a write came from, the field of row i
// holding column: colEntityID, colEventTime, colValues, or "values." and a
// feature name; i < 0 names the rows as a whole.
type fieldNamer func(i int, column string) string

const (
	colEntityID  = "entity_id"
	colEventTime = "event_time"
	colValues    = "values"
)

// rowField names fields of the rows body: rows[i].values.age.
func rowField(i int, column string) string {
	if i < 0 {
		return "rows"
	}
	return fmt.Sprintf("rows[%d].%s", i, column)
}

// writeRows is WriteRows for a group named by the request field groupField,
// with problems named by names.
func (s *Service) writeRows(ctx context.Context, group, groupField string, in []RowInput, names fieldNamer) (res WriteResult, err error) {
	start := s.now()
	defer func() { s.instrument(feature.OpWriteRows, s.groupLabel(group), start, err) }()
	g, err := s.group(group, groupField)
	if err != nil {
		return res, err
	}
	if s.builtin[g.Name] {
		return res, feature.Conflict("feature group "+quote(g.Name)+" is built in and written by the TMDB ingest only (POST /v1/movies)",
			feature.FieldError{Field: groupField, Problem: "built-in group: write its movies through POST /v1/movies"})
	}
	if len(in) == 0 {
		return res, feature.Invalid("no rows to write", feature.FieldError{Field: names(-1, ""), Problem: "at least one row is required"})
	}
	if len(in) > s.opts.MaxBatchRecords {
		return res, &feature.Error{Code: feature.CodeTooLarge,
			Message: fmt.Sprintf("%d rows in one request; the limit is %d", len(in), s.opts.MaxBatchRecords),
			Fields:  []feature.FieldError{{Field: names(-1, ""), Problem: "too many rows"}}}
	}
	writeTime := s.clock().next(s.now())
	rows, fields := validateRows(g, in, writeTime, names)
	if len(fields) > 0 {
		return res, feature.Invalid("invalid rows for feature group "+quote(g.Name)+"; nothing was written", fields...)
	}
	n := 0
	var newest time.Time
	for _, r := range rows {
		n += len(r.Values)
		if r.EventTime.After(newest) {
			newest = r.EventTime
		}
	}
	out := WriteResult{Group: g.Name, Rows: len(rows), FeaturesWritten: n, WriteTime: writeTime}
	store.RecordAnswer(ctx, out) // the answer an Idempotency-Key records with the write
	if err := s.st.WriteRows(ctx, rows); err != nil {
		return res, err
	}
	s.obs.FeaturesWritten(g.Name, n)
	s.obs.SetNewestEvent(g.Name, newest)
	return out, nil
}

// validateRows checks every row against the group's schema and returns the
// rows to write, or every problem found.
func validateRows(g feature.Group, in []RowInput, writeTime time.Time, names fieldNamer) ([]feature.Row, []feature.FieldError) {
	var fields []feature.FieldError
	rows := make([]feature.Row, 0, len(in))
	type key struct {
		id string
		t  time.Time
	}
	seen := make(map[key]int, len(in))
	for i, r := range in {
		id, problem := entityID(g.EntityKey, r.EntityID)
		if problem != "" {
			fields = append(fields, feature.FieldError{Field: names(i, colEntityID), Problem: problem})
		}
		et := writeTime
		if r.EventTime != nil {
			switch {
			case r.EventTime.IsZero():
				fields = append(fields, feature.FieldError{Field: names(i, colEventTime), Problem: "must be an RFC 3339 time"})
			case !feature.ValidYear(*r.EventTime):
				fields = append(fields, feature.FieldError{Field: names(i, colEventTime), Problem: feature.YearProblem})
			}
			et = r.EventTime.UTC().Truncate(time.Microsecond)
		}
		if r.Values == nil {
			fields = append(fields, feature.FieldError{Field: names(i, colValues), Problem: "is required"})
		}
		values, problems := feature.NormalizeValues(g, r.Values, "")
		for _, p := range problems {
			fields = append(fields, feature.FieldError{Field: names(i, p.Field), Problem: p.Problem})
		}
		if problem == "" {
			if j, dup := seen[key{id, et}]; dup {
				fields = append(fields, feature.FieldError{Field: names(i, colEventTime), Problem: fmt.Sprintf("row %d has the same entity id and event time", j)})
			}
			seen[key{id, et}] = i
		}
		rows = append(rows, feature.Row{Group: g.Name, EntityID: id, EventTime: et, WriteTime: writeTime, Values: values})
	}
	return rows, fields
}

// EntityID converts an entity id from JSON (a string, or an integer as a
// json.Number, float64, int64 or int) to its canonical string form.
func EntityID(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, feature.ValidEntityID(x)
	case json.Number:
		if n, ok := feature.ExactInt(string(x)); ok {
			return strconv.FormatInt(n, 10), true // never 1e-400 as "0"
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), true
		}
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	}
	return "", false
}
