// Package feature holds the domain types shared by every part of the feature
// store: feature groups (the registry), typed feature values, rows with event
// and write times, and the coded errors that the HTTP layer maps to statuses.
package feature

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ValueType is the type of one feature's values. Every value may also be null.
type ValueType string

const (
	Int64   ValueType = "int64"
	Float64 ValueType = "float64"
	Bool    ValueType = "bool"
	String  ValueType = "string"
)

// Valid reports whether t is one of the known value types.
func (t ValueType) Valid() bool {
	switch t {
	case Int64, Float64, Bool, String:
		return true
	}
	return false
}

// Spec describes one feature of a group.
type Spec struct {
	Name        string    `json:"name"`
	Type        ValueType `json:"type"`
	Description string    `json:"description,omitempty"`
}

// Group is a registered feature group: a set of typed features keyed by one
// entity key, with a time-to-live after which values count as outside their
// maximum age.
type Group struct {
	Name      string   `json:"name"`
	EntityKey string   `json:"entity_key"`
	Features  []Spec   `json:"features"`
	TTL       Duration `json:"ttl_seconds"`
	// HistoryRetention is how far back the group's history answers as-of
	// reads: older rows that a newer row already superseded before
	// now-HistoryRetention are pruned, and as-of reads of such times are
	// refused (CodeHistoryExpired). nil means the service's default; 0 keeps
	// all history.
	HistoryRetention *Duration         `json:"history_retention_seconds,omitempty"`
	Description      string            `json:"description,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
	SchemaVersion    int               `json:"schema_version"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
}

// Feature returns the spec of the named feature.
func (g Group) Feature(name string) (Spec, bool) {
	for _, f := range g.Features {
		if f.Name == name {
			return f, true
		}
	}
	return Spec{}, false
}

// FeatureNames lists the group's feature names in declaration order.
func (g Group) FeatureNames() []string {
	out := make([]string, len(g.Features))
	for i, f := range g.Features {
		out[i] = f.Name
	}
	return out
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// ValidName reports whether s can name a group, an entity key or a feature:
// lower-case letters, digits and underscores, starting with a letter, at most
// 63 characters. Names are used in metric label values, so they are bounded.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ReservedGroupName cannot name a group: it is the feature_group metric label
// of the operations that concern no group.
const ReservedGroupName = "none"

// MaxFeaturesPerGroup bounds a group's width; Limits may lower it.
const MaxFeaturesPerGroup = 512

// MaxHistoryRetention bounds a group's history retention: 100 years.
const MaxHistoryRetention = 36525 * 24 * time.Hour

// Retention returns the group's effective history retention: its own, or
// def when it has none. 0 means all history is kept.
func (g Group) Retention(def time.Duration) time.Duration {
	if g.HistoryRetention != nil {
		return time.Duration(*g.HistoryRetention)
	}
	return def
}

// MaxTagsPerGroup bounds a group's tags; Limits may lower it.
const MaxTagsPerGroup = 64

// Limits bound what a client may register: they keep the registry, which
// every replica holds in memory and lists whole, small. The zero value of a
// field means its default (DefaultLimits).
type Limits struct {
	// MaxGroups bounds the number of registered groups, built-in ones
	// included.
	MaxGroups int
	// MaxFeatures bounds the features of one group (at most
	// MaxFeaturesPerGroup).
	MaxFeatures int
	// MaxTags bounds the tags of one group (at most MaxTagsPerGroup).
	MaxTags int
	// MaxTagBytes bounds the bytes of each tag key and of each tag value.
	MaxTagBytes int
	// MaxDescriptionBytes bounds the bytes of a group's description and of
	// each feature's.
	MaxDescriptionBytes int
}

// DefaultLimits are the limits of a service that sets none.
var DefaultLimits = Limits{MaxGroups: 1000, MaxFeatures: MaxFeaturesPerGroup, MaxTags: MaxTagsPerGroup,
	MaxTagBytes: 256, MaxDescriptionBytes: 4096}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	if l.MaxGroups > 0 {
		d.MaxGroups = l.MaxGroups
	}
	if l.MaxFeatures > 0 {
		d.MaxFeatures = min(l.MaxFeatures, MaxFeaturesPerGroup)
	}
	if l.MaxTags > 0 {
		d.MaxTags = min(l.MaxTags, MaxTagsPerGroup)
	}
	if l.MaxTagBytes > 0 {
		d.MaxTagBytes = l.MaxTagBytes
	}
	if l.MaxDescriptionBytes > 0 {
		d.MaxDescriptionBytes = l.MaxDescriptionBytes
	}
	return d
}

