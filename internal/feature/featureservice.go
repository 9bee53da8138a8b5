package feature

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FeatureService is a named, versioned set of feature references (Feast's
// feature service): what one model reads, usable wherever a list of
// features is accepted.
type FeatureService struct {
	Name string `json:"name"`
	// Features are references group:feature, in the order reads return
	// them.
	Features      []string          `json:"features"`
	Description   string            `json:"description,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
	SchemaVersion int               `json:"schema_version"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// MaxServiceFeatures bounds the number of references of a feature service.
const MaxServiceFeatures = 1000

// Groups returns the distinct group names the service references, in order
// of first reference. References that do not parse are skipped.
func (fs FeatureService) Groups() []string {
	var out []string
	seen := map[string]bool{}
	for _, ref := range fs.Features {
		g, _, ok := ParseRef(ref)
		if ok && !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out
}

// Uses reports whether the service references feature f of group g.
func (fs FeatureService) Uses(g, f string) bool {
	for _, ref := range fs.Features {
		if rg, rf, ok := ParseRef(ref); ok && rg == g && rf == f {
			return true
		}
	}
	return false
}

// ParseRef splits a feature reference group:feature. ok is false unless both
// parts are non-empty.
func ParseRef(ref string) (group, feature string, ok bool) {
	group, feature, ok = strings.Cut(ref, ":")
	return group, feature, ok && group != "" && feature != ""
}

// Validate checks a feature service as a client sent it: a valid name, one
// to MaxServiceFeatures references of the form group:feature with valid
// names, none twice. Whether the features exist is the registry's business.
func (fs FeatureService) Validate() error {
	var fields []FieldError
	if !ValidName(fs.Name) {
		fields = append(fields, FieldError{Field: "name", Problem: "must match ^[a-z][a-z0-9_]{0,62}$"})
	}
	switch {
	case len(fs.Features) == 0:
		fields = append(fields, FieldError{Field: "features", Problem: "at least one feature reference group:feature is required"})
	case len(fs.Features) > MaxServiceFeatures:
		fields = append(fields, FieldError{Field: "features", Problem: fmt.Sprintf("at most %d feature references", MaxServiceFeatures)})
	}
	seen := map[string]int{}
	for i, ref := range fs.Features {
		p := fmt.Sprintf("features[%d]", i)
		g, f, ok := ParseRef(ref)
		switch {
		case !ok:
			fields = append(fields, FieldError{Field: p, Problem: "must be a reference of the form group:feature"})
		case !ValidName(g) || !ValidName(f):
			fields = append(fields, FieldError{Field: p, Problem: "group and feature names must match ^[a-z][a-z0-9_]{0,62}$"})
		default:
			if j, dup := seen[ref]; dup {
				fields = append(fields, FieldError{Field: p, Problem: "duplicate of features[" + strconv.Itoa(j) + "]"})
			}
			seen[ref] = i
		}
	}
	if len(fs.Tags) > 64 {
		fields = append(fields, FieldError{Field: "tags", Problem: "at most 64 tags"})
	}
	if len(fields) > 0 {
		return Invalid("invalid feature service", fields...)
	}
	return nil
}
