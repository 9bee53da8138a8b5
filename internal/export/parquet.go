package export

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// parquetWriter writes a Parquet file: one typed column per Column in
// order (INT64, DOUBLE, BOOLEAN, STRING, and TIMESTAMP(MICROS, UTC) for
// timestamps), optional unless NotNull, Snappy-compressed, in row groups
// of Options.RowGroupRows rows; the footer is written by Close.
type parquetWriter struct {
	out  io.Writer
	opts Options
	cols []Column
	w    *parquet.GenericWriter[any]
	// rows are waiting for the parquet writer; inGroup rows are in its
	// current row group.
	rows    []parquet.Row
	inGroup int
}

func newParquet(w io.Writer, opts Options) *parquetWriter {
	return &parquetWriter{out: w, opts: opts}
}

// parquetSchema is the schema of cols, in their order. It is derived from
// a struct type built for the purpose, the library's way of declaring an
// ordered schema (a parquet.Group orders its fields by name).
func parquetSchema(cols []Column) *parquet.Schema {
	fields := make([]reflect.StructField, len(cols))
	for i, c := range cols {
		var (
			typ  reflect.Type
			tags = c.Name
		)
		switch c.Type {
		case Int64:
			typ = reflect.TypeFor[int64]()
		case Float64:
			typ = reflect.TypeFor[float64]()
		case Bool:
			typ = reflect.TypeFor[bool]()
		case String:
			typ = reflect.TypeFor[string]()
		case Timestamp:
			typ, tags = reflect.TypeFor[int64](), tags+",timestamp(microsecond:utc)"
		}
		if !c.NotNull {
			tags += ",optional"
		}
		fields[i] = reflect.StructField{Name: "F" + strconv.Itoa(i), Type: typ, Tag: reflect.StructTag(`parquet:"` + tags + `"`)}
	}
	return parquet.SchemaOf(reflect.New(reflect.StructOf(fields)).Interface())
}

func (p *parquetWriter) Begin(cols []Column) error {
	if p.cols != nil {
		return errBegun
	}
	if err := checkColumns(cols); err != nil {
		return err
	}
	for _, c := range cols {
		if strings.ContainsAny(c.Name, ",\"` ") {
			return fmt.Errorf("export: parquet column name %q has a comma, quote, backslash or space", c.Name)
		}
	}
	p.cols = cols
	p.w = parquet.NewGenericWriter[any](p.out, parquetSchema(cols), parquet.Compression(&parquet.Snappy),
		parquet.CreatedBy("featurestore", "", ""))
	return nil
}

// parquetBatch is how many rows are handed to the parquet writer at once.
const parquetBatch = 256

func (p *parquetWriter) Write(row []any) error {
	if p.cols == nil {
		return errNotBegun
	}
	n := len(p.rows)
	p.rows = append(p.rows, nil)
	r := p.rows[n][:cap(p.rows[n])] // reuse the slice of a row written before
	if len(r) < len(p.cols) {
		r = make(parquet.Row, len(p.cols))
	}
	r = r[:len(p.cols)]
	for i, v := range row {
		c := p.cols[i]
		if err := checkValue(c, v); err != nil {
			p.rows = p.rows[:n]
			return err
		}
		switch {
		case v == nil:
			r[i] = parquet.NullValue().Level(0, 0, i)
		case c.NotNull:
			r[i] = parquetValue(v).Level(0, 0, i)
		default:
			r[i] = parquetValue(v).Level(0, 1, i)
		}
	}
	p.rows[n] = r
	if len(p.rows) == parquetBatch {
		return p.writeRows()
	}
	return nil
}

func parquetValue(v any) parquet.Value {
	switch x := v.(type) {
	case int64:
		return parquet.Int64Value(x)
	case float64:
		return parquet.DoubleValue(x)
	case bool:
		return parquet.BooleanValue(x)
	case string:
		return parquet.ByteArrayValue([]byte(x))
	case time.Time:
		return parquet.Int64Value(x.UnixMicro())
	}
	return parquet.NullValue()
}

// writeRows hands the pending rows to the parquet writer, and writes a row
// group out each time RowGroupRows rows are in it.
func (p *parquetWriter) writeRows() error {
	pending := p.rows
	for len(pending) > 0 {
		batch := pending[:min(p.opts.RowGroupRows-p.inGroup, len(pending))]
		if _, err := p.w.WriteRows(batch); err != nil {
			return fmt.Errorf("export: parquet: %w", err)
		}
		pending = pending[len(batch):]
		if p.inGroup += len(batch); p.inGroup == p.opts.RowGroupRows {
			if err := p.w.Flush(); err != nil {
				return fmt.Errorf("export: parquet: %w", err)
			}
			p.inGroup = 0
			if err := p.opts.Flush(); err != nil {
				return err
			}
		}
	}
	p.rows = p.rows[:0]
	return nil
}

func (p *parquetWriter) Close() error {
	if p.cols == nil {
		return errNotBegun
	}
	if err := p.writeRows(); err != nil {
		return err
	}
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("export: parquet: %w", err)
	}
	return p.opts.Flush()
}
