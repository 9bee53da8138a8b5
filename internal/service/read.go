package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// EntityResult is one entity's features, as GET .../entities/{id} returns.
type EntityResult struct {
	Group     string            `json:"feature_group"`
	EntityKey string            `json:"entity_key"`
	EntityID  string            `json:"entity_id"`
	AsOf      *time.Time        `json:"as_of,omitempty"`
	EventTime time.Time         `json:"event_time"`
	WriteTime time.Time         `json:"write_time"`
	Features  map[string]any    `json:"features"`
	Statuses  map[string]string `json:"statuses"`
}

// GetEntity reads one entity's latest features, or, with asOf, the values
// that were latest at that time. features selects a subset (all when empty).
func (s *Service) GetEntity(ctx context.Context, group, id string, features []string, asOf *time.Time) (res EntityResult, err error) {
	start := s.now()
	op := feature.OpGetEntity
	if asOf != nil {
		op = feature.OpGetEntityAsOf
	}
	defer func() { s.instrument(op, s.groupLabel(group), start, err) }()
	g, err := s.group(group, "group")
	if err != nil {
		return res, err
	}
	if !feature.ValidEntityID(id) {
		return res, feature.Invalid("invalid entity id", feature.FieldError{Field: "id", Problem: "must be 1 to 256 printable characters"})
	}
	specs := g.Features
	if len(features) > 0 {
		var fields []feature.FieldError
		specs = make([]feature.Spec, 0, len(features))
		for i, f := range features {
			spec, ok := g.Feature(f)
			if !ok {
				fields = append(fields, feature.FieldError{Field: fmt.Sprintf("features[%d]", i), Problem: "group " + g.Name + " has no feature " + quote(f)})
			}
			specs = append(specs, spec)
		}
		if len(fields) > 0 {
			return res, feature.NotFound("unknown feature", fields...)
		}
	}
	key := feature.Key{Group: g.Name, EntityID: id}
	var row *feature.Row
	if asOf != nil {
		row, err = s.st.GetAsOf(ctx, key, *asOf)
	} else {
		var rows []*feature.Row
		rows, err = s.st.GetLatest(ctx, []feature.Key{key})
		if err == nil {
			row = rows[0]
		}
	}
	if err != nil {
		return res, err
	}
	if row == nil {
		s.obs.FeatureStatuses(g.Name, 0, len(specs), 0, 0)
		msg := "entity " + quote(id) + " has no features in group " + g.Name
		if asOf != nil {
			msg += " as of " + asOf.Format(time.RFC3339Nano)
		}
		return res, feature.NotFound(msg, feature.FieldError{Field: "id", Problem: "not found"})
	}
	res = EntityResult{Group: g.Name, EntityKey: g.EntityKey, EntityID: id, AsOf: asOf,
		EventTime: row.EventTime, WriteTime: row.WriteTime,
		Features: make(map[string]any, len(specs)), Statuses: make(map[string]string, len(specs))}
	outside := asOf == nil && s.outsideMaxAge(g, row.EventTime)
	var present, null, old int
	for _, spec := range specs {
		n, v := spec.Name, ofType(spec.Type, row.Values[spec.Name])
		res.Features[n] = v
		switch {
		case v == nil:
			res.Statuses[n] = feature.StatusNullValue
			null++
		case outside:
			res.Statuses[n] = feature.StatusOutsideMaxAge
			old++
		default:
			res.Statuses[n] = feature.StatusPresent
			present++
		}
	}
	s.obs.FeatureStatuses(g.Name, present, 0, null, old)
	return res, nil
}

// ofType returns v if it is a value of type t, else nil: a row written
// before a feature was dropped and re-added with another type holds no value
// of the current feature.
func ofType(t feature.ValueType, v any) any {
	switch v.(type) {
	case int64:
		if t == feature.Int64 {
			return v
		}
	case float64:
		if t == feature.Float64 {
			return v
		}
	case bool:
		if t == feature.Bool {
			return v
		}
	case string:
		if t == feature.String {
			return v
		}
	}
	return nil
}

func (s *Service) outsideMaxAge(g feature.Group, eventTime time.Time) bool {
	return g.TTL > 0 && s.now().Sub(eventTime) > time.Duration(g.TTL)
}

// OnlineRequest is Feast's get-online-features request.
type OnlineRequest struct {
	Entities         map[string][]any `json:"entities"`
	Features         []string         `json:"features"`
	FullFeatureNames bool             `json:"full_feature_names"`
}

// OnlineResponse is Feast's get-online-features response: one result per
// requested column (the entity key first), each with one value, status and
// event timestamp per entity.
type OnlineResponse struct {
	Metadata struct {
		FeatureNames []string `json:"feature_names"`
	} `json:"metadata"`
	Results []OnlineColumn `json:"results"`
}

// OnlineColumn is one column of an OnlineResponse.
type OnlineColumn struct {
	Values          []any       `json:"values"`
	Statuses        []string    `json:"statuses"`
	EventTimestamps []time.Time `json:"event_timestamps"`
}

var epoch = time.Unix(0, 0).UTC()

type featureRef struct {
	group feature.Group
	spec  feature.Spec
	gi    int // index of the group in the request's group list
}

