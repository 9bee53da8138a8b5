// Package tmdb turns TMDB movie records into the store's six built-in
// movie_* feature groups: it recognises the accepted payload shapes, validates
// each record, and computes the features. It is pure: no I/O and no clock of
// its own (the caller passes the event time).
package tmdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/strictjson"
)

// Limits of one record, so that a hostile payload cannot make the features or
// the stored rows arbitrarily large (lengths in Unicode code points).
const (
	maxTitleLength    = 1000 // title and original_title
	maxOverviewLength = 20000
	maxLanguageLength = 16
	maxGenres         = 100
	maxPopularity     = 1e9 // keeps every derived float finite
)

// Decode recognises the shape of a request body and returns its raw records:
// a single movie object (one record), an array of movies, a TMDB list page
// {"page":..,"results":[...]} (records keyed "id"), or the crawler file
// {"collection_info":..,"movies":[...]} (records keyed "movie_id").
// Malformed JSON or an unrecognised shape is a feature.Invalid error on field
// "body". Array elements are not checked here: ParseMovie rejects an element
// that is not an object, so the caller can report its index.
func Decode(body []byte) ([]json.RawMessage, error) {
	body = bytes.Trim(body, " \t\r\n")
	if len(body) == 0 {
		return nil, invalidBody("must not be empty")
	}
	// What encoding/json would accept silently: invalid UTF-8, NUL,
	// duplicate keys, nesting past strictjson.MaxDepth.
	if err := strictjson.Check(body, nil); err != nil {
		var se *strictjson.Error
		if errors.As(err, &se) && se.Syntax {
			return nil, invalidBody("malformed JSON: " + err.Error())
		}
		return nil, invalidBody(err.Error())
	}
	// body is valid JSON now: its records are found by arrayElements and
	// objectMembers rather than by json.Unmarshal's second pass.
	switch body[0] {
	case '[':
		return elements(body), nil
	case '{':
		top, ok := objectMembers(body)
		if !ok {
			return nil, invalidBody("malformed JSON")
		}
		results, isPage := top["results"]
		movies, isFile := top["movies"]
		switch {
		case isPage && isFile:
			return nil, invalidBody(`ambiguous shape: has both "results" and "movies"`)
		case isPage:
			return records(results, "results")
		case isFile:
			return records(movies, "movies")
		}
		return []json.RawMessage{bytes.Clone(body)}, nil
	}
	if !json.Valid(body) {
		return nil, invalidBody("malformed JSON")
	}
	return nil, invalidBody("must be a movie object, an array of movies, a TMDB list page or a crawler file")
}

// records decodes the array under key of a list page or crawler file.
func records(raw json.RawMessage, key string) ([]json.RawMessage, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, invalidBody(fmt.Sprintf("%q must be an array of movies", key))
	}
	return elements(raw), nil
}

// elements returns a copy of each element of the valid JSON array v.
func elements(v []byte) []json.RawMessage {
	recs := []json.RawMessage{}
	arrayElements(v, func(el []byte) bool {
		recs = append(recs, bytes.Clone(el))
		return true
	})
	return recs
}

func invalidBody(problem string) error {
	return feature.Invalid("unrecognised TMDB payload", feature.FieldError{Field: "body", Problem: problem})
}

// Movie is one validated TMDB movie record.
type Movie struct {
	ID            int64
	Title         string
	OriginalTitle string
	Overview      string
	// ReleaseDate is the release_date as given, "" when absent or empty.
	ReleaseDate string
	// Release is ReleaseDate parsed (00:00 UTC); zero when ReleaseDate is "".
	Release          time.Time
	Popularity       float64
	VoteAverage      float64
	VoteCount        int64
	GenreIDs         []int64
	Adult            bool
	OriginalLanguage string
}

// ParseMovie validates one raw record and returns the movie, or the fields at
// fault (JSON field names; "record" when raw is not a JSON object). The id is
// "id" or "movie_id"; when both are present they must agree. A field that is
// absent or null takes its default: "" for strings, 0 for numbers, false for
// adult, no genres, original_language "en"; release_date may be empty (the
// temporal features are then null). Unknown fields are ignored.
func ParseMovie(raw json.RawMessage) (Movie, []feature.FieldError) {
	raw = bytes.Trim(raw, " \t\r\n")
	obj, ok := objectMembers(raw)
	if !ok {
		return Movie{}, []feature.FieldError{{Field: "record", Problem: "must be a JSON object"}}
	}
	p := parser{obj: obj}
	m := Movie{OriginalLanguage: "en"}

	m.ID = p.movieID()
	p.texts(&m)
	p.votes(&m)
	m.GenreIDs = p.genres("genre_ids")
	if v, ok := p.obj["adult"]; ok && !isNull(v) {
		switch string(v) {
		case "true":
			m.Adult = true
		case "false":
		default:
			p.fail("adult", "must be a boolean")
		}
	}
	if s, ok := p.str("original_language", maxLanguageLength); ok {
		m.OriginalLanguage = s
	}

	if len(p.errs) > 0 {
		return Movie{}, p.errs
	}
	return m, nil
}

// parser reads typed fields of one record and collects the problems.
type parser struct {
	obj  map[string]json.RawMessage
	errs []feature.FieldError
}