// CheckSize checks a group definition against the size limits of l (all
// but MaxGroups, which concerns the registry): a too_large error naming
// every field past its limit.
func (g Group) CheckSize(l Limits) error {
	l = l.WithDefaults()
	var fields []FieldError
	if len(g.Features) > l.MaxFeatures {
		fields = append(fields, FieldError{Field: "features", Problem: fmt.Sprintf("at most %d features (--max-features-per-group)", l.MaxFeatures)})
	}
	if len(g.Description) > l.MaxDescriptionBytes {
		fields = append(fields, FieldError{Field: "description", Problem: fmt.Sprintf("at most %d bytes (--max-description-bytes)", l.MaxDescriptionBytes)})
	}
	for i, f := range g.Features {
		if len(f.Description) > l.MaxDescriptionBytes {
			fields = append(fields, FieldError{Field: fmt.Sprintf("features[%d].description", i), Problem: fmt.Sprintf("at most %d bytes (--max-description-bytes)", l.MaxDescriptionBytes)})
		}
	}
	if len(g.Tags) > l.MaxTags {
		fields = append(fields, FieldError{Field: "tags", Problem: fmt.Sprintf("at most %d tags (--max-tags)", l.MaxTags)})
	}
	keys := make([]string, 0, len(g.Tags))
	for k := range g.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(k) > l.MaxTagBytes || len(g.Tags[k]) > l.MaxTagBytes {
			fields = append(fields, FieldError{Field: "tags." + truncate(k, 64), Problem: fmt.Sprintf("key and value must each be at most %d bytes (--max-tag-bytes)", l.MaxTagBytes)})
		}
	}
	if len(fields) > 0 {
		return TooLarge("feature group definition over its limits", fields...)
	}
	return nil
}

// textProblems names every description, tag key or tag value that is not
// valid text (ValidText).
func (g Group) textProblems() []FieldError {
	var fields []FieldError
	const problem = "must be valid UTF-8 without NUL characters"
	if !ValidText(g.Description) {
		fields = append(fields, FieldError{Field: "description", Problem: problem})
	}
	for i, f := range g.Features {
		if !ValidText(f.Description) {
			fields = append(fields, FieldError{Field: fmt.Sprintf("features[%d].description", i), Problem: problem})
		}
	}
	for k, v := range g.Tags {
		if !ValidText(k) || !ValidText(v) {
			fields = append(fields, FieldError{Field: "tags", Problem: problem})
			break
		}
	}
	return fields
}

// truncate cuts s to at most n bytes for quoting in a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// Validate checks a group definition as a client sent it (times and schema
// version are set by the registry, not the client).
func (g Group) Validate() error {
	var fields []FieldError
	if !ValidName(g.Name) {
		fields = append(fields, FieldError{Field: "name", Problem: "must match ^[a-z][a-z0-9_]{0,62}$"})
	} else if g.Name == ReservedGroupName {
		fields = append(fields, FieldError{Field: "name", Problem: strconv.Quote(ReservedGroupName) + " is reserved (it labels metrics of operations on no group)"})
	}
	if !ValidName(g.EntityKey) {
		fields = append(fields, FieldError{Field: "entity_key", Problem: "must match ^[a-z][a-z0-9_]{0,62}$"})
	}
	if len(g.Features) == 0 {
		fields = append(fields, FieldError{Field: "features", Problem: "at least one feature is required"})
	}
	if len(g.Features) > MaxFeaturesPerGroup {
		fields = append(fields, FieldError{Field: "features", Problem: fmt.Sprintf("at most %d features", MaxFeaturesPerGroup)})
	}
	seen := map[string]bool{}
	for i, f := range g.Features {
		p := fmt.Sprintf("features[%d]", i)
		if !ValidName(f.Name) {
			fields = append(fields, FieldError{Field: p + ".name", Problem: "must match ^[a-z][a-z0-9_]{0,62}$"})
		} else if seen[f.Name] {
			fields = append(fields, FieldError{Field: p + ".name", Problem: "duplicate feature name " + strconv.Quote(f.Name)})
		}
		seen[f.Name] = true
		if !f.Type.Valid() {
			fields = append(fields, FieldError{Field: p + ".type", Problem: "must be one of int64, float64, bool, string"})
		}
	}
	if g.TTL < 0 {
		fields = append(fields, FieldError{Field: "ttl_seconds", Problem: "must be >= 0 (0 means no maximum age)"})
	}
	if g.HistoryRetention != nil && (*g.HistoryRetention < 0 || time.Duration(*g.HistoryRetention) > MaxHistoryRetention) {
		fields = append(fields, FieldError{Field: "history_retention_seconds", Problem: fmt.Sprintf("must be between 0 (keep all history) and %d seconds (100 years); leave it out for the service default", int64(MaxHistoryRetention/time.Second))})
	}
	if len(g.Tags) > MaxTagsPerGroup {
		fields = append(fields, FieldError{Field: "tags", Problem: fmt.Sprintf("at most %d tags", MaxTagsPerGroup)})
	}
	fields = append(fields, g.textProblems()...)
	if len(fields) > 0 {
		return Invalid("invalid feature group", fields...)
	}
	return nil
}

