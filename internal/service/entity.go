package service

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// EntityKeyType is the type of an entity key's ids: int64 for movie_id, the
// key of the six built-in TMDB groups (TMDB ids are integers), and "" for
// every other key. Ids of an untyped key are strings; an integer sent for
// one names the entity of its decimal string (42 and "42" are one entity),
// since the store keys every row by a string.
//
// An id of the wrong JSON type for an int64 key (the string "550" for
// movie_id) is refused, as Feast refuses a str for an INT64 join key, rather
// than read as the integer: a client that sends strings for an integer key
// has a bug that a coerced answer would hide.
func EntityKeyType(key string) feature.ValueType {
	if key == tmdb.EntityKey {
		return feature.Int64
	}
	return ""
}

// entityID converts one entity id sent as JSON for the entity key key to its
// canonical string form, or says what is wrong with it.
func entityID(key string, v any) (string, string) {
	if EntityKeyType(key) != feature.Int64 {
		if id, ok := EntityID(v); ok {
			return id, ""
		}
		return "", "must be a non-empty string or an integer"
	}
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			if canonicalInt(string(x)) {
				return string(x), "" // already the canonical form: no copy
			}
			return strconv.FormatInt(n, 10), ""
		}
		return "", fmt.Sprintf("must be an integer without fraction or exponent: %s is an int64 entity key (got %s)", key, x)
	case int64:
		return strconv.FormatInt(x, 10), ""
	case int:
		return strconv.Itoa(x), ""
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), ""
		}
	case string:
		return "", fmt.Sprintf("must be a JSON integer: %s is an int64 entity key (got the string %q)", key, truncate(x, 40))
	}
	return "", "must be a JSON integer: " + key + " is an int64 entity key"
}

// canonicalInt reports whether s, which strconv.ParseInt accepted, is
// written as strconv.FormatInt writes its value: no sign but a minus, no
// leading zero, not -0.
func canonicalInt(s string) bool {
	if s != "" && s[0] == '-' {
		s = s[1:]
		if s == "0" {
			return false
		}
	}
	return s != "" && (s[0] != '0' || len(s) == 1) && s[0] != '+'
}

// pathEntityID checks an entity id taken from a URL path, where every id is
// a string: for an int64 key it must be an integer in canonical form (550,
// not 0550 or +550), since no other form names a stored entity.
func pathEntityID(key, id string) string {
	if !feature.ValidEntityID(id) {
		return "must be 1 to 256 printable characters"
	}
	if EntityKeyType(key) == feature.Int64 {
		if _, err := strconv.ParseInt(id, 10, 64); err != nil || !canonicalInt(id) {
			return "must be an integer: " + key + " is an int64 entity key"
		}
	}
	return ""
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