// movieID reads the id from "id" or "movie_id"; when both are present they
// must agree.
func (p *parser) movieID() int64 {
	id, idOK := p.id("id")
	mid, midOK := p.id("movie_id")
	switch {
	case idOK && midOK && id != mid:
		p.fail("movie_id", fmt.Sprintf("must equal id (%d) when both are present", id))
	case idOK:
		return id
	case midOK:
		return mid
	case !p.has("id") && !p.has("movie_id"):
		p.fail("id", "is required (as id or movie_id)")
	}
	return 0
}

// texts reads the title (required, not blank), original title, overview
// and release date.
func (p *parser) texts(m *Movie) {
	if !p.has("title") {
		p.fail("title", "is required")
	} else if s, ok := p.str("title", maxTitleLength); ok {
		if strings.TrimSpace(s) == "" {
			p.fail("title", "must not be empty")
		}
		m.Title = s
	}
	m.OriginalTitle, _ = p.str("original_title", maxTitleLength)
	m.Overview, _ = p.str("overview", maxOverviewLength)

	// Any string up to the title cap gets the date problem, not a length one.
	if s, ok := p.str("release_date", maxTitleLength); ok && s != "" {
		t, err := time.Parse(time.DateOnly, s)
		switch {
		case err != nil || len(s) != len(time.DateOnly):
			p.fail("release_date", "must be a date YYYY-MM-DD or empty")
		case !feature.ValidYear(t):
			p.fail("release_date", fmt.Sprintf("must be a date in the years %d to %d", feature.MinYear, feature.MaxYear))
		default:
			m.ReleaseDate, m.Release = s, t
		}
	}
}

// votes reads popularity, vote average and vote count with their ranges.
func (p *parser) votes(m *Movie) {
	if x, ok := p.num("popularity"); ok {
		switch {
		case x < 0:
			p.fail("popularity", "must be >= 0")
		case x > maxPopularity:
			p.fail("popularity", "must be at most 1e9")
		}
		m.Popularity = x
	}
	if x, ok := p.num("vote_average"); ok {
		if x < 0 || x > 10 {
			p.fail("vote_average", "must be between 0 and 10")
		}
		m.VoteAverage = x
	}
	if n, ok := p.integer("vote_count"); ok {
		if n < 0 {
			p.fail("vote_count", "must be >= 0")
		}
		m.VoteCount = n
	}
}

func (p *parser) fail(field, problem string) {
	p.errs = append(p.errs, feature.FieldError{Field: field, Problem: problem})
}

func isNull(v json.RawMessage) bool { return string(v) == "null" }

// has reports whether the field is present and not null.
func (p *parser) has(field string) bool {
	v, ok := p.obj[field]
	return ok && !isNull(v)
}

// str returns a present string field of at most maxLen code points; ok is
// false when the field is absent, null or invalid (invalid is recorded).
func (p *parser) str(field string, maxLen int) (string, bool) {
	v, ok := p.obj[field]
	if !ok || isNull(v) {
		return "", false
	}
	s, ok := unquote(v)
	if !ok {
		p.fail(field, "must be a string")
		return "", false
	}
	if len(s) > maxLen && utf8.RuneCountInString(s) > maxLen {
		p.fail(field, fmt.Sprintf("must be at most %d characters", maxLen))
		return "", false
	}
	return s, true
}

// num returns a present finite number field.
func (p *parser) num(field string) (float64, bool) {
	v, ok := p.obj[field]
	if !ok || isNull(v) {
		return 0, false
	}
	x, problem := parseNumber(v)
	if problem != "" {
		p.fail(field, problem)
		return 0, false
	}
	return x, true
}

// integer returns a present integer field.
func (p *parser) integer(field string) (int64, bool) {
	v, ok := p.obj[field]
	if !ok || isNull(v) {
		return 0, false
	}
	n, problem := parseInt(v)
	if problem != "" {
		p.fail(field, problem)
		return 0, false
	}
	return n, true
}

// id returns a present id field (an integer >= 1).
func (p *parser) id(field string) (int64, bool) {
	n, ok := p.integer(field)
	if ok && n < 1 {
		p.fail(field, "must be >= 1")
		return 0, false
	}
	return n, ok
}

// genres reads a list of at most maxGenres integers without materialising a
// longer list first.
func (p *parser) genres(field string) []int64 {
	v, ok := p.obj[field]
	if !ok || isNull(v) {
		return nil
	}
	if v[0] != '[' {
		p.fail(field, "must be a list of integers")
		return nil
	}
	var ids []int64
	i := 0
	arrayElements(v, func(el []byte) bool {
		if i == maxGenres {
			p.fail(field, fmt.Sprintf("must have at most %d entries", maxGenres))
			ids = nil
			return false
		}
		if n, problem := parseInt(el); problem != "" {
			p.fail(fmt.Sprintf("%s[%d]", field, i), problem)
		} else {
			ids = append(ids, n)
		}
		i++
		return true
	})
	return ids
}

// parseNumber parses a JSON number token to a finite float64.
func parseNumber(v json.RawMessage) (float64, string) {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return 0, "must be a number"
	}
	x, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		return 0, "must be a finite number"
	}
	if x == 0 {
		x = 0 // no negative zero
	}
	return x, ""
}

// parseInt parses a JSON number token that is a whole number (1e3 and 460.0
// are accepted, as re-serialised data often has them; 1e-400 is not, though
// a float64 reading makes it 0).
func parseInt(v json.RawMessage) (int64, string) {
	n, ok := feature.ExactInt(string(v))
	if !ok {
		return 0, "must be an integer"
	}
	return n, ""
}
