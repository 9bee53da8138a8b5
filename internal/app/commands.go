package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/progress"
	"github.com/featurestore/featurestore/internal/service"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/tmdb"
)

type ingestFlags struct {
	api         string
	batch       int
	noRecompute bool
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
		return fmt.Errorf("%s: %w", path, err)
	}
	var send func(ctx context.Context, batch []json.RawMessage) (service.IngestResult, error)
	var svc *service.Service
	if f.api != "" {
		client := &http.Client{Timeout: 2 * time.Minute}
		base := strings.TrimRight(f.api, "/")
		send = func(ctx context.Context, batch []json.RawMessage) (service.IngestResult, error) {
			return postBatch(ctx, client, base, batch)
		}
	} else {
		log := cliLogger(stderr)
		b, err := openBackends(ctx, cfg, log, nil, openOptions{})
		if err != nil {
			return err
		}
		defer b.Close()
		svc, err = service.New(ctx, b.store, service.Options{Logger: log})
		if err != nil {
			return err
		}
		send = svc.Ingest
	}

	bar := progress.New(stderr, "ingest "+path, len(raws), progress.IsTerminal(stderr))
	var total service.IngestResult
	for lo := 0; lo < len(raws); lo += f.batch {
		hi := min(lo+f.batch, len(raws))
		res, err := send(ctx, raws[lo:hi])
		if err != nil && res.Received == 0 {
			return fmt.Errorf("records %d..%d: %w (records before %d are stored)", lo, hi-1, err, lo)
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
			return fmt.Errorf("recompute: %w", err)
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
		return fmt.Errorf("%d of %d records were rejected (the others are stored)", len(total.Rejected), total.Received)
	}
	return nil
}

// postBatch sends one batch to POST /v1/movies.
func postBatch(ctx context.Context, client *http.Client, base string, batch []json.RawMessage) (service.IngestResult, error) {
	body, err := json.Marshal(batch)
	if err != nil {
		return service.IngestResult{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/movies", bytes.NewReader(body))
	if err != nil {
		return service.IngestResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
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
	return res, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
}

// recomputeCmd recomputes statistical features with a progress bar.
func recomputeCmd(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	log := cliLogger(stderr)
	b, err := openBackends(ctx, cfg, log, nil, openOptions{})
	if err != nil {
		return err
	}
	defer b.Close()
	svc, err := service.New(ctx, b.store, service.Options{Logger: log})
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