// Duration is a time.Duration that travels in JSON as whole seconds.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, int64(time.Duration(d)/time.Second), 10), nil
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	n, ok := ExactInt(string(b))
	if !ok || n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
		// An UnmarshalTypeError, so that encoding/json names the field.
		return &json.UnmarshalTypeError{Value: "number " + string(b), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(time.Duration(n) * time.Second)
	return nil
}

// Values maps feature names to values. A value is nil (null), int64, float64,
// bool or string: Normalize converts decoded JSON into exactly these types.
type Values map[string]any

// Row is one write of a group's features for one entity.
type Row struct {
	Group    string `json:"group"`
	EntityID string `json:"entity_id"`
	// EventTime is when the values were true in the world; reads as of T see
	// the newest row with EventTime <= T.
	EventTime time.Time `json:"event_time"`
	// WriteTime is when the store accepted the row; it breaks ties between
	// rows with the same event time (the later write wins).
	WriteTime time.Time `json:"write_time"`
	Values    Values    `json:"values"`
}

// Newer reports whether r supersedes o as the latest row of an entity:
// a later event time, or the same event time written later.
func (r Row) Newer(o Row) bool {
	if !r.EventTime.Equal(o.EventTime) {
		return r.EventTime.After(o.EventTime)
	}
	return r.WriteTime.After(o.WriteTime)
}

// Key identifies the latest row of one entity in one group.
type Key struct {
	Group    string
	EntityID string
}

// ValidEntityID reports whether id can identify an entity: 1 to 256 bytes of
// valid UTF-8 with no control characters (NUL included).
func ValidEntityID(id string) bool {
	if id == "" || len(id) > 256 || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// NormalizeValue converts a decoded JSON value (or a Go value) to the feature's
// type. Whole-number floats become int64 for Int64; ints become float64 for
// Float64. It reports a problem string for a value of the wrong type.
func NormalizeValue(t ValueType, v any) (any, string) {
	if v == nil {
		return nil, ""
	}
	switch t {
	case Int64:
		switch x := v.(type) {
		case int64:
			return x, ""
		case int:
			return int64(x), ""
		case float64:
			if x == math.Trunc(x) && math.Abs(x) <= 1<<53 {
				return int64(x), ""
			}
			return nil, "must be an integer"
		case json.Number:
			if n, ok := ExactInt(string(x)); ok {
				return n, "" // also 460.0 or 1e3, never 1e-400
			}
			return nil, "must be an integer"
		}
		return nil, "must be an integer"
	case Float64:
		switch x := v.(type) {
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, "must be a finite number"
			}
			return x, ""
		case int64:
			return float64(x), ""
		case int:
			return float64(x), ""
		case json.Number:
			if f, err := x.Float64(); err == nil && !math.IsInf(f, 0) {
				return f, ""
			}
			return nil, "must be a number"
		}
		return nil, "must be a number"
	case Bool:
		if b, ok := v.(bool); ok {
			return b, ""
		}
		return nil, "must be a boolean"
	case String:
		if s, ok := v.(string); ok {
			return s, ""
		}
		return nil, "must be a string"
	}
	return nil, "unknown type"
}

// NormalizeValues checks values against the group's schema and returns them
// converted to canonical types. Unknown features are rejected; features the
// row leaves out are stored as null. prefix names the row in field paths.
func NormalizeValues(g Group, values map[string]any, prefix string) (Values, []FieldError) {
	var fields []FieldError
	out := make(Values, len(g.Features))
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		spec, ok := g.Feature(k)
		if !ok {
			fields = append(fields, FieldError{Field: prefix + "values." + k, Problem: "unknown feature of group " + g.Name})
			continue
		}
		nv, problem := NormalizeValue(spec.Type, values[k])
		if problem != "" {
			fields = append(fields, FieldError{Field: prefix + "values." + k, Problem: problem})
			continue
		}
		out[k] = nv
	}
	for _, f := range g.Features {
		if _, ok := out[f.Name]; !ok {
			out[f.Name] = nil
		}
	}
	return out, fields
}
