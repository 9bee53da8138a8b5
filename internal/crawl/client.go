package crawl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// DefaultBaseURL is the TMDB API v3.
const DefaultBaseURL = "https://api.themoviedb.org/3"

// maxBody bounds a TMDB response (a list page is about 20 KB).
const maxBody = 16 << 20

// Credentials authenticate to TMDB: a v4 read access token (sent as
// Authorization: Bearer, preferred when both are set) or a v3 API key (sent
// as the api_key query parameter). They never appear in a log line or an
// error: every error the client returns is redacted.
type Credentials struct {
	APIKey      string
	BearerToken string
}

// Kind names the credential in use ("bearer token" or "API key") for logs.
func (c Credentials) Kind() string {
	if c.BearerToken != "" {
		return "bearer token"
	}
	return "API key"
}

// RetryPolicy says how a request is retried after a 429, a 5xx, a network
// error or a body that is not the expected JSON.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts of one request, first included.
	MaxAttempts int
	// BaseDelay is the first backoff; it doubles with every attempt (with
	// jitter: each wait is between half and all of it) up to MaxDelay.
	BaseDelay, MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After the client waits for; a longer
	// one ends the request with an error (retrying earlier would ignore it).
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy: 5 attempts, backoff 1s, 2s, 4s, 8s (with jitter),
// Retry-After honoured up to 5 minutes.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 5, BaseDelay: time.Second, MaxDelay: 30 * time.Second, MaxRetryAfter: 5 * time.Minute}

// ClientOptions configure a Client.
type ClientOptions struct {
	// BaseURL is the API root, DefaultBaseURL when empty (tests point it at
	// the TMDB double).
	BaseURL     string
	Credentials Credentials
	// Language (e.g. ko-KR) and Region (e.g. KR) are sent with every list
	// request when set; Language also with details.
	Language, Region string
	// Limiter paces every attempt; nil: no limit.
	Limiter *Limiter
	Retry   RetryPolicy
	// HTTPClient; a client with a 30s timeout when nil.
	HTTPClient *http.Client
	Metrics    *Metrics
	Logger     *zap.Logger
}

// Client calls the TMDB API v3 with rate limiting, retries and redaction of
// the credentials.
type Client struct {
	base    *url.URL
	creds   Credentials
	lang    string
	region  string
	limiter *Limiter
	retry   RetryPolicy
	hc      *http.Client
	metrics *Metrics
	log     *zap.Logger
	redact  *strings.Replacer
}

// NewClient checks the options and returns a client.
func NewClient(opts ClientOptions) (*Client, error) {
	if opts.Credentials.APIKey == "" && opts.Credentials.BearerToken == "" {
		return nil, errors.New("no TMDB credentials: set TMDB_API_KEY (v3 API key) or TMDB_BEARER_TOKEN (v4 read access token)")
	}
	var secrets []string
	for _, s := range []string{opts.Credentials.APIKey, opts.Credentials.BearerToken} {
		if s != "" {
			secrets = append(secrets, s, "****", url.QueryEscape(s), "****")
		}
	}
	redact := strings.NewReplacer(secrets...)
	base := opts.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("TMDB base URL %q is not an http(s) URL without a query, such as %s", redact.Replace(base), DefaultBaseURL)
	}
	if opts.Retry.MaxAttempts < 1 {
		return nil, errors.New("retry policy: max attempts must be at least 1")
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	return &Client{
		base: u, creds: opts.Credentials, lang: opts.Language, region: opts.Region,
		limiter: opts.Limiter, retry: opts.Retry, hc: opts.HTTPClient, metrics: opts.Metrics,
		log: opts.Logger, redact: redact,
	}, nil
}

// StatusError is a TMDB answer that retrying cannot change (401, 404, ...).
type StatusError struct {
	// Request is the method and path with its query (no credential).
	Request string
	Code    int
	// Message is TMDB's status_message, or the start of the body.
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: TMDB answered %d %s: %s", e.Request, e.Code, http.StatusText(e.Code), e.Message)
}

// redactedError hides the credentials in an error's text and keeps its
// chain for errors.Is and errors.As.
type redactedError struct {
	err    error
	redact *strings.Replacer
}

func (e *redactedError) Error() string { return e.redact.Replace(e.err.Error()) }
func (e *redactedError) Unwrap() error { return e.err }

func (c *Client) redacted(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{err: err, redact: c.redact}
}

