package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/jsonappend"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/tmdb"
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
func (s *Service) GetEntity(ctx context.Context, group, id string, features []string, asOf *time.Time) (EntityResult, error) {
	v, err := s.GetEntityView(ctx, group, id, features, asOf)
	if err != nil {
		return EntityResult{}, err
	}
	return v.Result(), nil
}

// EntityView is GetEntity's answer with its features as a list in name
// order, which its JSON is written from (the same bytes as the
// EntityResult's): what GET .../entities/{id} answers.
type EntityView struct {
	Group     string
	EntityKey string
	EntityID  string
	AsOf      *time.Time
	EventTime time.Time
	WriteTime time.Time
	// Names are the features returned, distinct, in byte order; Values and
	// Statuses are theirs, index for index.
	Names    []string
	Values   []any
	Statuses []string

	keysJSON []string // each of Names as the JSON of an object key, if set
}

// Result returns the view as an EntityResult.
func (v EntityView) Result() EntityResult {
	res := EntityResult{Group: v.Group, EntityKey: v.EntityKey, EntityID: v.EntityID, AsOf: v.AsOf,
		EventTime: v.EventTime, WriteTime: v.WriteTime,
		Features: make(map[string]any, len(v.Names)), Statuses: make(map[string]string, len(v.Names))}
	for i, n := range v.Names {
		res.Features[n], res.Statuses[n] = v.Values[i], v.Statuses[i]
	}
	return res
}

// MarshalJSON encodes the view as encoding/json encodes its Result (with
// SetEscapeHTML(false), as the handlers do): the fallback of AppendJSON.
func (v EntityView) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v.Result()); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// GetEntityView is GetEntity answering an EntityView.
func (s *Service) GetEntityView(ctx context.Context, group, id string, features []string, asOf *time.Time) (res EntityView, err error) {
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
	if problem := pathEntityID(g.EntityKey, id); problem != "" {
		return res, feature.Invalid("invalid entity id", feature.FieldError{Field: "id", Problem: problem})
	}
	specs, sorted, err := s.entitySpecs(g, features)
	if err != nil {
		return res, err
	}
	if asOf != nil {
		if err := s.checkRetention(g, *asOf); err != nil {
			return res, err
		}
	}
	relative := g.Name == tmdb.GroupStatistical && needsCorpus(specs)
	var hint []string
	if !relative {
		hint = features
	}
	ctx = store.WithReadHint(ctx, hint, true) // the row is only read (withRelative copies what it completes)
	row, err := s.readEntity(ctx, g, id, asOf, relative)
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
	res = EntityView{Group: g.Name, EntityKey: g.EntityKey, EntityID: id, AsOf: asOf,
		EventTime: row.EventTime, WriteTime: row.WriteTime, Names: sorted.names, keysJSON: sorted.keysJSON}
	outside := asOf == nil && s.outsideMaxAge(g, row.EventTime)
	n := len(sorted.specs)
	vals, statuses := make([]any, n), make([]string, n)
	var counts statusCounts
	for i, spec := range sorted.specs {
		vals[i] = ofType(spec.Type, row.Values[spec.Name])
		statuses[i] = valueStatus(vals[i], outside)
		counts.count(statuses[i])
	}
	res.Values, res.Statuses = vals, statuses
	if len(specs) != n { // a name requested more than once counts each time
		counts = statusCounts{}
		for _, spec := range specs {
			i, _ := slices.BinarySearch(sorted.names, spec.Name)
			counts.count(statuses[i])
		}
	}
	counts.report(s.obs, g.Name)
	return res, nil
}

// sortedSpecs are feature specs in name order, without repeats, with their
// names, and each name as the JSON of an object key ("name":).
type sortedSpecs struct {
	specs    []feature.Spec
	names    []string
	keysJSON []string
}

