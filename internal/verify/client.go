package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// client makes the checks' GET requests, with basic auth when it has a
// password, or a bearer token when it has one.
type client struct {
	http           *http.Client
	user, password string
	bearer         string
}

// get fetches url and returns the status code and (at most 16 MiB of) the body.
func (c *client) get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.password != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	return resp.StatusCode, body, nil
}

// getJSON fetches url, wants 200 and decodes the body into out.
func (c *client) getJSON(ctx context.Context, url string, out any) error {
	code, body, err := c.get(ctx, url)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return statusError(url, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return nil
}

// ok fetches url and wants 200; the detail is the body's first line.
func (c *client) ok(ctx context.Context, url string) (string, error) {
	code, body, err := c.get(ctx, url)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", statusError(url, code, body)
	}
	return fmt.Sprintf("200 %s", snippet(body)), nil
}

func statusError(url string, code int, body []byte) error {
	msg := fmt.Sprintf("GET %s: %d %s", url, code, http.StatusText(code))
	if s := snippet(body); s != "" {
		msg += ": " + s
	}
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		msg += " (check the credentials)"
	}
	return fmt.Errorf("%s", msg)
}

// snippet is the first line of body, cut to 120 characters.
func snippet(body []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	if r := []rune(s); len(r) > 120 {
		s = string(r[:120]) + "…"
	}
	return s
}