// get fetches path (relative to the base URL) with query q, and hands a 2xx
// body to decode; a decode error counts as a bad answer and is retried. It
// retries per the policy and returns redacted errors.
func (c *Client) get(ctx context.Context, endpoint, path string, q url.Values, decode func([]byte) error) error {
	desc := "GET /" + path
	if len(q) > 0 {
		desc += "?" + q.Encode()
	}
	for attempt := 1; ; attempt++ {
		retryAfter, reason, err := c.attempt(ctx, desc, path, q, decode)
		if err == nil {
			return nil
		}
		if reason == "" || ctx.Err() != nil {
			return c.redacted(err)
		}
		if attempt >= c.retry.MaxAttempts {
			return c.redacted(fmt.Errorf("giving up after %d attempts: %w", attempt, err))
		}
		wait := c.backoff(attempt)
		if retryAfter >= 0 {
			if retryAfter > c.retry.MaxRetryAfter {
				return c.redacted(fmt.Errorf("TMDB asks to retry after %v, longer than the %v the crawler waits: %w",
					retryAfter, c.retry.MaxRetryAfter, err))
			}
			wait = retryAfter
		}
		c.metrics.retry(reason)
		c.log.Info("retrying a TMDB request", zap.String("endpoint", endpoint), zap.String("reason", reason),
			zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.String("error", c.redact.Replace(err.Error())))
		if err := sleep(ctx, wait); err != nil {
			return c.redacted(err)
		}
	}
}

// backoff is the wait before attempt+1: exponential with equal jitter.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.retry.BaseDelay
	for i := 1; i < attempt && d < c.retry.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, c.retry.MaxDelay)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1) // #nosec G404 -- retry jitter, not a secret
}

// attempt makes one request. A retryable failure has a reason; retryAfter
// is the server's Retry-After (-1 when it gave none).
func (c *Client) attempt(ctx context.Context, desc, path string, q url.Values, decode func([]byte) error) (retryAfter time.Duration, reason string, err error) {
	retryAfter = -1
	if c.limiter != nil {
		waited, err := c.limiter.Wait(ctx)
		if err != nil {
			return retryAfter, "", err
		}
		c.metrics.rateLimitWait(waited)
	}
	req, err := c.newRequest(ctx, path, q)
	if err != nil {
		return retryAfter, "", err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return retryAfter, "", ctx.Err()
		}
		// A *url.Error quotes the whole URL; keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return retryAfter, ReasonNetwork, fmt.Errorf("%s: %w", desc, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		if ctx.Err() != nil {
			return retryAfter, "", ctx.Err()
		}
		return retryAfter, ReasonNetwork, fmt.Errorf("%s: reading the answer: %w", desc, err)
	}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		retryAfter = d
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		if err := decode(body); err != nil {
			return -1, ReasonInvalidBody, fmt.Errorf("%s: unexpected answer: %w", desc, err)
		}
		return -1, "", nil
	case code == http.StatusTooManyRequests:
		return retryAfter, ReasonRateLimited, &StatusError{Request: desc, Code: code, Message: statusMessage(body)}
	case code >= 500:
		return retryAfter, ReasonServerError, &StatusError{Request: desc, Code: code, Message: statusMessage(body)}
	default:
		return -1, "", &StatusError{Request: desc, Code: code, Message: statusMessage(body)}
	}
}

func (c *Client) newRequest(ctx context.Context, path string, q url.Values) (*http.Request, error) {
	u := c.base.JoinPath(path) // #nosec G125 -- the path is a TMDB endpoint built from constants and numeric ids
	full := url.Values{}
	for k, v := range q {
		full[k] = v
	}
	if c.creds.BearerToken == "" {
		full.Set("api_key", c.creds.APIKey)
	}
	u.RawQuery = full.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET /%s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "featurestore-crawler")
	if c.creds.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.creds.BearerToken)
	}
	return req, nil
}

// statusMessage is TMDB's status_message in an error body, or the start of
// the body on one line.
func statusMessage(body []byte) string {
	var e struct {
		StatusMessage string `json:"status_message"`
	}
	if json.Unmarshal(body, &e) == nil && e.StatusMessage != "" {
		return e.StatusMessage
	}
	s := strings.Join(strings.Fields(string(bytes.ToValidUTF8(body, nil))), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3). A date in the past is a wait of 0.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, int64(24*time.Hour/time.Second))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
