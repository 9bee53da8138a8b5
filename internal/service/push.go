package service

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// PushRequest is the body of Feast's POST /push. A push source name names a
// feature group directly (this store has no separate push sources).
type PushRequest struct {
	PushSourceName string `json:"push_source_name"`
	// DF is the dataframe in columns: the group's entity key, optionally
	// event_timestamp and created, and features; a scalar is repeated on
	// every row.
	DF map[string]any `json:"df"`
	// AllowRegistryCache false re-reads the registry from the system of
	// record before the write (true: the registry in memory, which another
	// replica's change reaches within --refresh-interval).
	AllowRegistryCache *bool `json:"allow_registry_cache"`
	// To is online (the default) or online_and_offline: both write the
	// online value and its history, which is this store's offline record.
	// offline alone cannot be honoured.
	To *string `json:"to"`
	// TransformOnWrite is accepted either way: no feature here has an
	// on-demand transformation to apply.
	TransformOnWrite *bool `json:"transform_on_write"`
}

// WriteToOnlineStoreRequest is the body of Feast's POST
// /write-to-online-store; feature_view_name names a feature group.
type WriteToOnlineStoreRequest struct {
	FeatureViewName    string         `json:"feature_view_name"`
	DF                 map[string]any `json:"df"`
	AllowRegistryCache *bool          `json:"allow_registry_cache"`
	TransformOnWrite   *bool          `json:"transform_on_write"`
}

// Push writes a Feast push as validated rows of the group the push source
// name names: all rows or none, as WriteRows.
func (s *Service) Push(ctx context.Context, req PushRequest) (WriteResult, error) {
	if req.To != nil {
		switch *req.To {
		case "online", "online_and_offline":
		case "offline":
			return WriteResult{}, feature.Invalid("to=offline is not supported: every write here updates the online value and its history together",
				feature.FieldError{Field: "to", Problem: "must be online or online_and_offline"})
		default:
			return WriteResult{}, feature.Invalid("unknown push mode "+quote(*req.To),
				feature.FieldError{Field: "to", Problem: "must be online or online_and_offline"})
		}
	}
	return s.writeFrame(ctx, req.PushSourceName, "push_source_name", req.DF, req.AllowRegistryCache)
}

// WriteToOnlineStore writes a Feast dataframe to the group feature_view_name
// names: all rows or none, as WriteRows.
func (s *Service) WriteToOnlineStore(ctx context.Context, req WriteToOnlineStoreRequest) (WriteResult, error) {
	return s.writeFrame(ctx, req.FeatureViewName, "feature_view_name", req.DF, req.AllowRegistryCache)
}

// writeFrame turns a dataframe in columns into rows of the named group and
// writes them with writeRows; problems name df.<column>[row].
func (s *Service) writeFrame(ctx context.Context, group, groupField string, df map[string]any, allowCache *bool) (WriteResult, error) {
	if group == "" {
		return WriteResult{}, feature.Invalid(groupField+" is required", feature.FieldError{Field: groupField, Problem: "must name a feature group"})
	}
	if allowCache != nil && !*allowCache {
		if err := s.rereadRegistry(ctx); err != nil {
			return WriteResult{}, err
		}
	}
	g, ok := s.groups()[group]
	if !ok || s.builtin[group] {
		// writeRows reports the unknown or built-in group.
		return s.writeRows(ctx, group, groupField, nil, frameField(""))
	}
	rows, err := frameRows(g, df)
	if err != nil {
		return WriteResult{}, err
	}
	return s.writeRows(ctx, group, groupField, rows, frameField(g.EntityKey))
}

// rereadRegistry re-reads the registry from the system of record and
// returns a failure to the caller (a push that asked for a fresh registry).
func (s *Service) rereadRegistry(ctx context.Context) error {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	return s.reloadRegistryLocked(ctx)
}

// frameTimeColumn is the dataframe column holding the event time, Feast's
// default timestamp field.
const frameTimeColumn = "event_timestamp"

// frameCreatedColumn is the created timestamp Feast's clients send (its
// remote online store always does). It is checked and not stored: the
// store stamps each write with its own write time, which plays its part
// (ordering writes of one event time).
const frameCreatedColumn = "created"

// frameField names fields of a dataframe: df.age[3].
func frameField(entityKey string) fieldNamer {
	return func(i int, column string) string {
		switch column {
		case colEntityID:
			column = entityKey
		case colEventTime:
			column = frameTimeColumn
		case colValues:
			column = ""
		default:
			column = strings.TrimPrefix(column, "values.")
		}
		if i < 0 || column == "" {
			return "df"
		}
		return fmt.Sprintf("df.%s[%d]", column, i)
	}
}

