// Package tmdbtest is a test double of the TMDB API v3, for tests only: there
// is no network in the test environment, and the real API must never be
// called from a test. It serves real recorded TMDB records (testdata/, see
// its SOURCE.md) in the real response shapes: list pages
// {page, results, total_pages, total_results} of /3/movie/popular,
// /3/movie/top_rated, /3/movie/now_playing and /3/discover/movie (filtered by
// primary_release_date.gte/lte), and /3/movie/{id} details. It checks the
// credentials like TMDB (401 with TMDB's error body), answers pages past
// total_pages with no results and pages past 500 with TMDB's 400, and can be
// told to answer a given request with a fault first: 429 with Retry-After,
// a 5xx, or a truncated body. It records every request.
package tmdbtest

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed testdata/movies.json
var moviesJSON []byte

// Movies returns the recorded real TMDB records (raw list shape, keyed "id"),
// a fresh copy on every call.
func Movies() []json.RawMessage {
	var out []json.RawMessage
	if err := json.Unmarshal(moviesJSON, &out); err != nil {
		panic("tmdbtest: testdata/movies.json: " + err.Error())
	}
	return out
}

// List paths the double serves (under /3).
const (
	PathPopular    = "/3/movie/popular"
	PathTopRated   = "/3/movie/top_rated"
	PathNowPlaying = "/3/movie/now_playing"
	PathDiscover   = "/3/discover/movie"
)

// PerPage is TMDB's page size.
const PerPage = 20

// maxPage is the last page TMDB serves.
const maxPage = 500

// Fault is a wrong answer the double gives instead of the real one.
type Fault struct {
	// Status is the response status (429, 500, 503, ...); 200 with Truncate.
	Status int
	// RetryAfter is the Retry-After header, if not empty.
	RetryAfter string
	// Truncate answers 200 with the first half of the real body.
	Truncate bool
	// Hang answers nothing until the client goes away: a request in flight
	// when the crawl is interrupted.
	Hang bool
}

// TooManyRequests is TMDB's rate-limit answer with the given Retry-After
// (seconds or an HTTP date; empty for none).
func TooManyRequests(retryAfter string) Fault {
	return Fault{Status: http.StatusTooManyRequests, RetryAfter: retryAfter}
}

// ServerError is a 5xx answer.
func ServerError(status int) Fault { return Fault{Status: status} }

// Truncated is a 200 answer whose JSON body is cut in half.
func Truncated() Fault { return Fault{Status: http.StatusOK, Truncate: true} }

// Hang is no answer at all until the client gives up.
func Hang() Fault { return Fault{Hang: true} }

// Request is one request the double received.
type Request struct {
	Path  string
	Page  int // 0 for a details request
	Query url.Values
	// Auth is "api_key", "bearer" or "" (how the request authenticated).
	Auth string
	Time time.Time
	// Status is the status the double answered.
	Status int
}

// Server is the TMDB double, an http.Handler; serve it with httptest.
type Server struct {
	apiKey, bearer string

	mu       sync.Mutex
	lists    map[string][]json.RawMessage
	details  map[int64]json.RawMessage
	faults   map[string][]Fault
	requests []Request
	onReq    func(Request)
}

// Options configure a Server.
type Options struct {
	// APIKey and BearerToken are the credentials accepted (at least one).
	APIKey, BearerToken string
}

// New returns a double serving the recorded movies: popular has all 60 (3
// pages), top_rated the last 40 (overlapping popular's pages 2 and 3),
// now_playing 20 from the middle, discover all 60 filtered by release date;
// details exist for every recorded movie.
func New(opts Options) *Server {
	movies := Movies()
	s := &Server{
		apiKey: opts.APIKey, bearer: opts.BearerToken,
		lists: map[string][]json.RawMessage{
			PathPopular:    movies,
			PathTopRated:   slices.Clone(movies[20:]),
			PathNowPlaying: slices.Clone(movies[10:30]),
			PathDiscover:   slices.Clone(movies),
		},
		details: map[int64]json.RawMessage{},
		faults:  map[string][]Fault{},
	}
	for _, m := range movies {
		s.details[idOf(m)] = m
	}
	return s
}