// newSortedSpecs sorts specs; with keys (for a list kept for many reads),
// it also encodes their keys.
func newSortedSpecs(specs []feature.Spec, keys bool) *sortedSpecs {
	ss := slices.Clone(specs)
	slices.SortFunc(ss, func(a, b feature.Spec) int { return compareStrings(a.Name, b.Name) })
	ss = slices.CompactFunc(ss, func(a, b feature.Spec) bool { return a.Name == b.Name })
	out := &sortedSpecs{specs: ss, names: make([]string, len(ss))}
	for i, sp := range ss {
		out.names[i] = sp.Name
	}
	if keys {
		out.keysJSON = make([]string, len(ss))
		var b []byte
		for i, n := range out.names {
			b = append(jsonappend.String(b[:0], n), ':')
			out.keysJSON[i] = string(b)
		}
	}
	return out
}

// groupSorted is a group's specs in name order, as of one version of the
// group (its Features slice).
type groupSorted struct {
	first  *feature.Spec
	n      int
	sorted *sortedSpecs
}

// entitySpecs returns the specs a GET of an entity of g reads: features, or
// all of g's when it is empty, in request order and in name order. The
// order of all of a group's features is computed once per version of the
// group.
func (s *Service) entitySpecs(g feature.Group, features []string) ([]feature.Spec, *sortedSpecs, error) {
	if len(features) == 0 {
		if len(g.Features) == 0 {
			return nil, &sortedSpecs{}, nil
		}
		if c, ok := s.sorted.Load(g.Name); ok {
			if gs := c.(*groupSorted); gs.first == &g.Features[0] && gs.n == len(g.Features) {
				return g.Features, gs.sorted, nil
			}
		}
		sorted := newSortedSpecs(g.Features, true)
		s.sorted.Store(g.Name, &groupSorted{first: &g.Features[0], n: len(g.Features), sorted: sorted})
		return g.Features, sorted, nil
	}
	var fields []feature.FieldError
	specs := make([]feature.Spec, 0, len(features))
	for i, f := range features {
		spec, ok := g.Feature(f)
		if !ok {
			fields = append(fields, feature.FieldError{Field: fmt.Sprintf("features[%d]", i), Problem: "group " + g.Name + " has no feature " + quote(f)})
		}
		specs = append(specs, spec)
	}
	if len(fields) > 0 {
		return nil, nil, feature.NotFound("unknown feature", fields...)
	}
	return specs, newSortedSpecs(specs, false), nil
}

// readEntity reads one entity's latest row, or the row that was latest at
// asOf. With relative, the row is a movie_statistical row completed with its
// corpus-relative features: its movie_basic row is read with it (in the same
// round trip for a latest read) and the corpus in one more.
func (s *Service) readEntity(ctx context.Context, g feature.Group, id string, asOf *time.Time, relative bool) (*feature.Row, error) {
	key := feature.Key{Group: g.Name, EntityID: id}
	basicKey := feature.Key{Group: tmdb.GroupBasic, EntityID: id}
	var row, basic *feature.Row
	var err error
	switch {
	case asOf != nil:
		row, err = s.st.GetAsOf(ctx, key, *asOf)
		if err == nil && row != nil && relative {
			basic, err = s.st.GetAsOf(ctx, basicKey, *asOf)
		}
	case relative:
		var rows []*feature.Row
		if rows, err = s.st.GetLatest(ctx, []feature.Key{key, basicKey}); err == nil {
			row, basic = rows[0], rows[1]
		}
	default:
		var rows []*feature.Row
		if rows, err = s.st.GetLatest(ctx, []feature.Key{key}); err == nil {
			row = rows[0]
		}
	}
	if err != nil || row == nil || !relative {
		return row, err
	}
	rows, err := s.withRelative(ctx, []*feature.Row{row}, []*feature.Row{basic}, asOf)
	if err != nil {
		return nil, err
	}
	return rows[0], nil
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

// OnlineRequest is Feast's get-online-features request, with every field a
// Feast client sends (the Python and Go feature servers' requests).
type OnlineRequest struct {
	Entities map[string][]any `json:"entities"`
	// Features are group:feature references; FeatureService names a feature
	// service instead. One of the two is required.
	Features       []string `json:"features"`
	FeatureService *string  `json:"feature_service"`
	// FullFeatureNames names the columns group__feature.
	FullFeatureNames bool `json:"full_feature_names"`
	// RequestContext is request data for on-demand features. No feature
	// here takes request data, so it must be absent or empty.
	RequestContext map[string]any `json:"request_context"`
	// IncludeFeatureViewVersionMetadata adds each group's name and schema
	// version to the response metadata (Feast's feature_view_metadata).
	IncludeFeatureViewVersionMetadata bool `json:"include_feature_view_version_metadata"`
}

// OnlineResponse is Feast's get-online-features response: one result per
// requested column (the entity key first), each with one value, status and
// event timestamp per entity.
type OnlineResponse struct {
	Metadata struct {
		FeatureNames []string `json:"feature_names"`
		// FeatureViewMetadata lists the groups read, in order of first
		// use, when the request asks for it.
		FeatureViewMetadata []FeatureViewMetadata `json:"feature_view_metadata,omitempty"`
	} `json:"metadata"`
	Results []OnlineColumn `json:"results"`
}

// FeatureViewMetadata is one group a batch read used and the schema version
// it was read with (Feast's feature view name and version).
type FeatureViewMetadata struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
}

