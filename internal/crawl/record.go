package crawl

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// Record is one movie in the crawler file's shape (the shape of
// ../shared/data/tmdb/bulk_collection_*.json), keys in that file's order.
// Its values are those tmdb.ParseMovie validated, so ingesting a Record
// yields the same features as ingesting the TMDB record it came from.
type Record struct {
	MovieID          int64   `json:"movie_id"`
	Title            string  `json:"title"`
	OriginalTitle    string  `json:"original_title"`
	Overview         string  `json:"overview"`
	ReleaseDate      string  `json:"release_date"`
	Popularity       float64 `json:"popularity"`
	VoteAverage      float64 `json:"vote_average"`
	VoteCount        int64   `json:"vote_count"`
	GenreIDs         []int64 `json:"genre_ids"`
	Adult            bool    `json:"adult"`
	OriginalLanguage string  `json:"original_language"`
	PosterPath       *string `json:"poster_path"`
	BackdropPath     *string `json:"backdrop_path"`
	Video            bool    `json:"video"`
	// CollectedAt is when the record was fetched: UTC, microseconds, no zone
	// (as the original crawler wrote it).
	CollectedAt string `json:"collected_at"`
	// Source is always "tmdb_api".
	Source string `json:"source"`
}

// collectedAtLayout is the crawler file's collected_at format.
const collectedAtLayout = "2006-01-02T15:04:05.000000"

// timestampLayout is the crawler file's collection_info.timestamp format.
const timestampLayout = "20060102_150405"

// File is the crawler file: {"collection_info": {...}, "movies": [...]}.
type File struct {
	CollectionInfo CollectionInfo `json:"collection_info"`
	Movies         []Record       `json:"movies"`
}

// CollectionInfo is the crawler file's metadata.
type CollectionInfo struct {
	// Timestamp is the crawl's start, UTC, as YYYYMMDD_HHMMSS.
	Timestamp   string `json:"timestamp"`
	TotalMovies int    `json:"total_movies"`
	// CollectionDuration is the crawl's duration in seconds.
	CollectionDuration float64 `json:"collection_duration"`
}

// toRecord validates a raw TMDB record by the ingest rules (tmdb.ParseMovie)
// and converts it; an invalid record returns the fields at fault.
func toRecord(raw json.RawMessage, collected time.Time) (Record, []feature.FieldError) {
	m, problems := tmdb.ParseMovie(raw)
	if len(problems) > 0 {
		return Record{}, problems
	}
	genres := m.GenreIDs
	if genres == nil {
		genres = []int64{}
	}
	r := Record{
		MovieID: m.ID, Title: m.Title, OriginalTitle: m.OriginalTitle, Overview: m.Overview,
		ReleaseDate: m.ReleaseDate, Popularity: m.Popularity, VoteAverage: m.VoteAverage, VoteCount: m.VoteCount,
		GenreIDs: genres, Adult: m.Adult, OriginalLanguage: m.OriginalLanguage,
		CollectedAt: collected.UTC().Format(collectedAtLayout), Source: "tmdb_api",
	}
	// The presentation fields are not validated by ingest: a value of the
	// wrong type is dropped, never a reason to reject the movie.
	var obj map[string]json.RawMessage
	_ = json.Unmarshal(raw, &obj)
	r.PosterPath = optionalString(obj["poster_path"])
	r.BackdropPath = optionalString(obj["backdrop_path"])
	_ = json.Unmarshal(obj["video"], &r.Video)
	return r, nil
}

func optionalString(v json.RawMessage) *string {
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return nil
	}
	return &s
}

// recordID is the id of a raw record, for reports; 0 when it has none.
func recordID(raw json.RawMessage) int64 {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return 0
	}
	for _, k := range []string{"id", "movie_id"} {
		var id int64
		if json.Unmarshal(obj[k], &id) == nil && id > 0 {
			return id
		}
	}
	return 0
}

// marshal encodes v as compact JSON without HTML escaping ("&" stays "&",
// as in TMDB's answers).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// marshalFile encodes the crawler file indented by two spaces, like the
// original crawler's files.
func marshalFile(f File) ([]byte, error) {
	if f.Movies == nil {
		f.Movies = []Record{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
