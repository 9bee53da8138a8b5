package app

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommandHelp: each command's --help describes it and lists its own
// flags only.
func TestCommandHelp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"--help"}, []string{"featurestore ingest [flags] FILE", "crawl", "verify", "-addr", "-shutdown-timeout"}, []string{"-batch-size"}},
		{[]string{"help"}, []string{"featurestore ingest [flags] FILE", "-addr"}, []string{"-batch-size"}},
		{[]string{"serve", "--help"}, []string{"featurestore serve: run the HTTP service", "-addr", "-shutdown-timeout", "-log-dir", "FEATURESTORE_ADDR"},
			[]string{"-batch-size", "-api", "featurestore ingest [flags] FILE"}},
		{[]string{"ingest", "--help"}, []string{"featurestore ingest: ingest a TMDB JSON file", "-api", "-batch-size", "-no-recompute",
			"-data-dir", "-postgres-url", "-redis-url", "FEATURESTORE_DATA_DIR"}, []string{"-addr", "-shutdown-timeout", "-log-dir", "-metrics-addr"}},
		{[]string{"recompute", "-h"}, []string{"featurestore recompute: deprecated; writes nothing", "-data-dir", "-postgres-url"},
			[]string{"-addr", "-api", "-batch-size", "-log-dir"}},
		{[]string{"migrate", "--help"}, []string{"featurestore migrate: apply the storage migrations", "-data-dir", "-postgres-url"},
			[]string{"-addr", "-redis-url", "-api", "-cache-ttl"}},
		{[]string{"version", "--help"}, []string{"featurestore version: print the version"}, []string{"-addr", "-data-dir"}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			if err := Run(context.Background(), c.args, envFrom(nil), &out, &out); err != nil {
				t.Fatalf("Run(%q) = %v", c.args, err)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("no %q in:\n%s", w, out.String())
				}
			}
			for _, n := range c.not {
				if strings.Contains(out.String(), n) {
					t.Errorf("%q should not be in:\n%s", n, out.String())
				}
			}
		})
	}
	if err := Run(context.Background(), []string{"recompute", "extra"}, envFrom(map[string]string{"FEATURESTORE_DATA_DIR": t.TempDir()}), io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "no arguments") {
		t.Errorf("recompute with an argument: %v", err)
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIngestErrorsSayWhatWasStored: a failed ingest keeps the decoder's or
// the service's detail and says exactly what was stored.
func TestIngestErrorsSayWhatWasStored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := envFrom(map[string]string{"FEATURESTORE_DATA_DIR": dir})
	ingest := func(args ...string) error {
		return Run(context.Background(), append([]string{"ingest"}, args...), env, io.Discard, io.Discard)
	}
	wantErr := func(t *testing.T, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("ingest succeeded, want an error")
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not contain %q", err, w)
			}
		}
		for _, bad := range []string{"records before 0", "the others are stored", "unrecognised TMDB payload;"} {
			if strings.Contains(err.Error(), bad) {
				t.Errorf("error %q says %q", err, bad)
			}
		}
	}

	t.Run("truncated JSON", func(t *testing.T) {
		wantErr(t, ingest(writeTemp(t, "cut.json", `[{"id": 1, "title": "A"},`)),
			"malformed JSON", "unexpected end of the document", "nothing was stored")
	})
	t.Run("every record rejected", func(t *testing.T) {
		wantErr(t, ingest(writeTemp(t, "bad.json", `[{"id": 1, "title": ""}, {"title": "no id"}]`)),
			"2 of 2 records were rejected; nothing was stored")
	})
	t.Run("some records rejected", func(t *testing.T) {
		wantErr(t, ingest("--no-recompute", writeTemp(t, "mixed.json", `[{"id": 1, "title": "A"}, {"id": 2, "title": ""}]`)),
			"1 of 2 records were rejected; the 1 movie of the valid records are stored")
	})

	// Through a running service whose body limit refuses the second batch.
	base, _, _ := startServer(t, []string{"--max-body-bytes", "1024"}, map[string]string{"FEATURESTORE_DATA_DIR": t.TempDir()})
	big := `[{"id": 11, "title": "Small"}, {"id": 12, "title": "Big", "overview": "` + strings.Repeat("x", 2000) + `"}]`
	file := writeTemp(t, "big.json", big)
	t.Run("the service refuses a later batch", func(t *testing.T) {
		wantErr(t, ingest("--api", base, "--batch-size", "1", file),
			"records 1..1", "413", "larger than 1024 bytes", "body: too large", "the 1 movie accepted from records 0..0 are stored, records 1.. are not")
	})
	t.Run("the service refuses the first batch", func(t *testing.T) {
		wantErr(t, ingest("--api", base, "--batch-size", "2", file), "records 0..1", "413", "nothing was stored")
	})
}