// OnlineColumn is one column of an OnlineResponse.
type OnlineColumn struct {
	Values          []any       `json:"values"`
	Statuses        []string    `json:"statuses"`
	EventTimestamps []time.Time `json:"event_timestamps"`
}

var epoch = time.Unix(0, 0).UTC()

// GetOnlineFeatures answers a Feast batch read with one storage round trip
// for all the (group, entity) pairs of the request: it parses the entities,
// plans which features of which groups to read, fetches the latest rows and
// assembles the columns.
func (s *Service) GetOnlineFeatures(ctx context.Context, req OnlineRequest) (resp OnlineResponse, err error) {
	start := s.now()
	var plan onlinePlan
	defer func() { s.instrumentOnline(plan.groups, start, err) }()
	plan, err = s.planOnline(ctx, req)
	if err != nil {
		return resp, err
	}
	keys := plan.keys()
	stat, basic, relative := plan.relative()
	if relative && basic < 0 { // read the movies' movie_basic rows in the same round trip
		for _, id := range plan.ids {
			keys = append(keys, feature.Key{Group: tmdb.GroupBasic, EntityID: id})
		}
	}
	var hint []string
	if !relative {
		hint = plan.featureNames()
	}
	ctx = store.WithReadHint(ctx, hint, true) // the rows are only read (withRelative copies what it completes)
	rows, err := s.st.GetLatest(ctx, keys)
	if err != nil {
		return resp, err
	}
	if relative {
		n := len(plan.ids)
		basicRows := rows[len(rows)-n:]
		if basic >= 0 {
			basicRows = rows[basic*n : (basic+1)*n]
		}
		filled, err := s.withRelative(ctx, rows[stat*n:(stat+1)*n], basicRows, nil)
		if err != nil {
			return resp, err
		}
		copy(rows[stat*n:], filled)
	}
	return s.assembleOnline(plan, rows, req), nil
}

// featureNames lists the names of the features the plan reads, once each
// (of whichever group): the hint that lets the cache decode only those.
func (p *onlinePlan) featureNames() []string {
	names := make([]string, 0, len(p.refs))
	for _, ref := range p.refs {
		if !slices.Contains(names, ref.spec.Name) {
			names = append(names, ref.spec.Name)
		}
	}
	return names
}

// relative reports whether the plan asks for a corpus-relative feature of
// movie_statistical, with the indexes in p.groups of movie_statistical and
// of movie_basic (-1 if the plan does not read it).
func (p *onlinePlan) relative() (stat, basic int, ok bool) {
	stat, basic = -1, -1
	for gi, g := range p.groups {
		switch g.Name {
		case tmdb.GroupStatistical:
			stat = gi
		case tmdb.GroupBasic:
			basic = gi
		}
	}
	if stat < 0 {
		return stat, basic, false
	}
	for _, ref := range p.refs {
		if ref.gi == stat && slices.Contains(tmdb.CorpusRelative, ref.spec.Name) {
			return stat, basic, true
		}
	}
	return stat, basic, false
}

// instrumentOnline counts a batch read once per group it read, and times
// and error-counts it once, labelled with its first group. groups are those
// resolved before any error.
func (s *Service) instrumentOnline(groups []feature.Group, start time.Time, err error) {
	s.instrumentGroups(feature.OpGetOnlineFeatures, groups, start, err)
}