// GetOnlineFeatures answers a Feast batch read with one storage round trip
// for every (group, entity) pair of the request.
func (s *Service) GetOnlineFeatures(ctx context.Context, req OnlineRequest) (resp OnlineResponse, err error) {
	start := s.now()
	var groups []feature.Group
	defer func() {
		// Counted once per group read, timed and error-counted once.
		first := ""
		if len(groups) > 0 {
			first = groups[0].Name
			for _, g := range groups[1:] {
				s.obs.CountRequest(feature.OpGetOnlineFeatures, g.Name)
			}
		}
		s.instrument(feature.OpGetOnlineFeatures, first, start, err)
	}()
	var fields []feature.FieldError
	if len(req.Entities) != 1 {
		return resp, feature.Invalid("entities must name exactly one entity key", feature.FieldError{Field: "entities", Problem: "exactly one entity key is required"})
	}
	var entityKey string
	var entityVals []any
	for k, v := range req.Entities {
		entityKey, entityVals = k, v
	}
	if len(entityVals) == 0 {
		return resp, feature.Invalid("no entities requested", feature.FieldError{Field: "entities." + entityKey, Problem: "at least one entity is required"})
	}
	if len(entityVals) > s.opts.MaxEntities {
		return resp, &feature.Error{Code: feature.CodeTooLarge, Message: fmt.Sprintf("%d entities in one request; the limit is %d", len(entityVals), s.opts.MaxEntities),
			Fields: []feature.FieldError{{Field: "entities." + entityKey, Problem: "too many entities"}}}
	}
	if len(req.Features) == 0 {
		return resp, feature.Invalid("no features requested", feature.FieldError{Field: "features", Problem: "at least one feature reference group:feature is required"})
	}
	ids := make([]string, len(entityVals))
	for i, v := range entityVals {
		id, ok := EntityID(v)
		if !ok {
			fields = append(fields, feature.FieldError{Field: fmt.Sprintf("entities.%s[%d]", entityKey, i), Problem: "must be a non-empty string or an integer"})
		}
		ids[i] = id
	}
	reg := s.groups()
	refs := make([]featureRef, 0, len(req.Features))
	groupIndex := map[string]int{}
	notFound := false
	for i, ref := range req.Features {
		field := fmt.Sprintf("features[%d]", i)
		gname, fname, ok := strings.Cut(ref, ":")
		if !ok || gname == "" || fname == "" {
			fields = append(fields, feature.FieldError{Field: field, Problem: "must be a reference of the form group:feature"})
			continue
		}
		g, ok := reg[gname]
		if !ok {
			fields = append(fields, feature.FieldError{Field: field, Problem: "no such feature group " + quote(gname)})
			notFound = true
			continue
		}
		spec, ok := g.Feature(fname)
		if !ok {
			fields = append(fields, feature.FieldError{Field: field, Problem: "group " + gname + " has no feature " + quote(fname)})
			notFound = true
			continue
		}
		if g.EntityKey != entityKey {
			fields = append(fields, feature.FieldError{Field: field, Problem: "group " + gname + " is keyed by " + quote(g.EntityKey) + ", not " + quote(entityKey)})
			continue
		}
		gi, ok := groupIndex[gname]
		if !ok {
			gi = len(groups)
			groupIndex[gname] = gi
			groups = append(groups, g)
		}
		refs = append(refs, featureRef{group: g, spec: spec, gi: gi})
	}
	if len(fields) > 0 {
		if notFound {
			return resp, feature.NotFound("unknown feature reference", fields...)
		}
		return resp, feature.Invalid("invalid get-online-features request", fields...)
	}

	keys := make([]feature.Key, 0, len(groups)*len(ids))
	for _, g := range groups {
		for _, id := range ids {
			keys = append(keys, feature.Key{Group: g.Name, EntityID: id})
		}
	}
	rows, err := s.st.GetLatest(ctx, keys)
	if err != nil {
		return resp, err
	}

	now := s.now()
	resp.Metadata.FeatureNames = make([]string, 0, len(refs)+1)
	resp.Metadata.FeatureNames = append(resp.Metadata.FeatureNames, entityKey)
	resp.Results = make([]OnlineColumn, 0, len(refs)+1)
	entityCol := OnlineColumn{Values: entityVals, Statuses: make([]string, len(ids)), EventTimestamps: make([]time.Time, len(ids))}
	for i := range ids {
		entityCol.Statuses[i] = feature.StatusPresent
		entityCol.EventTimestamps[i] = epoch
	}
	resp.Results = append(resp.Results, entityCol)
	type counts struct{ present, notFound, null, old int }
	tally := make([]counts, len(groups))
	for _, ref := range refs {
		name := ref.spec.Name
		if req.FullFeatureNames {
			name = ref.group.Name + "__" + ref.spec.Name
		}
		resp.Metadata.FeatureNames = append(resp.Metadata.FeatureNames, name)
		col := OnlineColumn{Values: make([]any, len(ids)), Statuses: make([]string, len(ids)), EventTimestamps: make([]time.Time, len(ids))}
		c := &tally[ref.gi]
		for i := range ids {
			row := rows[ref.gi*len(ids)+i]
			switch {
			case row == nil:
				col.Statuses[i], col.EventTimestamps[i] = feature.StatusNotFound, epoch
				c.notFound++
				continue
			}
			v := ofType(ref.spec.Type, row.Values[ref.spec.Name])
			col.Values[i], col.EventTimestamps[i] = v, row.EventTime
			switch {
			case v == nil:
				col.Statuses[i] = feature.StatusNullValue
				c.null++
			case ref.group.TTL > 0 && now.Sub(row.EventTime) > time.Duration(ref.group.TTL):
				col.Statuses[i] = feature.StatusOutsideMaxAge
				c.old++
			default:
				col.Statuses[i] = feature.StatusPresent
				c.present++
			}
		}
		resp.Results = append(resp.Results, col)
	}
	for gi, g := range groups {
		c := tally[gi]
		s.obs.FeatureStatuses(g.Name, c.present, c.notFound, c.null, c.old)
	}
	return resp, nil
}
