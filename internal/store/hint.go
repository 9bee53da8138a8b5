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
	return context.WithValue(ctx, readHintKey{}, readHint{features: features})
}

// WithReadHint returns ctx carrying the hint of WithFeatureHint (none when
// features is empty) and, with shared, telling GetLatest that the caller
// never modifies the rows it returns (it only reads them, or copies them
// first): a backend may then hand out rows and Values maps it shares with
// other readers, such as the memory cache's own, instead of copies.
func WithReadHint(ctx context.Context, features []string, shared bool) context.Context {
	if len(features) == 0 && !shared {
		return ctx
	}
	return context.WithValue(ctx, readHintKey{}, readHint{features: features, shared: shared})
}

// FeatureHint returns the features of ctx's hint, nil if it has none.
func FeatureHint(ctx context.Context) []string {
	h, _ := ctx.Value(readHintKey{}).(readHint)
	return h.features
}

// ReadHint returns the features of ctx's hint (nil if it has none) and
// whether the caller accepts shared Values maps (see WithReadHint).
func ReadHint(ctx context.Context) (features []string, shared bool) {
	h, _ := ctx.Value(readHintKey{}).(readHint)
	return h.features, h.shared
}