// instrumentGroups counts an operation once per group it read, and times
// and error-counts it once, labelled with its first group.
func (s *Service) instrumentGroups(op feature.Operation, groups []feature.Group, start time.Time, err error) {
	first := ""
	if len(groups) > 0 {
		first = groups[0].Name
		for _, g := range groups[1:] {
			s.obs.CountRequest(op, g.Name)
		}
	}
	s.instrument(op, first, start, err)
}

// onlinePlan is what a get-online-features request asks for.
type onlinePlan struct {
	entityKey  string
	entityVals []any    // as requested, echoed in the entity column
	ids        []string // the canonical ids of entityVals
	groups     []feature.Group
	refs       []featureRef // in request order
}

// featureRef is one requested feature.
type featureRef struct {
	group string // the group's name; the group itself is onlinePlan.groups[gi], once per plan
	spec  feature.Spec
	gi    int // index of the group in onlinePlan.groups
}

// planOnline validates a request and resolves its feature references
// against the registry. Every problem with an entity id or a reference is
// reported at once; the error is NotFound when a group or feature does not
// exist, else Invalid. The plan's groups are set even with an error, as far
// as the references resolved.
func (s *Service) planOnline(ctx context.Context, req OnlineRequest) (onlinePlan, error) {
	p, err := s.parseEntities(req)
	if err != nil {
		return p, err
	}
	refs, refField, err := s.requestedRefs(ctx, req)
	if err != nil {
		return p, err
	}
	fields := p.parseIDs()
	refFields, notFound := p.resolveRefs(s.groups(), refs, refField)
	fields = append(fields, refFields...)
	switch {
	case notFound:
		return p, feature.NotFound("unknown feature reference", fields...)
	case len(fields) > 0:
		return p, feature.Invalid("invalid get-online-features request", fields...)
	}
	return p, nil
}

// requestedRefs returns the feature references a request asks for: its
// features, or those of its feature service. A request_context is refused:
// no feature here is computed from request data, and ignoring it would hide
// a client's mistake.
func (s *Service) requestedRefs(ctx context.Context, req OnlineRequest) (refs []string, field string, err error) {
	if len(req.RequestContext) > 0 {
		return nil, "", feature.Invalid("request_context is not supported: no feature of this store is computed from request data",
			feature.FieldError{Field: "request_context", Problem: "must be absent or empty (there are no on-demand features)"})
	}
	var service string
	if req.FeatureService != nil {
		if *req.FeatureService == "" {
			return nil, "", feature.Invalid("feature_service is empty", feature.FieldError{Field: "feature_service", Problem: "must name a feature service"})
		}
		service = *req.FeatureService
	}
	return s.requestedFeatures(ctx, req.Features, service)
}

// parseEntities checks that the request names one entity key with between
// one and MaxEntities entities.
func (s *Service) parseEntities(req OnlineRequest) (p onlinePlan, err error) {
	if len(req.Entities) != 1 {
		return p, feature.Invalid("entities must name exactly one entity key", feature.FieldError{Field: "entities", Problem: "exactly one entity key is required"})
	}
	for k, v := range req.Entities {
		p.entityKey, p.entityVals = k, v
	}
	if len(p.entityVals) == 0 {
		return p, feature.Invalid("no entities requested", feature.FieldError{Field: "entities." + p.entityKey, Problem: "at least one entity is required"})
	}
	if len(p.entityVals) > s.opts.MaxEntities {
		return p, &feature.Error{Code: feature.CodeTooLarge, Message: fmt.Sprintf("%d entities in one request; the limit is %d", len(p.entityVals), s.opts.MaxEntities),
			Fields: []feature.FieldError{{Field: "entities." + p.entityKey, Problem: "too many entities"}}}
	}
	return p, nil
}

// parseIDs sets the canonical entity ids and returns the problems of those
// that are not valid.
func (p *onlinePlan) parseIDs() []feature.FieldError {
	var fields []feature.FieldError
	p.ids = make([]string, len(p.entityVals))
	for i, v := range p.entityVals {
		id, problem := entityID(p.entityKey, v)
		if problem != "" {
			fields = append(fields, feature.FieldError{Field: fmt.Sprintf("entities.%s[%d]", p.entityKey, i), Problem: problem})
		}
		p.ids[i] = id
	}
	return fields
}

