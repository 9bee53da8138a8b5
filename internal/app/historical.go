package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/featurestore/featurestore/internal/envflag"
	"github.com/featurestore/featurestore/internal/export"
	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/progress"
	"github.com/featurestore/featurestore/internal/service"
)

const historicalUsage = `featurestore historical: build a point-in-time correct training set.

Usage:
  featurestore historical [flags] ENTITIES

ENTITIES is a file of entity rows (- for standard input): CSV with a header
naming the entity key and event_timestamp (movie_id,event_timestamp), read
as a stream, or a .json file with the columns
{"movie_id": [...], "event_timestamp": [...]}, read whole.
Each row gets, from each feature group, the values of the group's newest row
at or before its event_timestamp, or nulls when there is none or it is older
than the group's ttl. Rows come out in input order, duplicates included, with
the entity id and event_timestamp first (see docs/historical.md).

It reads the store directly: the embedded store's directory cannot be in use
by a running server.

Flags:
`

// historicalFlags are the flags of the historical command.
type historicalFlags struct {
	features         string
	featureService   string
	fullFeatureNames bool
	format           string
	input            string
	out              string
	maxRows          int
}

// historicalCmd parses the historical command's own flags and runs it.
func historicalCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		cfg Config
		f   historicalFlags
	)
	fs := flag.NewFlagSet("featurestore historical", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := envflag.New(fs, getenv)
	env.String(&cfg.DataDir, "data-dir", defaultDataDir(), "data directory of the embedded store, used when no Postgres URL is set")
	env.Secret(&cfg.PostgresURL, "postgres-url", "Postgres `URL`; when set, read from Postgres instead of the embedded store", maskURL)
	env.Int64(&cfg.PostgresMaxConns, "postgres-max-conns", 4, "maximum Postgres connections")
	fs.StringVar(&f.features, "features", "", "comma-separated feature references `group:feature,...`")
	fs.StringVar(&f.featureService, "feature-service", "", "read the features of this feature service `NAME` instead of --features")
	fs.BoolVar(&f.fullFeatureNames, "full-feature-names", true, "name feature columns group__feature (false: feature)")
	fs.StringVar(&f.format, "format", "", "output format: csv, jsonl or parquet (default: from the --out extension, else csv)")
	fs.StringVar(&f.input, "input", "", "entity rows format: csv or json (default: from the ENTITIES extension, else csv)")
	fs.StringVar(&f.out, "out", "-", "output `FILE` (- for standard output); written under a temporary name and renamed when complete")
	fs.IntVar(&f.maxRows, "max-rows", service.DefaultMaxHistoricalRows, "refuse more entity rows than this")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), historicalUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := env.Err(); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("historical takes exactly one ENTITIES file argument (- for standard input)")
	}
	if cfg.PostgresMaxConns < 1 || f.maxRows < 1 {
		return fmt.Errorf("--postgres-max-conns and --max-rows must be at least 1")
	}
	if cfg.PostgresURL == "" && cfg.DataDir == "" {
		return fmt.Errorf("--data-dir is required when no --postgres-url is set")
	}
	return runHistorical(ctx, cfg, f, fs.Arg(0), stdout, stderr)
}