// frameRows checks a dataframe's shape against the group and returns its
// rows: every list column has the same length, the entity key column is
// present, every other column is event_timestamp or a feature of the
// group, and each event time parses.
func frameRows(g feature.Group, df map[string]any) ([]RowInput, error) {
	n, fields := frameLength(df)
	if len(fields) > 0 {
		return nil, feature.Invalid("df is not a dataframe in columns", fields...)
	}
	if _, ok := df[g.EntityKey]; !ok {
		return nil, feature.Invalid("df has no column "+quote(g.EntityKey),
			feature.FieldError{Field: "df." + g.EntityKey, Problem: "is required: the entity key of group " + g.Name})
	}
	cols := make([]string, 0, len(df))
	for c := range df {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	for _, c := range cols {
		if frameColumn(g, c) == columnUnknown {
			fields = append(fields, feature.FieldError{Field: "df." + c, Problem: "unknown feature of group " + g.Name})
		}
	}
	if len(fields) > 0 {
		return nil, feature.Invalid("df has columns that are not features of group "+quote(g.Name)+"; nothing was written", fields...)
	}
	rows := make([]RowInput, n)
	for i := range rows {
		rows[i].Values = make(map[string]any, len(df))
	}
	for _, c := range cols {
		kind := frameColumn(g, c)
		for i := range rows {
			if problem := setCell(&rows[i], kind, c, cell(df[c], i)); problem != "" {
				fields = append(fields, feature.FieldError{Field: fmt.Sprintf("df.%s[%d]", c, i), Problem: problem})
			}
		}
	}
	if len(fields) > 0 {
		return nil, feature.Invalid("invalid timestamps; nothing was written", fields...)
	}
	return rows, nil
}

// frameLength returns the number of rows of a dataframe: the common length
// of its list columns (a scalar column repeats on every row).
func frameLength(df map[string]any) (int, []feature.FieldError) {
	if len(df) == 0 {
		return 0, []feature.FieldError{{Field: "df", Problem: "must be an object of columns, each a list of values"}}
	}
	n := -1
	var fields []feature.FieldError
	cols := make([]string, 0, len(df))
	for c := range df {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	for _, c := range cols {
		switch v := df[c].(type) {
		case []any:
			if n < 0 {
				n = len(v)
			} else if len(v) != n {
				fields = append(fields, feature.FieldError{Field: "df." + c, Problem: fmt.Sprintf("has %d values; the other columns have %d", len(v), n)})
			}
		case map[string]any:
			fields = append(fields, feature.FieldError{Field: "df." + c, Problem: "must be a list of values or a single value"})
		}
	}
	if n < 0 && len(fields) == 0 {
		fields = append(fields, feature.FieldError{Field: "df", Problem: "at least one column must be a list of values"})
	}
	return n, fields
}

// columnKind is what a dataframe column holds.
type columnKind int

const (
	columnUnknown columnKind = iota
	columnEntity
	columnEventTime
	columnFeature
	columnCreated
)

// frameColumn says what column c of a dataframe for g holds. A feature
// named created is a feature; event_timestamp is always the event time.
func frameColumn(g feature.Group, c string) columnKind {
	if c == g.EntityKey {
		return columnEntity
	}
	if c == frameTimeColumn {
		return columnEventTime
	}
	if _, ok := g.Feature(c); ok {
		return columnFeature
	}
	if c == frameCreatedColumn {
		return columnCreated
	}
	return columnUnknown
}

// setCell puts value v of column c, of kind kind, into row r, or says what
// is wrong with it.
func setCell(r *RowInput, kind columnKind, c string, v any) string {
	switch kind {
	case columnEntity:
		r.EntityID = v
	case columnEventTime:
		t, problem := frameTime(v)
		r.EventTime = &t
		return problem
	case columnCreated:
		if _, problem := frameTime(v); problem != "" && v != nil {
			return problem + " or null"
		}
	default:
		r.Values[c] = v
	}
	return ""
}

// cell is row i of a column: the list's element, or the scalar itself.
func cell(col any, i int) any {
	if l, ok := col.([]any); ok {
		return l[i]
	}
	return col
}

// frameTimeLayouts are the event time forms accepted in a dataframe: RFC
// 3339, and Python's str(datetime) with a space and an optional offset (a
// time without an offset is UTC, as Feast reads a naive timestamp).
var frameTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
}

func frameTime(v any) (time.Time, string) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, "must be a time string such as 2025-06-01T00:00:00Z or 2025-06-01 00:00:00"
	}
	for _, layout := range frameTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), ""
		}
	}
	return time.Time{}, "not a time: want RFC 3339 (2025-06-01T00:00:00Z) or 2025-06-01 00:00:00[+00:00]"
}