// resolveRefs resolves group:feature references, adding each group once in
// order of first use. notFound reports a reference to a group or feature
// that does not exist. field names the list of refs in errors.
func (p *onlinePlan) resolveRefs(reg map[string]feature.Group, refs []string, field string) (fields []feature.FieldError, notFound bool) {
	p.refs = make([]featureRef, 0, len(refs))
	for i, ref := range refs {
		g, spec, problem, missing := p.resolveRef(reg, ref)
		if problem != "" {
			fields = append(fields, feature.FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Problem: problem})
			notFound = notFound || missing
			continue
		}
		gi := slices.IndexFunc(p.groups, func(pg feature.Group) bool { return pg.Name == g.Name }) // few groups: a scan beats a map
		if gi < 0 {
			gi = len(p.groups)
			p.groups = append(p.groups, g)
		}
		p.refs = append(p.refs, featureRef{group: g.Name, spec: spec, gi: gi})
	}
	return fields, notFound
}

// resolveRef resolves one reference, or says what is wrong with it and
// whether that is a group or feature that does not exist.
func (p *onlinePlan) resolveRef(reg map[string]feature.Group, ref string) (g feature.Group, spec feature.Spec, problem string, missing bool) {
	gname, fname, ok := strings.Cut(ref, ":")
	if !ok || gname == "" || fname == "" {
		return g, spec, "must be a reference of the form group:feature", false
	}
	g, ok = reg[gname]
	if !ok {
		return g, spec, "no such feature group " + quote(gname), true
	}
	spec, ok = g.Feature(fname)
	if !ok {
		return g, spec, "group " + gname + " has no feature " + quote(fname), true
	}
	if g.EntityKey != p.entityKey {
		return g, spec, "group " + gname + " is keyed by " + quote(g.EntityKey) + ", not " + quote(p.entityKey), false
	}
	return g, spec, "", false
}

// keys lists the (group, entity) pairs to fetch: every entity of the first
// group, then of the second, and so on.
func (p *onlinePlan) keys() []feature.Key {
	keys := make([]feature.Key, 0, len(p.groups)*len(p.ids))
	for _, g := range p.groups {
		for _, id := range p.ids {
			keys = append(keys, feature.Key{Group: g.Name, EntityID: id})
		}
	}
	return keys
}

// assembleOnline builds the response from the rows fetched for p.keys():
// the entity column, then one column per requested feature. It reports the
// statuses of the values returned, per group.
func (s *Service) assembleOnline(p onlinePlan, rows []*feature.Row, req OnlineRequest) OnlineResponse {
	now := s.now()
	fullNames := req.FullFeatureNames
	var resp OnlineResponse
	if req.IncludeFeatureViewVersionMetadata {
		for _, g := range p.groups {
			resp.Metadata.FeatureViewMetadata = append(resp.Metadata.FeatureViewMetadata, FeatureViewMetadata{Name: g.Name, Version: g.SchemaVersion})
		}
	}
	resp.Metadata.FeatureNames = make([]string, 0, len(p.refs)+1)
	resp.Metadata.FeatureNames = append(resp.Metadata.FeatureNames, p.entityKey)
	resp.Results = make([]OnlineColumn, 0, len(p.refs)+1)
	tally := make([]statusCounts, len(p.groups))
	n := len(p.ids)
	// One allocation of each kind for all the columns: a column is a
	// three-index slice of it. The columns of one group share their
	// timestamps (their rows' event times) and, unless one of their values
	// is null, their statuses, so there is one of each per group, plus the
	// entity column's.
	g := len(p.groups)
	cols := columnStore{values: make([]any, len(p.refs)*n), times: make([]time.Time, (g+1)*n),
		statuses: make([]string, (g+1)*n), n: n}
	cols.groupColumns(p.groups, rows[:g*n], now)
	resp.Results = append(resp.Results, cols.entityColumn(p.entityVals))
	for _, ref := range p.refs {
		name := ref.spec.Name
		if fullNames {
			name = ref.group + "__" + ref.spec.Name
		}
		resp.Metadata.FeatureNames = append(resp.Metadata.FeatureNames, name)
		resp.Results = append(resp.Results, cols.featureColumn(ref, rows[ref.gi*n:(ref.gi+1)*n], &tally[ref.gi]))
	}
	for gi, g := range p.groups {
		tally[gi].report(s.obs, g.Name)
	}
	return resp
}

