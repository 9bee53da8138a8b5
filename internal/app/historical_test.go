package app

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/featurestore/featurestore/internal/testenv"
)

// TestHistoricalCommand builds a training set from a CSV of entity rows
// after an ingest, in CSV and in Parquet, and checks that a failed run
// leaves no output file.
func TestHistoricalCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := envFrom(map[string]string{"FEATURESTORE_DATA_DIR": dir})
	ctx := context.Background()
	if err := Run(ctx, []string{"ingest", "--no-recompute", testenv.TMDBFile(t)}, env, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	after := time.Now().UTC().Add(time.Minute).Format(time.RFC3339)
	entities := filepath.Join(dir, "entities.csv")
	body := "movie_id,event_timestamp\n552524," + after + "\n552524,2020-01-01T00:00:00Z\n42," + after + "\n"
	if err := os.WriteFile(entities, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	err := Run(ctx, []string{"historical", "--features", "movie_basic:popularity,movie_text:title_length", entities}, env, &out, &errOut)
	if err != nil {
		t.Fatalf("historical: %v\n%s", err, errOut.String())
	}
	records, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatalf("output is not CSV: %v\n%s", err, out.String())
	}
	if len(records) != 4 || strings.Join(records[0], ",") != "movie_id,event_timestamp,movie_basic__popularity,movie_text__title_length" {
		t.Fatalf("output:\n%s", out.String())
	}
	if r := records[1]; r[0] != "552524" || r[2] == "" || r[3] != "8" {
		t.Errorf("row of a stored movie after its ingest = %v", r)
	}
	if r := records[2]; r[2] != "" || r[3] != "" {
		t.Errorf("row before the ingest = %v, want nulls", r)
	}
	if !strings.Contains(errOut.String(), "100%") || !strings.Contains(errOut.String(), "wrote 3 rows of 4 columns") {
		t.Errorf("stderr:\n%s", errOut.String())
	}

	pq := filepath.Join(dir, "train.parquet")
	if err := Run(ctx, []string{"historical", "--features", "movie_basic:popularity", "--full-feature-names=false", "--out", pq, entities},
		env, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatalf("historical --out parquet: %v", err)
	}
	f, err := os.Open(pq)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatalf("not a parquet file: %v", err)
	}
	var names []string
	for _, fd := range pf.Schema().Fields() {
		names = append(names, fd.Name())
	}
	if strings.Join(names, ",") != "movie_id,event_timestamp,popularity" || pf.NumRows() != 3 {
		t.Errorf("parquet columns %v, %d rows", names, pf.NumRows())
	}

	js := filepath.Join(dir, "entities.json")
	if err := os.WriteFile(js, []byte(`{"movie_id": [552524, 42], "event_timestamp": ["`+after+`", "`+after+`"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Run(ctx, []string{"historical", "--feature-service", "", "--features", "movie_text:title_length", "--format", "jsonl", js},
		env, &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("historical from JSON: %v", err)
	}
	want := `{"movie_id":552524,"event_timestamp":"` + after + `","movie_text__title_length":8}` + "\n" +
		`{"movie_id":42,"event_timestamp":"` + after + `","movie_text__title_length":null}` + "\n"
	if out.String() != want {
		t.Errorf("JSON lines output:\n%s\nwant:\n%s", out.String(), want)
	}

	failed := filepath.Join(dir, "failed.csv")
	err = Run(ctx, []string{"historical", "--features", "movie_basic:nope", "--out", failed, entities}, env, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `features[0]: group movie_basic has no feature "nope"`) {
		t.Errorf("unknown feature: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*failed*")); len(left) != 0 {
		t.Errorf("a failed run left %v", left)
	}
}

func TestHistoricalHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"historical", "--help"}, envFrom(nil), &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-features", "-feature-service", "-format", "-out", "-data-dir", "-postgres-url", "event_timestamp"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("historical --help does not mention %s", want)
		}
	}
	for _, unwanted := range []string{"-addr", "-redis-url", "-recompute-delay", "-log-dir"} {
		if strings.Contains(out.String(), unwanted) {
			t.Errorf("historical --help lists the server's flag %s", unwanted)
		}
	}
	err := Run(context.Background(), []string{"historical", "--features", "movie_basic:popularity"}, envFrom(nil), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "exactly one ENTITIES file") {
		t.Errorf("historical without a file: %v", err)
	}
}
