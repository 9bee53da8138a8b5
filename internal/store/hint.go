package store

import "context"

type readHintKey struct{}

// readHint is what a reader tells GetLatest about the rows it asks for.
type readHint struct {
	features []string
	shared   bool
}

// WithFeatureHint returns ctx carrying a hint for GetLatest: the caller
// reads only these features of the rows it asks for. A backend may then
// leave the other features out of the rows it returns (a cache decodes
// only these), or ignore the hint: a row with more features is as correct.
// The features of different groups may share the list. nil or empty: no
// hint.
func WithFeatureHint(ctx context.Context, features []string) context.Context {
	if len(features) == 0 {
		return ctx
	}
	h, _ := ctx.Value(readHintKey{}).(readHint)
	h.features = features
	return context.WithValue(ctx, readHintKey{}, h)
}

// WithSharedRows returns ctx telling GetLatest that the caller never
// modifies the rows' Values maps it returns (it only reads them, or copies
// them first): a backend may then hand out a map it shares with other
// readers, such as the memory cache's own, instead of a copy. Any feature
// hint of ctx is kept.
func WithSharedRows(ctx context.Context) context.Context {
	h, _ := ctx.Value(readHintKey{}).(readHint)
	h.shared = true
	return context.WithValue(ctx, readHintKey{}, h)
}

// FeatureHint returns the features of ctx's hint, nil if it has none.
func FeatureHint(ctx context.Context) []string {
	h, _ := ctx.Value(readHintKey{}).(readHint)
	return h.features
}

// ReadHint returns the features of ctx's hint (nil if it has none) and
// whether the caller accepts shared Values maps (see WithSharedRows).
func ReadHint(ctx context.Context) (features []string, shared bool) {
	h, _ := ctx.Value(readHintKey{}).(readHint)
	return h.features, h.shared
}
