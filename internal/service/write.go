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
	// FeaturesWritten counts the feature values written.
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
// against the stored corpus and writes every valid movie in one transaction:
// all valid records are committed before it returns, or none is. Invalid
// records are reported and never become partial rows.
func (s *Service) Ingest(ctx context.Context, raws []json.RawMessage) (res IngestResult, err error) {
	start := s.now()
	defer func() { s.instrument(feature.OpIngest, "", start, err) }()
	if len(raws) > s.opts.MaxBatchRecords {
		return res, &feature.Error{Code: feature.CodeTooLarge,
			Message: fmt.Sprintf("%d records in one request; the limit is %d", len(raws), s.opts.MaxBatchRecords),
			Fields:  []feature.FieldError{{Field: "body", Problem: "too many records"}}}
	}
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
			return res, &feature.Error{Code: feature.CodeInvalid, Message: "no record in the payload is a valid movie",
				Fields: prefixed(res.Rejected)}
		}
		return res, nil
	}

	eventTime := s.clock().next(s.now())
	s.corpusMu.Lock()
	corpus := s.corpus.Clone()
	s.corpusMu.Unlock()
	for _, m := range movies {
		corpus.Set(m.ID, m.VoteAverage, m.Popularity)
	}
	rows := make([]feature.Row, 0, len(movies)*6)
	perGroup := map[string]int{}
	for _, m := range movies {
		id := strconv.FormatInt(m.ID, 10)
		for group, values := range tmdb.Features(m, eventTime, corpus) {
			rows = append(rows, feature.Row{Group: group, EntityID: id, EventTime: eventTime, WriteTime: eventTime, Values: values})
			perGroup[group] += len(values)
		}
		res.MovieIDs = append(res.MovieIDs, m.ID)
	}
	res.Accepted = len(movies)
	res.EventTime = eventTime
	for _, n := range perGroup {
		res.FeaturesWritten += n
	}
	store.RecordAnswer(ctx, res) // the answer an Idempotency-Key records with the write
	if err := s.st.WriteRows(ctx, rows); err != nil {
		return IngestResult{}, err
	}
	s.corpusMu.Lock()
	for _, m := range movies {
		s.corpus.Set(m.ID, m.VoteAverage, m.Popularity)
	}
	if s.sinceScan != nil {
		for _, m := range movies {
			s.sinceScan = append(s.sinceScan, basicInput{id: m.ID, voteAverage: m.VoteAverage, popularity: m.Popularity})
		}
	}
	s.corpusMu.Unlock()

	for group, n := range perGroup {
		s.obs.FeaturesWritten(group, n)
		s.obs.SetNewestEvent(group, eventTime)
	}
	s.obs.Ingested(len(movies), 0)
	s.log.Info("ingested movies", zap.Int("accepted", res.Accepted), zap.Int("rejected", len(res.Rejected)),
		zap.Int("features_written", res.FeaturesWritten))
	s.kickRecompute()
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
// is written.
func (s *Service) WriteRows(ctx context.Context, group string, in []RowInput) (res WriteResult, err error) {
	start := s.now()
	defer func() { s.instrument(feature.OpWriteRows, s.groupLabel(group), start, err) }()
	g, err := s.group(group, "group")
	if err != nil {
		return res, err
	}
	if len(in) == 0 {
		return res, feature.Invalid("no rows to write", feature.FieldError{Field: "rows", Problem: "at least one row is required"})
	}
	if len(in) > s.opts.MaxBatchRecords {
		return res, &feature.Error{Code: feature.CodeTooLarge,
			Message: fmt.Sprintf("%d rows in one request; the limit is %d", len(in), s.opts.MaxBatchRecords),
			Fields:  []feature.FieldError{{Field: "rows", Problem: "too many rows"}}}
	}
	now := s.now()
	writeTime := s.clock().next(now)
	var fields []feature.FieldError
	rows := make([]feature.Row, 0, len(in))
	type key struct {
		id string
		t  time.Time
	}
	seen := make(map[key]int, len(in))
	for i, r := range in {
		p := fmt.Sprintf("rows[%d].", i)
		id, ok := EntityID(r.EntityID)
		if !ok {
			fields = append(fields, feature.FieldError{Field: p + "entity_id", Problem: "must be a non-empty string or an integer"})
		}
		et := writeTime
		if r.EventTime != nil {
			if !feature.ValidYear(*r.EventTime) {
				fields = append(fields, feature.FieldError{Field: p + "event_time", Problem: feature.YearProblem})
			}
			et = r.EventTime.UTC().Truncate(time.Microsecond)
		}
		if r.Values == nil {
			fields = append(fields, feature.FieldError{Field: p + "values", Problem: "is required"})
		}
		values, problems := feature.NormalizeValues(g, r.Values, p)
		fields = append(fields, problems...)
		if ok {
			if j, dup := seen[key{id, et}]; dup {
				fields = append(fields, feature.FieldError{Field: p + "event_time", Problem: fmt.Sprintf("rows[%d] has the same entity_id and event_time", j)})
			}
			seen[key{id, et}] = i
		}
		rows = append(rows, feature.Row{Group: g.Name, EntityID: id, EventTime: et, WriteTime: writeTime, Values: values})
	}
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