// columnStore holds the columns of one response, n entities each, in
// shared backing arrays: the values of each feature column; the timestamps
// and statuses of each group (times and statuses hold a group's n after
// another, then the entity column's).
type columnStore struct {
	values   []any
	times    []time.Time
	statuses []string
	n        int
}

// groupColumns sets the timestamps and statuses of each group's columns
// from its rows (n per group, nil where an entity has none): the event
// time (the epoch where there is no row) and the status of a value that
// is not null.
func (c *columnStore) groupColumns(groups []feature.Group, rows []*feature.Row, now time.Time) {
	for i, row := range rows {
		if row == nil {
			c.times[i], c.statuses[i] = epoch, feature.StatusNotFound
			continue
		}
		g := &groups[i/c.n]
		c.times[i] = row.EventTime
		c.statuses[i] = valueStatus(true, g.TTL > 0 && now.Sub(row.EventTime) > time.Duration(g.TTL))
	}
}

// group returns the timestamps and statuses of group gi's columns (gi
// len(groups): the entity column's).
func (c *columnStore) group(gi int) ([]time.Time, []string) {
	lo, hi := gi*c.n, (gi+1)*c.n
	return c.times[lo:hi:hi], c.statuses[lo:hi:hi]
}

// entityColumn echoes the requested entities, each PRESENT at the epoch.
func (c *columnStore) entityColumn(vals []any) OnlineColumn {
	times, statuses := c.group(len(c.times)/c.n - 1)
	col := OnlineColumn{Values: vals, Statuses: statuses[:len(vals)], EventTimestamps: times[:len(vals)]}
	for i := range vals {
		col.Statuses[i] = feature.StatusPresent
		col.EventTimestamps[i] = epoch
	}
	return col
}

// featureColumn is one feature's column over the group's rows (one per
// entity, nil where the entity has none), counting its statuses in sc. It
// shares its group's timestamps, and statuses unless a value is null.
func (c *columnStore) featureColumn(ref featureRef, rows []*feature.Row, sc *statusCounts) OnlineColumn {
	n := c.n
	col := OnlineColumn{Values: c.values[:n:n]}
	c.values = c.values[n:]
	col.EventTimestamps, col.Statuses = c.group(ref.gi)
	for i, row := range rows {
		if row != nil {
			v := ofType(ref.spec.Type, row.Values[ref.spec.Name])
			col.Values[i] = v
			if v == nil {
				if &col.Statuses[0] == &c.statuses[ref.gi*n] { // still the group's
					col.Statuses = slices.Clone(col.Statuses) // the column's own
				}
				col.Statuses[i] = feature.StatusNullValue
			}
		}
		sc.count(col.Statuses[i])
	}
	return col
}

// valueStatus is the Feast status of a value (nil: null; true: any other
// value) of a row that exists.
func valueStatus(v any, outsideMaxAge bool) string {
	switch {
	case v == nil:
		return feature.StatusNullValue
	case outsideMaxAge:
		return feature.StatusOutsideMaxAge
	}
	return feature.StatusPresent
}

// statusCounts counts the values a read returned by Feast status.
type statusCounts struct{ present, notFound, null, outsideMaxAge int }

func (c *statusCounts) count(status string) {
	switch status {
	case feature.StatusPresent:
		c.present++
	case feature.StatusNotFound:
		c.notFound++
	case feature.StatusNullValue:
		c.null++
	case feature.StatusOutsideMaxAge:
		c.outsideMaxAge++
	}
}

func (c *statusCounts) report(obs Observer, group string) {
	obs.FeatureStatuses(group, c.present, c.notFound, c.null, c.outsideMaxAge)
}
