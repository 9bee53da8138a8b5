package crawl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// Endpoints: the value set of the endpoint label. The first four are the
// list endpoints a crawl can select; details is /movie/{id}.
const (
	EndpointPopular    = "popular"
	EndpointTopRated   = "top_rated"
	EndpointNowPlaying = "now_playing"
	EndpointDiscover   = "discover"
	EndpointDetails    = "details"
)

// ListEndpoints are the list endpoints a crawl can select, in crawl order.
var ListEndpoints = []string{EndpointPopular, EndpointTopRated, EndpointNowPlaying, EndpointDiscover}

var allEndpoints = [...]string{EndpointPopular, EndpointTopRated, EndpointNowPlaying, EndpointDiscover, EndpointDetails}

// endpointPaths are the API paths of the list endpoints.
var endpointPaths = map[string]string{
	EndpointPopular:    "movie/popular",
	EndpointTopRated:   "movie/top_rated",
	EndpointNowPlaying: "movie/now_playing",
	EndpointDiscover:   "discover/movie",
}

// MaxPage is the last page TMDB serves of any list (it answers 400 beyond).
const MaxPage = 500

// Source is one list to crawl page by page: a list endpoint, and for
// discover a release-date range.
type Source struct {
	Endpoint string `json:"endpoint"`
	// From and To bound discover's primary_release_date (YYYY-MM-DD, both
	// inclusive); empty for the other endpoints.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// Key names the source in logs, reports and the checkpoint.
func (s Source) Key() string {
	if s.Endpoint == EndpointDiscover {
		return s.Endpoint + " " + s.From + ".." + s.To
	}
	return s.Endpoint
}

// Page is one decoded list page.
type Page struct {
	Number       int
	TotalPages   int
	TotalResults int
	// Results are the raw records, as tmdb.Decode returns them.
	Results []json.RawMessage
}

// ListPage fetches one page of a source. sortBy is discover's sort_by.
func (c *Client) ListPage(ctx context.Context, src Source, page int, sortBy string) (Page, error) {
	path, ok := endpointPaths[src.Endpoint]
	if !ok {
		return Page{}, fmt.Errorf("unknown list endpoint %q", src.Endpoint)
	}
	q := url.Values{"page": {strconv.Itoa(page)}}
	if c.lang != "" {
		q.Set("language", c.lang)
	}
	if c.region != "" {
		q.Set("region", c.region)
	}
	if src.Endpoint == EndpointDiscover {
		q.Set("primary_release_date.gte", src.From)
		q.Set("primary_release_date.lte", src.To)
		q.Set("sort_by", sortBy)
	}
	var p Page
	err := c.get(ctx, src.Endpoint, path, q, func(body []byte) error {
		var err error
		p, err = decodePage(body, page)
		return err
	})
	return p, err
}

// decodePage decodes a list page with the payload decoder of ingest
// (tmdb.Decode) and checks its paging fields.
func decodePage(body []byte, want int) (Page, error) {
	var head struct {
		Page         *int            `json:"page"`
		Results      json.RawMessage `json:"results"`
		TotalPages   *int            `json:"total_pages"`
		TotalResults *int            `json:"total_results"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return Page{}, fmt.Errorf("not a TMDB list page: %w", err)
	}
	switch {
	case head.Results == nil:
		return Page{}, errors.New(`not a TMDB list page: no "results"`)
	case head.Page == nil || head.TotalPages == nil:
		return Page{}, errors.New(`not a TMDB list page: no "page" or "total_pages"`)
	case *head.Page != want:
		return Page{}, fmt.Errorf("asked for page %d, got page %d", want, *head.Page)
	case *head.TotalPages < 0:
		return Page{}, fmt.Errorf("total_pages %d is negative", *head.TotalPages)
	}
	results, err := tmdb.Decode(body)
	if err != nil {
		return Page{}, withFields(err)
	}
	p := Page{Number: *head.Page, TotalPages: *head.TotalPages, Results: results}
	if head.TotalResults != nil {
		p.TotalResults = *head.TotalResults
	}
	return p, nil
}

// withFields spells out the fields at fault of a feature.Error, whose
// Error() gives only its message.
func withFields(err error) error {
	var fe *feature.Error
	if !errors.As(err, &fe) || len(fe.Fields) == 0 {
		return err
	}
	parts := make([]string, len(fe.Fields))
	for i, f := range fe.Fields {
		parts[i] = f.Field + ": " + f.Problem
	}
	return fmt.Errorf("%s (%s)", fe.Message, strings.Join(parts, "; "))
}

// ErrNoDetails is returned by Details when TMDB has no such movie (404).
var ErrNoDetails = errors.New("TMDB has no details of this movie")

// Details fetches /movie/{id} and returns it as a raw record in the list
// shape (genre_ids from its genres), ready for tmdb.ParseMovie.
func (c *Client) Details(ctx context.Context, id int64) (json.RawMessage, error) {
	q := url.Values{}
	if c.lang != "" {
		q.Set("language", c.lang)
	}
	var raw json.RawMessage
	err := c.get(ctx, EndpointDetails, "movie/"+strconv.FormatInt(id, 10), q, func(body []byte) error {
		var err error
		raw, err = detailsRecord(body)
		return err
	})
	if se := (*StatusError)(nil); errors.As(err, &se) && se.Code == http.StatusNotFound {
		return nil, fmt.Errorf("movie %d: %w", id, ErrNoDetails)
	}
	return raw, err
}

// detailsRecord turns a details body into a list-shaped record: a details
// answer has genres [{id, name}] where a list has genre_ids. A genres value
// of the wrong shape is left for tmdb.ParseMovie to reject (as genre_ids).
func detailsRecord(body []byte) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, fmt.Errorf("not a TMDB movie: %w", err)
	}
	if obj == nil {
		return nil, errors.New("not a TMDB movie: null")
	}
	if genres, ok := obj["genres"]; ok {
		if _, has := obj["genre_ids"]; !has {
			obj["genre_ids"] = genreIDs(genres)
		}
		delete(obj, "genres")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// genreIDs maps [{id, name}, ...] to [id, ...]; anything else is returned
// unchanged, so validation reports it.
func genreIDs(genres json.RawMessage) json.RawMessage {
	var objs []struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(genres, &objs) != nil {
		return genres
	}
	ids := make([]json.RawMessage, 0, len(objs))
	for _, o := range objs {
		if o.ID == nil {
			return genres
		}
		ids = append(ids, o.ID)
	}
	out, err := json.Marshal(ids)
	if err != nil {
		return genres
	}
	return out
}
