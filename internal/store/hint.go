package store

import "context"

type featureHintKey struct{}

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
	return context.WithValue(ctx, featureHintKey{}, features)
}

// FeatureHint returns the features of ctx's hint, nil if it has none.
func FeatureHint(ctx context.Context) []string {
	f, _ := ctx.Value(featureHintKey{}).([]string)
	return f
}
