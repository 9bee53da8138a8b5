package export

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// csvWriter writes RFC 4180 CSV with a header row. Nulls are empty fields;
// timestamps are RFC 3339 in UTC.
type csvWriter struct {
	w      *csv.Writer
	opts   Options
	cols   []Column
	record []string
	buf    []byte
	n      int
}

func newCSV(w io.Writer, opts Options) *csvWriter {
	return &csvWriter{w: csv.NewWriter(bufio.NewWriterSize(w, 64<<10)), opts: opts}
}

func (c *csvWriter) Begin(cols []Column) error {
	if c.cols != nil {
		return errBegun
	}
	if err := checkColumns(cols); err != nil {
		return err
	}
	c.cols = cols
	c.record = make([]string, len(cols))
	for i, col := range cols {
		c.record[i] = col.Name
	}
	return c.w.Write(c.record)
}

func (c *csvWriter) Write(row []any) error {
	if c.cols == nil {
		return errNotBegun
	}
	for i, v := range row {
		if err := checkValue(c.cols[i], v); err != nil {
			return err
		}
		c.record[i] = c.format(v)
	}
	if err := c.w.Write(c.record); err != nil {
		return err
	}
	if c.n++; c.n%c.opts.FlushEvery == 0 {
		return c.flush()
	}
	return nil
}

func (c *csvWriter) format(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		c.buf = appendFloat(c.buf[:0], x)
		return string(c.buf)
	case bool:
		return strconv.FormatBool(x)
	case string:
		return x
	case time.Time:
		return x.UTC().Format(timeLayout)
	}
	return ""
}

// flush writes the csv buffer through the bufio.Writer underneath.
func (c *csvWriter) flush() error {
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return err
	}
	return c.opts.Flush()
}

func (c *csvWriter) Close() error {
	if c.cols == nil {
		return errNotBegun
	}
	return c.flush()
}

// jsonLinesWriter writes one JSON object per row, its keys in column
// order; nulls are null, timestamps RFC 3339 strings in UTC.
type jsonLinesWriter struct {
	w    *bufio.Writer
	opts Options
	cols []Column
	keys [][]byte // `{"name":` and `,"name":`
	buf  []byte
	n    int
}

func newJSONLines(w io.Writer, opts Options) *jsonLinesWriter {
	return &jsonLinesWriter{w: bufio.NewWriterSize(w, 64<<10), opts: opts}
}

func (j *jsonLinesWriter) Begin(cols []Column) error {
	if j.cols != nil {
		return errBegun
	}
	if err := checkColumns(cols); err != nil {
		return err
	}
	j.cols = cols
	for i, c := range cols {
		sep := byte(',')
		if i == 0 {
			sep = '{'
		}
		key := appendJSONString([]byte{sep}, c.Name)
		j.keys = append(j.keys, append(key, ':'))
	}
	return nil
}

func (j *jsonLinesWriter) Write(row []any) error {
	if j.cols == nil {
		return errNotBegun
	}
	b := j.buf[:0]
	for i, v := range row {
		if err := checkValue(j.cols[i], v); err != nil {
			return err
		}
		b = append(b, j.keys[i]...)
		b = appendJSONValue(b, v)
	}
	b = append(b, '}', '\n')
	j.buf = b
	if _, err := j.w.Write(b); err != nil {
		return err
	}
	if j.n++; j.n%j.opts.FlushEvery == 0 {
		return j.flush()
	}
	return nil
}

func (j *jsonLinesWriter) flush() error {
	if err := j.w.Flush(); err != nil {
		return err
	}
	return j.opts.Flush()
}

func (j *jsonLinesWriter) Close() error {
	if j.cols == nil {
		return errNotBegun
	}
	return j.flush()
}

func appendJSONValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case int64:
		return strconv.AppendInt(b, x, 10)
	case float64:
		return appendFloat(b, x)
	case bool:
		return strconv.AppendBool(b, x)
	case string:
		return appendJSONString(b, x)
	case time.Time:
		b = append(b, '"')
		b = x.UTC().AppendFormat(b, timeLayout)
		return append(b, '"')
	}
	return append(b, "null"...)
}

// appendJSONString appends s as a JSON string: as is when nothing in it
// needs escaping, else through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, err := json.Marshal(s)
			if err != nil { // invalid UTF-8 is replaced, never an error
				return append(b, `""`...)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