// SetList replaces the records a list path serves (they may be malformed on
// purpose: the double serves them as given).
func (s *Server) SetList(path string, records []json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists[path] = records
}

// SetDetails replaces the record /3/movie/{id} is derived from; nil removes
// it (404).
func (s *Server) SetDetails(id int64, record json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if record == nil {
		delete(s.details, id)
		return
	}
	s.details[id] = record
}

// AddFaults makes the next requests of a list page (page >= 1) or of a
// details path (page 0, path /3/movie/{id}) answer with the faults, in order,
// before the real answer.
func (s *Server) AddFaults(path string, page int, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := faultKey(path, page)
	s.faults[k] = append(s.faults[k], faults...)
}

// OnRequest sets a hook called with each request before it is answered
// (e.g. to cancel a crawl in the middle).
func (s *Server) OnRequest(f func(Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onReq = f
}

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Count returns how many requests asked for a path's page (page 0: any).
func (s *Server) Count(path string, page int) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Path == path && (page == 0 || r.Page == page) {
			n++
		}
	}
	return n
}

func faultKey(path string, page int) string { return path + "#" + strconv.Itoa(page) }

// ServeHTTP answers like the TMDB API v3.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := Request{Path: r.URL.Path, Query: q, Auth: s.auth(r), Time: time.Now()}
	req.Page, _ = strconv.Atoi(q.Get("page"))
	status, body, retryAfter, hang := s.answer(r, req)
	req.Status = status
	s.mu.Lock()
	s.requests = append(s.requests, req)
	hook := s.onReq
	s.mu.Unlock()
	if hook != nil {
		hook(req)
	}
	if hang {
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// auth reports how the request authenticated: "" when it did not.
func (s *Server) auth(r *http.Request) string {
	if s.bearer != "" && r.Header.Get("Authorization") == "Bearer "+s.bearer {
		return "bearer"
	}
	if s.apiKey != "" && r.URL.Query().Get("api_key") == s.apiKey {
		return "api_key"
	}
	return ""
}

func (s *Server) answer(r *http.Request, req Request) (status int, body []byte, retryAfter string, hang bool) {
	if r.Method != http.MethodGet {
		status, body, _ = tmdbError(http.StatusMethodNotAllowed, 3, "Method not allowed.")
		return status, body, "", false
	}
	if req.Auth == "" {
		status, body, _ = tmdbError(http.StatusUnauthorized, 7, "Invalid API key: You must be granted a valid key.")
		return status, body, "", false
	}
	status, body = s.real(req)
	s.mu.Lock()
	k := faultKey(req.Path, req.Page)
	var fault *Fault
	if fs := s.faults[k]; len(fs) > 0 {
		fault, s.faults[k] = &fs[0], fs[1:]
	}
	s.mu.Unlock()
	switch {
	case fault == nil:
		return status, body, "", false
	case fault.Hang:
		return 0, nil, "", true
	case fault.Truncate:
		return http.StatusOK, body[:len(body)/2], "", false
	}
	_, b, _ := tmdbError(fault.Status, 25, "Your request count (41) is over the allowed limit of 40.")
	if fault.Status != http.StatusTooManyRequests {
		b = []byte("<html><body><h1>" + strconv.Itoa(fault.Status) + " " + http.StatusText(fault.Status) + "</h1></body></html>")
	}
	return fault.Status, b, fault.RetryAfter, false
}

// real is the answer without faults.
func (s *Server) real(req Request) (int, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if records, ok := s.lists[req.Path]; ok {
		if req.Path == PathDiscover {
			records = inReleaseRange(records, req.Query.Get("primary_release_date.gte"), req.Query.Get("primary_release_date.lte"))
		}
		return listPage(req.Path, records, req.Query.Get("page"))
	}
	if idText, ok := strings.CutPrefix(req.Path, "/3/movie/"); ok {
		id, err := strconv.ParseInt(idText, 10, 64)
		if rec, found := s.details[id]; err == nil && found {
			return http.StatusOK, detailsOf(rec)
		}
	}
	st, b, _ := tmdbError(http.StatusNotFound, 34, "The resource you requested could not be found.")
	return st, b
}

func listPage(path string, records []json.RawMessage, pageText string) (int, []byte) {
	page := 1
	if pageText != "" {
		n, err := strconv.Atoi(pageText)
		if err != nil || n < 1 || n > maxPage {
			st, b, _ := tmdbError(http.StatusBadRequest, 22, "Invalid page: Pages start at 1 and max at 500. They are expected to be an integer.")
			return st, b
		}
		page = n
	}
	total := (len(records) + PerPage - 1) / PerPage
	results := []json.RawMessage{}
	if lo := (page - 1) * PerPage; lo < len(records) {
		results = records[lo:min(lo+PerPage, len(records))]
	}
	// TMDB's key order: page, results, total_pages, total_results (with
	// "dates" first on now_playing).
	var b strings.Builder
	b.WriteString("{")
	if path == PathNowPlaying {
		b.WriteString(`"dates":{"maximum":"2025-06-11","minimum":"2025-04-30"},`)
	}
	fmt.Fprintf(&b, `"page":%d,"results":[`, page)
	for i, r := range results {
		if i > 0 {
			b.WriteString(",")
		}
		b.Write(r)
	}
	fmt.Fprintf(&b, `],"total_pages":%d,"total_results":%d}`, total, len(records))
	return http.StatusOK, []byte(b.String())
}

// inReleaseRange keeps the records whose release_date is within [gte, lte]
// (either bound may be empty); records without a parseable date are dropped,
// as TMDB's filter does.
func inReleaseRange(records []json.RawMessage, gte, lte string) []json.RawMessage {
	var out []json.RawMessage
	for _, r := range records {
		var m struct {
			ReleaseDate string `json:"release_date"`
		}
		if json.Unmarshal(r, &m) != nil || len(m.ReleaseDate) != len("2006-01-02") {
			continue
		}
		if (gte == "" || m.ReleaseDate >= gte) && (lte == "" || m.ReleaseDate <= lte) {
			out = append(out, r)
		}
	}
	return out
}

// genreNames are TMDB's movie genres (GET /3/genre/movie/list, en-US).
var genreNames = map[int64]string{
	28: "Action", 12: "Adventure", 16: "Animation", 35: "Comedy", 80: "Crime", 99: "Documentary",
	18: "Drama", 10751: "Family", 14: "Fantasy", 36: "History", 27: "Horror", 10402: "Music",
	9648: "Mystery", 10749: "Romance", 878: "Science Fiction", 10770: "TV Movie", 53: "Thriller",
	10752: "War", 37: "Western",
}

// detailsOf derives a /3/movie/{id} body from a list record: genres as
// objects instead of genre_ids, and the detail-only fields.
func detailsOf(rec json.RawMessage) []byte {
	var m map[string]any
	if err := json.Unmarshal(rec, &m); err != nil {
		return rec
	}
	if ids, ok := m["genre_ids"].([]any); ok {
		genres := []map[string]any{}
		for _, id := range ids {
			n, _ := id.(float64)
			genres = append(genres, map[string]any{"id": id, "name": genreNames[int64(n)]})
		}
		m["genres"] = genres
		delete(m, "genre_ids")
	}
	m["runtime"] = 108
	m["status"] = "Released"
	m["tagline"] = ""
	m["budget"] = 0
	m["revenue"] = 0
	m["imdb_id"] = nil
	b, _ := json.Marshal(m)
	return b
}

func tmdbError(status, code int, message string) (int, []byte, string) {
	b, _ := json.Marshal(map[string]any{"success": false, "status_code": code, "status_message": message})
	return status, b, ""
}

func idOf(rec json.RawMessage) int64 {
	var m struct {
		ID int64 `json:"id"`
	}
	_ = json.Unmarshal(rec, &m)
	return m.ID
}
