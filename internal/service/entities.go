package service

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// EntityRowReader streams entity rows: Key names the entity key; Read
// returns each row's entity id and event timestamp as sent (a string, or an
// integer id as a json.Number), then io.EOF. A malformed input is a
// feature.Invalid error naming where.
type EntityRowReader interface {
	Key() string
	Read() (id, timestamp any, err error)
}

// maxFieldProblems bounds the per-row problems an error lists.
const maxFieldProblems = 10

// horizon is the time before which a group's history may be gone.
type horizon struct {
	group string
	from  time.Time
}

// entitySource validates entity rows and hands them to the store a chunk
// at a time: all at once when they came as columns, store.HistoryChunk at a
// time when streamed, so a stream is never held whole.
type entitySource struct {
	key      string
	max      int
	horizons []horizon
	// Exactly one of cols (ids, times) and stream is set.
	ids, times []any
	stream     EntityRowReader
	// strings: the entity column holds strings (decided by the first row).
	strings bool
	read    int // rows read so far
	// The chunk being answered: rows base.. of the request.
	base    int
	vals    []any // ids as the entity column holds them: int64 or string
	points  []store.PointInTime
	pending bool // the first chunk was read while planning, not handed out yet
}

// entitySource checks the shape of a request's entity rows: exactly one
// of Entities and EntityRows; as columns, the entity key's and
// event_timestamp, of one length between 1 and the limit.
func (s *Service) entitySource(req HistoricalRequest) (*entitySource, error) {
	src := &entitySource{max: s.opts.MaxHistoricalRows}
	switch {
	case req.EntityRows != nil && req.Entities != nil:
		return nil, feature.Invalid("give entity rows once", feature.FieldError{Field: "entities", Problem: "entities and a streamed upload were both given"})
	case req.EntityRows != nil:
		src.stream, src.key = req.EntityRows, req.EntityRows.Key()
		return src, nil
	}
	times, hasTS := req.Entities[EventTimestampColumn]
	if len(req.Entities) != 2 || !hasTS {
		return nil, feature.Invalid("entities must hold two columns: the entity key and event_timestamp",
			feature.FieldError{Field: "entities", Problem: `must be {"<entity key>": [ids...], "event_timestamp": [times...]}`})
	}
	for k, v := range req.Entities {
		if k != EventTimestampColumn {
			src.key, src.ids = k, v
		}
	}
	src.times = times
	field := "entities." + src.key
	switch {
	case len(src.ids) != len(times):
		return nil, feature.Invalid("entity columns differ in length", feature.FieldError{Field: "entities." + EventTimestampColumn,
			Problem: fmt.Sprintf("has %d values, %s has %d", len(times), field, len(src.ids))})
	case len(src.ids) > src.max:
		return nil, src.tooMany()
	}
	return src, nil
}

func (e *entitySource) tooMany() error {
	return &feature.Error{Code: feature.CodeTooLarge,
		Message: fmt.Sprintf("more than %d entity rows in one request", e.max),
		Fields:  []feature.FieldError{{Field: "entities." + e.key, Problem: fmt.Sprintf("too many entity rows; the limit is %d", e.max)}}}
}

// first reads and validates the first chunk, which must not be empty.
func (e *entitySource) first() error {
	if err := e.next(); err != nil {
		return err
	}
	if len(e.points) == 0 {
		return feature.Invalid("no entity rows", feature.FieldError{Field: "entities." + e.key, Problem: "at least one entity row is required"})
	}
	_, e.strings = e.vals[0].(string)
	e.pending = true
	return nil
}

// chunks is the store.HistoryQuery.Entities of the source.
func (e *entitySource) chunks() ([]store.PointInTime, error) {
	if e.pending {
		e.pending = false
		return e.points, nil
	}
	if err := e.next(); err != nil {
		return nil, err
	}
	return e.points, nil
}

// row returns entity row i of the chunk being answered: its id as the
// entity column holds it, and its time.
func (e *entitySource) row(i int) (any, time.Time) {
	return e.vals[i-e.base], e.points[i-e.base].Time
}

// next reads and validates the next chunk (empty at the end).
func (e *entitySource) next() error {
	e.base += len(e.points)
	ids, times, err := e.readChunk()
	if err != nil {
		return err
	}
	if e.read += len(ids); e.read > e.max {
		return e.tooMany()
	}
	return e.validate(ids, times)
}

// readChunk returns the next raw rows: all the columns at once, or up to
// store.HistoryChunk rows of the stream (one more than the limit allows,
// at most, to tell it was passed).
func (e *entitySource) readChunk() (ids, times []any, err error) {
	if e.stream == nil {
		ids, times = e.ids, e.times
		e.ids, e.times = nil, nil
		return ids, times, nil
	}
	n := min(store.HistoryChunk, e.max-e.read+1)
	for range n {
		id, ts, err := e.stream.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		ids, times = append(ids, id), append(times, ts)
	}
	return ids, times, nil
}

