// Package export writes tables — a training set of entity rows with their
// point-in-time feature values — as CSV, JSON lines or Parquet, streaming:
// each writer holds at most a bounded number of rows (Options) before they
// reach the underlying writer, so memory stays flat however many rows are
// written. The command line writes to files with it and the HTTP layer to a
// response (Options.Flush pushes each flushed part to the client).
package export

import (
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// Type is the type of a column's values.
type Type string

// The column types: the four feature value types and timestamps.
const (
	Int64     Type = Type(feature.Int64)
	Float64   Type = Type(feature.Float64)
	Bool      Type = Type(feature.Bool)
	String    Type = Type(feature.String)
	Timestamp Type = "timestamp"
)

// Column is one column of a table.
type Column struct {
	Name string
	Type Type
	// NotNull columns never hold nil (the entity id and its timestamp);
	// others may.
	NotNull bool
}

// A row's values are nil or, by column type, int64, float64, bool, string
// or time.Time.

// Writer writes one table: Begin once with the columns, Write for each row,
// then Close, which writes what is buffered (and, for Parquet, the footer).
// Close does not close the underlying io.Writer. A Writer is not safe for
// concurrent use.
type Writer interface {
	Begin(cols []Column) error
	Write(row []any) error
	Close() error
}

// Format is an output format.
type Format string

// The formats.
const (
	CSV       Format = "csv"
	JSONLines Format = "jsonl"
	Parquet   Format = "parquet"
)

// Formats lists every format, the default first.
func Formats() []Format { return []Format{CSV, JSONLines, Parquet} }

// ParseFormat parses a format name: csv, jsonl (or ndjson) or parquet.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "csv":
		return CSV, nil
	case "jsonl", "ndjson", "json-lines":
		return JSONLines, nil
	case "parquet":
		return Parquet, nil
	}
	return "", fmt.Errorf("unknown format %q (want csv, jsonl or parquet)", s)
}

// ContentType is the media type of a format, for Content-Type.
func (f Format) ContentType() string {
	switch f {
	case CSV:
		return "text/csv; charset=utf-8"
	case JSONLines:
		return "application/jsonl"
	case Parquet:
		return "application/vnd.apache.parquet"
	}
	return "application/octet-stream"
}

// FileExtension is the usual file name extension of a format, with the dot.
func (f Format) FileExtension() string { return "." + string(f) }

// mediaTypes map the media types an Accept header may name to formats.
var mediaTypes = map[string]Format{
	"text/csv":                       CSV,
	"application/csv":                CSV,
	"application/jsonl":              JSONLines,
	"application/x-ndjson":           JSONLines,
	"application/ndjson":             JSONLines,
	"application/json-lines":         JSONLines,
	"application/x-jsonlines":        JSONLines,
	"application/vnd.apache.parquet": Parquet,
	"application/x-parquet":          Parquet,
	"application/parquet":            Parquet,
}

// Negotiate picks the format an Accept header asks for: the media type with
// the highest q-value that names a format (CSV for */*, text/* or an empty
// header). ok is false when the header names no format this package writes
// (the HTTP answer is 406 Not Acceptable).
func Negotiate(accept string) (f Format, ok bool) {
	if strings.TrimSpace(accept) == "" {
		return CSV, true
	}
	bestQ := 0.0
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, has := params["q"]; has {
			if q, err = strconv.ParseFloat(s, 64); err != nil || q < 0 || q > 1 {
				continue
			}
		}
		cand, known := mediaTypes[mt]
		if !known && (mt == "*/*" || mt == "text/*") {
			cand, known = CSV, true
		}
		if known && q > bestQ {
			f, bestQ, ok = cand, q, true
		}
	}
	return f, ok
}

// Options tune a writer.
type Options struct {
	// FlushEvery is how many rows a CSV or JSON lines writer buffers before
	// writing them out; 0 means DefaultFlushEvery.
	FlushEvery int
	// RowGroupRows is how many rows a Parquet writer buffers into one row
	// group before writing it out; 0 means DefaultRowGroupRows.
	RowGroupRows int
	// Flush, if set, is called after each part is written out (for HTTP:
	// the response controller's Flush, so the client receives it now).
	Flush func() error
}

// Defaults of Options.
const (
	DefaultFlushEvery   = 1000
	DefaultRowGroupRows = 64 * 1024
)

// New returns a writer of format f onto w.
func New(f Format, w io.Writer, opts Options) (Writer, error) {
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = DefaultFlushEvery
	}
	if opts.RowGroupRows <= 0 {
		opts.RowGroupRows = DefaultRowGroupRows
	}
	if opts.Flush == nil {
		opts.Flush = func() error { return nil }
	}
	switch f {
	case CSV:
		return newCSV(w, opts), nil
	case JSONLines:
		return newJSONLines(w, opts), nil
	case Parquet:
		return newParquet(w, opts), nil
	}
	return nil, fmt.Errorf("unknown format %q", f)
}

var (
	errNotBegun = errors.New("export: Write before Begin")
	errBegun    = errors.New("export: Begin called twice")
)

// checkColumns rejects an empty or ambiguous header.
func checkColumns(cols []Column) error {
	if len(cols) == 0 {
		return errors.New("export: no columns")
	}
	seen := map[string]bool{}
	for _, c := range cols {
		switch c.Type {
		case Int64, Float64, Bool, String, Timestamp:
		default:
			return fmt.Errorf("export: column %s: unknown type %q", c.Name, c.Type)
		}
		if c.Name == "" || seen[c.Name] {
			return fmt.Errorf("export: column name %q is empty or repeated", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// checkValue reports a value that does not fit its column.
func checkValue(c Column, v any) error {
	ok := false
	switch v.(type) {
	case nil:
		ok = !c.NotNull
	case int64:
		ok = c.Type == Int64
	case float64:
		ok = c.Type == Float64
	case bool:
		ok = c.Type == Bool
	case string:
		ok = c.Type == String
	case time.Time:
		ok = c.Type == Timestamp
	}
	if !ok {
		return fmt.Errorf("export: column %s (%s): cannot write %T", c.Name, c.Type, v)
	}
	return nil
}

// appendFloat formats a float as JSON numbers are usually written (and as
// encoding/json writes them): plain decimal from 1e-6 to 1e21, exponent
// notation outside.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	if abs == 0 || abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	n := len(b)
	b = strconv.AppendFloat(b, f, 'e', -1, 64)
	// 1e-07 becomes 1e-7, as in encoding/json and JavaScript.
	if m := len(b) - n; m >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
		b[len(b)-2] = b[len(b)-1]
		b = b[:len(b)-1]
	}
	return b
}

// timeLayout formats timestamps: RFC 3339 in UTC with as many fractional
// digits as needed.
const timeLayout = time.RFC3339Nano
