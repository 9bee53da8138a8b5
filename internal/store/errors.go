package store

import (
	"slices"
	"strconv"

	"github.com/featurestore/featurestore/internal/feature"
)

// GroupNotFound is the feature.NotFound error a backend returns for
// unregistered groups: one field error per distinct name, in byte order.
func GroupNotFound(names ...string) error {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	fields := make([]feature.FieldError, len(names))
	for i, n := range names {
		fields[i] = feature.FieldError{Field: "group", Problem: "unknown feature group " + strconv.Quote(n)}
	}
	return feature.NotFound("feature group not found", fields...)
}
