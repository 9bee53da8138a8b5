package store

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/feature"
)

func TestGroupNotFound(t *testing.T) {
	t.Parallel()
	names := []string{"b", "a", "b", "ä"}
	var e *feature.Error
	if err := GroupNotFound(names...); !errors.As(err, &e) || e.Code != feature.CodeNotFound {
		t.Fatalf("GroupNotFound = %v, want a NotFound error", err)
	}
	want := []feature.FieldError{
		{Field: "group", Problem: `unknown feature group "a"`},
		{Field: "group", Problem: `unknown feature group "b"`},
		{Field: "group", Problem: `unknown feature group "ä"`},
	}
	if diff := cmp.Diff(want, e.Fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b", "a", "b", "ä"}, names); diff != "" {
		t.Errorf("GroupNotFound changed its argument (-want +got):\n%s", diff)
	}
}
