package rowjson

import (
	"encoding/json"
	"fmt"

	"github.com/featurestore/featurestore/internal/feature"
)

// EncodeGroup returns the JSON of a group's features and tags columns; no
// tags are stored as {}.
func EncodeGroup(g feature.Group) (features, tags string, err error) {
	f, err := json.Marshal(g.Features)
	if err != nil {
		return "", "", fmt.Errorf("encode features: %w", err)
	}
	if len(g.Tags) == 0 {
		return string(f), "{}", nil
	}
	t, err := json.Marshal(g.Tags)
	if err != nil {
		return "", "", fmt.Errorf("encode tags: %w", err)
	}
	return string(f), string(t), nil
}

// DecodeGroup sets g.Features and g.Tags from the JSON of the features and
// tags columns; stored {} tags become nil. g.Name names the group in errors.
func DecodeGroup(g *feature.Group, features, tags []byte) error {
	if err := json.Unmarshal(features, &g.Features); err != nil {
		return fmt.Errorf("decode features of group %s: %w", g.Name, err)
	}
	if err := json.Unmarshal(tags, &g.Tags); err != nil {
		return fmt.Errorf("decode tags of group %s: %w", g.Name, err)
	}
	if len(g.Tags) == 0 {
		g.Tags = nil
	}
	return nil
}