// validate sets the chunk's typed ids and points from raw rows, or returns
// an Invalid error naming (some of) the rows at fault.
func (e *entitySource) validate(ids, times []any) error {
	e.vals = make([]any, len(ids))
	e.points = make([]store.PointInTime, len(ids))
	wantString := e.strings
	if e.base == 0 && len(ids) > 0 {
		_, wantString = ids[0].(string)
	}
	var fields []feature.FieldError
	for i := range ids {
		fields = append(fields, e.validateRow(i, ids[i], times[i], wantString)...)
	}
	if len(fields) == 0 {
		return nil
	}
	msg := "invalid entity rows; nothing was written"
	if e.base > 0 {
		msg = fmt.Sprintf("invalid entity rows after the first %d; the training set is incomplete", e.base)
	}
	return feature.Invalid(msg, capFields(fields)...)
}

// validateRow sets row i of the chunk, or says what is wrong with it.
func (e *entitySource) validateRow(i int, idVal, tsVal any, wantString bool) []feature.FieldError {
	var fields []feature.FieldError
	row := e.base + i
	id, ok := EntityID(idVal)
	_, isString := idVal.(string)
	switch {
	case !ok:
		fields = append(fields, feature.FieldError{Field: fmt.Sprintf("entities.%s[%d]", e.key, row), Problem: "must be a non-empty string or an integer"})
	case isString != wantString:
		want := map[bool]string{true: "a string", false: "an integer"}[wantString]
		fields = append(fields, feature.FieldError{Field: fmt.Sprintf("entities.%s[%d]", e.key, row), Problem: "must be " + want + " like entities." + e.key + "[0]"})
	case isString:
		e.vals[i] = id
	default:
		e.vals[i], _ = strconv.ParseInt(id, 10, 64)
	}
	t, ok := ParseTimestamp(tsVal)
	if !ok {
		fields = append(fields, feature.FieldError{Field: fmt.Sprintf("entities.%s[%d]", EventTimestampColumn, row),
			Problem: "must be an RFC 3339 time with a time zone offset, such as 2025-06-01T00:00:00Z"})
	}
	for _, h := range e.horizons {
		if ok && t.Before(h.from) {
			fields = append(fields, feature.FieldError{Field: fmt.Sprintf("entities.%s[%d]", EventTimestampColumn, row),
				Problem: "before the history retention of group " + h.group + " (history is kept from " + h.from.Format(time.RFC3339) + ")"})
		}
	}
	e.points[i] = store.PointInTime{EntityID: id, Time: t}
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

// EntityCSV streams entity rows from CSV with a header naming the entity
// key's column and event_timestamp, in either order (a byte order mark and
// CRLF line ends are fine). If the first id is an integer, ids are read as
// integers (a later one that is not is an error), as pandas types such a
// column; otherwise every id is a string.
type EntityCSV struct {
	r     *csv.Reader
	key   string
	col   int // the entity key's column
	rows  int
	first bool
	ints  bool
}

// NewEntityCSV reads the header of a CSV of entity rows.
func NewEntityCSV(in io.Reader) (*EntityCSV, error) {
	r := csv.NewReader(in)
	r.ReuseRecord = true
	header, err := r.Read() // also sets the number of fields of every row
	if errors.Is(err, io.EOF) {
		return nil, feature.Invalid("empty CSV", feature.FieldError{Field: "csv", Problem: "a header line entity_key,event_timestamp is required"})
	}
	if err != nil {
		return nil, csvError(err)
	}
	header = append([]string(nil), header...)
	header[0] = strings.TrimPrefix(header[0], "\ufeff") // a byte order mark
	c := &EntityCSV{r: r, first: true}
	if len(header) == 2 {
		if strings.TrimSpace(header[0]) == EventTimestampColumn {
			c.col = 1
		}
		if strings.TrimSpace(header[1-c.col]) == EventTimestampColumn {
			c.key = strings.TrimSpace(header[c.col])
		}
	}
	if !feature.ValidName(c.key) || c.key == EventTimestampColumn {
		return nil, feature.Invalid("the CSV header must name the entity key and event_timestamp",
			feature.FieldError{Field: "csv line 1", Problem: fmt.Sprintf("header %q; want e.g. movie_id,event_timestamp", strings.Join(header, ","))})
	}
	return c, nil
}

// Key is the entity key the header names.
func (c *EntityCSV) Key() string { return c.key }

// Rows is how many rows were read so far.
func (c *EntityCSV) Rows() int { return c.rows }

// Read returns the next row's id (a json.Number for an integer id column)
// and timestamp (a string), or io.EOF.
func (c *EntityCSV) Read() (id, timestamp any, err error) {
	rec, err := c.r.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, io.EOF
	}
	if err != nil {
		return nil, nil, csvError(err)
	}
	c.rows++
	raw := strings.TrimSpace(rec[c.col])
	if c.first {
		c.first, c.ints = false, isInteger(raw)
	}
	id = raw
	if c.ints && isInteger(raw) {
		id = json.Number(raw)
	}
	return id, strings.TrimSpace(rec[1-c.col]), nil
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