// runHistorical reads the entity rows, opens the store and writes the
// training set with a progress bar on stderr.
func runHistorical(ctx context.Context, cfg Config, f historicalFlags, path string, stdout, stderr io.Writer) error {
	format, err := outputFormat(f)
	if err != nil {
		return err
	}
	req := service.HistoricalRequest{FeatureService: f.featureService, FullFeatureNames: f.fullFeatureNames}
	if f.features != "" {
		for ref := range strings.SplitSeq(f.features, ",") {
			req.Features = append(req.Features, strings.TrimSpace(ref))
		}
	}
	in, total, err := openEntities(path, f.input, &req)
	if err != nil {
		return fmt.Errorf("%s: %w", path, describe(err))
	}
	defer in.Close()

	log := cliLogger(stderr)
	b, err := openBackends(ctx, cfg, log, nil, openOptions{})
	if err != nil {
		return err
	}
	defer b.Close()
	svc, err := service.New(ctx, b.store, b.serviceOptions(service.Options{Logger: log, MaxHistoricalRows: f.maxRows, ReadOnly: true,
		HistoryRetention: cfg.HistoryRetention}))
	if err != nil {
		return err
	}

	out, err := createOutput(f.out, stdout)
	if err != nil {
		return err
	}
	defer out.discard()
	w, err := export.New(format, out.w, export.Options{})
	if err != nil {
		return err
	}
	sink := &progressSink{Writer: w}
	if total > 0 { // unknown for a pipe
		sink.bar = progress.New(stderr, "historical features", total, progress.IsTerminal(stderr))
	}
	res, err := svc.GetHistoricalFeatures(ctx, req, sink)
	if err != nil {
		return fmt.Errorf("%s: %w", path, describe(err))
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := out.commit(); err != nil {
		return err
	}
	if sink.bar != nil {
		sink.bar.Finish()
	}
	printHistorical(stderr, res, f.out)
	return nil
}

// outputFormat is --format, or the one --out's extension names.
func outputFormat(f historicalFlags) (export.Format, error) {
	if f.format != "" {
		return export.ParseFormat(f.format)
	}
	if ext := strings.TrimPrefix(filepath.Ext(f.out), "."); ext != "" && f.out != "-" {
		if format, err := export.ParseFormat(ext); err == nil {
			return format, nil
		}
	}
	return export.CSV, nil
}

// openEntities sets the entity rows of req from a file (- for standard
// input): a CSV file is streamed (req.EntityRows), a JSON file read whole
// (req.Entities). total is the number of rows, for the progress bar: the
// lines of a regular CSV file after the header, counted first.
func openEntities(path, input string, req *service.HistoricalRequest) (io.Closer, int, error) {
	if input == "" {
		input = "csv"
		if strings.EqualFold(filepath.Ext(path), ".json") {
			input = "json"
		}
	}
	if input != "csv" && input != "json" {
		return nil, 0, fmt.Errorf("--input must be csv or json, not %q", input)
	}
	file := os.Stdin
	if path != "-" {
		var err error
		if file, err = os.Open(path); err != nil { // #nosec G304 -- the input file the operator named on the command line
			return nil, 0, err
		}
	}
	if input == "json" {
		defer file.Close()
		var err error
		if req.Entities, err = readEntityJSON(file); err != nil {
			return nil, 0, err
		}
		total := 0
		for _, col := range req.Entities {
			total = len(col)
		}
		return io.NopCloser(nil), total, nil
	}
	total, err := countLines(file)
	if err != nil {
		_ = file.Close()
		return nil, 0, err
	}
	rows, err := service.NewEntityCSV(bufio.NewReaderSize(file, 64<<10))
	if err != nil {
		_ = file.Close()
		return nil, 0, err
	}
	req.EntityRows = rows
	return file, max(total-1, 0), nil
}

// countLines counts the lines of a regular file and rewinds it; for a pipe
// it returns 0 (an unknown total).
func countLines(f *os.File) (int, error) {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0, err
	}
	n := 0
	buf := make([]byte, 64<<10)
	last := byte('\n')
	for {
		k, err := f.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if k > 0 {
			last = buf[k-1] // #nosec G602 -- 0 < k <= len(buf) by the io.Reader contract
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if last != '\n' {
		n++ // a last line without a line end
	}
	_, err = f.Seek(0, io.SeekStart)
	return n, err
}

// readEntityJSON reads {"<key>": [...], "event_timestamp": [...]}, or a
// whole request {"entities": {...}, ...} whose entity rows it takes.
func readEntityJSON(in io.Reader) (map[string][]any, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(in, 64<<10))
	dec.UseNumber()
	var cols map[string]json.RawMessage
	if err := dec.Decode(&cols); err != nil {
		return nil, feature.Invalid("malformed JSON: "+err.Error(), feature.FieldError{Field: "entities", Problem: err.Error()})
	}
	if inner, ok := cols["entities"]; ok {
		cols = nil
		if err := json.Unmarshal(inner, &cols); err != nil {
			return nil, feature.Invalid("malformed JSON: "+err.Error(), feature.FieldError{Field: "entities", Problem: err.Error()})
		}
	}
	out := make(map[string][]any, len(cols))
	for k, raw := range cols {
		d := json.NewDecoder(strings.NewReader(string(raw)))
		d.UseNumber()
		var vals []any
		if err := d.Decode(&vals); err != nil {
			return nil, feature.Invalid("entity column "+k+" is not an array", feature.FieldError{Field: "entities." + k, Problem: err.Error()})
		}
		out[k] = vals
	}
	return out, nil
}

// describe adds the fields at fault to a feature.Error's message, which
// the command line would otherwise lose.
func describe(err error) error {
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

// progressSink advances a progress bar (if any) as rows are written.
type progressSink struct {
	export.Writer
	bar *progress.Bar
	n   int
}

func (p *progressSink) Write(row []any) error {
	if err := p.Writer.Write(row); err != nil {
		return err
	}
	if p.n++; p.bar != nil && p.n%1000 == 0 {
		p.bar.Set(p.n)
	}
	return nil
}

// output is where the training set goes: standard output, or a temporary
// file renamed to its name once complete, so that a failed run never
// leaves a truncated file that looks whole.
type output struct {
	w         io.Writer
	file      *os.File
	tmp, name string
	buf       *bufio.Writer
	done      bool
}

func createOutput(name string, stdout io.Writer) (*output, error) {
	if name == "-" {
		buf := bufio.NewWriterSize(stdout, 64<<10)
		return &output{w: buf, buf: buf}, nil
	}
	file, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	buf := bufio.NewWriterSize(file, 64<<10)
	return &output{w: buf, buf: buf, file: file, tmp: file.Name(), name: name}, nil
}

// commit flushes the output and, for a file, renames it into place.
func (o *output) commit() error {
	if err := o.buf.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if o.file == nil {
		o.done = true
		return nil
	}
	if err := o.file.Chmod(0o644); err != nil { // CreateTemp made it private
		return fmt.Errorf("write %s: %w", o.name, err)
	}
	if err := o.file.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", o.name, err)
	}
	if err := o.file.Close(); err != nil {
		return fmt.Errorf("write %s: %w", o.name, err)
	}
	if err := os.Rename(o.tmp, o.name); err != nil {
		return fmt.Errorf("write %s: %w", o.name, err)
	}
	o.done = true
	return nil
}

// discard removes the temporary file of an output that was not committed.
func (o *output) discard() {
	if o.done || o.file == nil {
		return
	}
	_ = o.file.Close()
	_ = os.Remove(o.tmp)
}

// printHistorical reports what was written.
func printHistorical(w io.Writer, res service.HistoricalResult, out string) {
	where := out
	if out == "-" {
		where = "standard output"
	}
	fmt.Fprintf(w, "wrote %d rows of %d columns to %s\n", res.Rows, len(res.Columns), where)
	for _, g := range res.Groups {
		fmt.Fprintf(w, "  %s: %d with values, %d with no row at or before the time, %d older than the ttl\n",
			g.Group, g.Found, g.NotFound, g.OutsideTTL)
	}
}
