package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/auth"
	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/progress"
	"github.com/featurestore/featurestore/internal/service"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/tmdb"
)

type ingestFlags struct {
	api         string
	batch       int
	noRecompute bool
	tokenFile   string
	token       string // sent as Authorization: Bearer with --api
}

// cliLogger logs warnings and errors only, to stderr, so command output
// stays readable.
func cliLogger(stderr io.Writer) *zap.Logger {
	log, _ := newLogger(stderr, "warn", nil)
	return log
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path) // #nosec G304 -- reading the file the operator named is the command's job
}

// ingestFile ingests a TMDB file in batches, directly into the configured
// store or through a running service's API, with a progress bar on stderr.
func ingestFile(ctx context.Context, cfg Config, f ingestFlags, path string, stdout, stderr io.Writer) error {
	body, err := readInput(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	raws, err := tmdb.Decode(body)
	if err != nil {
		return fmt.Errorf("%s: %w%s; nothing was stored", path, err, fieldDetail(err))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the preparation of batches ahead
	var send func(ctx context.Context, lo, hi int) (service.IngestResult, error)
	var svc *service.Service
	if f.api != "" {
		client := &http.Client{Timeout: 2 * time.Minute}
		base := strings.TrimRight(f.api, "/")
		send = func(ctx context.Context, lo, hi int) (service.IngestResult, error) {
			return postBatch(ctx, client, base, f.token, raws[lo:hi])
		}
	} else {
		log := cliLogger(stderr)
		b, err := openBackends(ctx, cfg, log, nil, openOptions{directWriter: true})
		if err != nil {
			return err
		}
		defer b.Close()
		svc, err = service.New(ctx, b.store, b.serviceOptions(service.Options{Logger: log}))
		if err != nil {
			return err
		}
		send = writeAhead(ctx, svc, raws, f.batch)
	}

	bar := progress.New(stderr, "ingest "+path, len(raws), progress.IsTerminal(stderr))
	var total service.IngestResult
	for lo := 0; lo < len(raws); lo += f.batch {
		hi := min(lo+f.batch, len(raws))
		res, err := send(ctx, lo, hi)
		if err != nil && res.Received == 0 {
			return fmt.Errorf("records %d..%d: %w%s; %s", lo, hi-1, err, fieldDetail(err), storedBefore(total, lo, svc != nil))
		}
		total.Received += res.Received
		total.Accepted += res.Accepted
		total.FeaturesWritten += res.FeaturesWritten
		for _, r := range res.Rejected {
			r.Index += lo
			total.Rejected = append(total.Rejected, r)
		}
		bar.Set(hi)
	}
	bar.Finish()
	if svc != nil && !f.noRecompute && total.Accepted > 0 {
		rbar := progress.New(stderr, "recompute statistical features", svc.CorpusSize(), progress.IsTerminal(stderr))
		if _, err := svc.Recompute(ctx, func(done, _ int) { rbar.Set(done) }); err != nil {
			return fmt.Errorf("the %s are stored, but the recompute of the statistical features failed (run featurestore recompute): %w",
				movies(total.Accepted), err)
		}
		rbar.Finish()
	}
	fmt.Fprintf(stdout, "received %d, accepted %d, rejected %d, features written %d\n",
		total.Received, total.Accepted, len(total.Rejected), total.FeaturesWritten)
	for _, r := range total.Rejected {
		var parts []string
		for _, fe := range r.Fields {
			parts = append(parts, fe.Field+": "+fe.Problem)
		}
		fmt.Fprintf(stdout, "  record %d rejected: %s\n", r.Index, strings.Join(parts, "; "))
	}
	if len(total.Rejected) > 0 {
		stored := "nothing was stored"
		if total.Accepted > 0 {
			stored = fmt.Sprintf("the %s of the valid records are stored", movies(total.Accepted))
		}
		return fmt.Errorf("%d of %d records were rejected; %s", len(total.Rejected), total.Received, stored)
	}
	return nil
}

// writeAhead returns the sender of the direct ingest: it writes the batches
// of raws (of size batch) one after the other, each in its own transaction
// as Ingest does, while a goroutine prepares the next batch (parses the
// records, computes the features), so the two overlap. Batches must be
// asked for in order; cancelling ctx stops the goroutine.
func writeAhead(ctx context.Context, svc *service.Service, raws []json.RawMessage, batch int) func(context.Context, int, int) (service.IngestResult, error) {
	type prepared struct {
		p   *service.PreparedIngest
		err error
	}
	ahead := make(chan prepared, 1)
	go func() {
		defer close(ahead)
		for lo := 0; lo < len(raws); lo += batch {
			p, err := svc.PrepareIngest(raws[lo:min(lo+batch, len(raws))])
			select {
			case ahead <- prepared{p, err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return func(ctx context.Context, _, _ int) (service.IngestResult, error) {
		next, ok := <-ahead
		if !ok {
			return service.IngestResult{}, ctx.Err()
		}
		if next.err != nil {
			return next.p.Result(), next.err
		}
		return svc.WritePrepared(ctx, next.p)
	}
}

// storedBefore says what an ingest that failed at record lo had stored:
// the movies of the batches before it, each committed on its own.
func storedBefore(total service.IngestResult, lo int, direct bool) string {
	if total.Accepted == 0 {
		return "nothing was stored"
	}
	msg := fmt.Sprintf("the %s accepted from records 0..%d are stored, records %d.. are not", movies(total.Accepted), lo-1, lo)
	if direct {
		msg += " (their statistical features were not recomputed: run featurestore recompute)"
	}
	return msg
}

// movies is "1 movie" or "n movies".
func movies(n int) string {
	if n == 1 {
		return "1 movie"
	}
	return fmt.Sprintf("%d movies", n)
}

// fieldDetail is the fields at fault of a coded error, " (field: problem;
// ...)", or "": the detail (malformed JSON: unexpected end of JSON input)
// that the error's message alone leaves out.
func fieldDetail(err error) string {
	var fe *feature.Error
	if !errors.As(err, &fe) || len(fe.Fields) == 0 {
		return ""
	}
	parts := make([]string, len(fe.Fields))
	for i, f := range fe.Fields {
		parts[i] = f.Field + ": " + f.Problem
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// apiError is the error a service answered, with its code, message, fields
// and request id when the body is the service's error shape.
func apiError(status string, body []byte) error {
	var e struct {
		Code      feature.Code         `json:"code"`
		Message   string               `json:"message"`
		Fields    []feature.FieldError `json:"fields"`
		RequestID string               `json:"request_id"`
	}
	if json.Unmarshal(body, &e) != nil || e.Code == "" {
		return fmt.Errorf("the service answered %s: %s", status, strings.TrimSpace(string(body)))
	}
	err := fmt.Errorf("the service answered %s: %w", status, &feature.Error{Code: e.Code, Message: e.Message, Fields: e.Fields})
	if e.RequestID != "" {
		err = fmt.Errorf("%w [request %s]", err, e.RequestID)
	}
	return err
}

// postBatch sends one batch to POST /v1/movies.
func postBatch(ctx context.Context, client *http.Client, base, token string, batch []json.RawMessage) (service.IngestResult, error) {
	body, err := json.Marshal(batch)
	if err != nil {
		return service.IngestResult{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/movies", bytes.NewReader(body))
	if err != nil {
		return service.IngestResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return service.IngestResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return service.IngestResult{}, err
	}
	var res service.IngestResult
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnprocessableEntity {
		if err := json.Unmarshal(b, &res); err != nil {
			return res, fmt.Errorf("decode response: %w", err)
		}
		return res, nil
	}
	err = apiError(resp.Status, b)
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		err = fmt.Errorf("%w (send a writer's token: --token-file or %s)", err, auth.TokenEnv)
	}
	return res, err
}

// recomputeCmd recomputes statistical features with a progress bar.
func recomputeCmd(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	log := cliLogger(stderr)
	b, err := openBackends(ctx, cfg, log, nil, openOptions{directWriter: true})
	if err != nil {
		return err
	}
	defer b.Close()
	svc, err := service.New(ctx, b.store, b.serviceOptions(service.Options{Logger: log}))
	if err != nil {
		return err
	}
	bar := progress.New(stderr, "recompute statistical features", svc.CorpusSize(), progress.IsTerminal(stderr))
	n, err := svc.Recompute(ctx, func(done, _ int) { bar.Set(done) })
	if err != nil {
		return err
	}
	bar.Finish()
	fmt.Fprintf(stdout, "recomputed statistical features of %d movies\n", n)
	return nil
}

// migrateCmd applies the storage migrations and exits.
func migrateCmd(ctx context.Context, cfg Config, stdout io.Writer) error {
	if cfg.PostgresURL != "" {
		if err := postgres.Migrate(ctx, cfg.PostgresURL); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "postgres migrations applied")
		return nil
	}
	b, err := openBackends(ctx, cfg, zap.NewNop(), nil, openOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "embedded store migrations applied in %s\n", cfg.DataDir)
	return b.Close()
}

// invalidateCacheCmd bumps the generation of every Redis cache recorded in
// Postgres: each server finds its cache stamped with an older generation
// at its next check (every second) and clears it.
func invalidateCacheCmd(ctx context.Context, cfg Config, stdout io.Writer) error {
	if cfg.PostgresURL == "" {
		return errors.New("invalidate-cache needs --postgres-url: the embedded store's in-process cache lives and dies with its server")
	}
	pg, err := postgres.Open(ctx, cfg.PostgresURL, postgres.Options{MaxConns: 2, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("open postgres: %w", err)
	}
	defer pg.Close()
	if err := pg.BumpCacheGeneration(ctx, ""); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "cache generation bumped: every server clears its Redis cache at its next check (within about a second)")
	return nil
}
