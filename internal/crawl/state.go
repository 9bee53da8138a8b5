package crawl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// State is the crawler's state directory:
//
//	LOCK               held while a crawler uses the directory
//	checkpoint.json    the unfinished crawl: pages done, ids seen, counts
//	records.jsonl      the accepted records of the pages done, one per line
//	last_success.json  the last successful crawl
//
// A page is committed by appending its records to the journal (fsync), then
// replacing the checkpoint atomically (temp file, fsync, rename, fsync of the
// directory) with the journal's new length. On load, journal bytes past that
// length (a page whose checkpoint was never written) are cut off, so a crash
// at any point resumes at the first page not committed.
type State struct {
	dir    string
	unlock func() error
}

const (
	checkpointFile  = "checkpoint.json"
	journalFile     = "records.jsonl"
	lastSuccessFile = "last_success.json"
	checkpointV     = 1
)

// ErrStateLocked is returned by OpenState when another process uses the
// directory.
var ErrStateLocked = errors.New("crawl state directory is in use by another crawler")

// OpenState creates (if needed) and locks a state directory.
func OpenState(dir string) (*State, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("crawl state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o640) // #nosec G302 G304 -- the lock file in the operator's --state-dir, group-readable on purpose
	if err != nil {
		return nil, fmt.Errorf("crawl state directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%w: %s", ErrStateLocked, dir)
	}
	return &State{dir: dir, unlock: f.Close}, nil
}

// Dir is the state directory.
func (s *State) Dir() string { return s.dir }

// Close releases the directory.
func (s *State) Close() error { return s.unlock() }

// Checkpoint is the progress of an unfinished crawl.
type Checkpoint struct {
	Version int `json:"version"`
	// Spec is the crawl's configuration; a checkpoint of another
	// configuration is not resumed.
	Spec Config `json:"spec"`
	// Ingest is true when the pages done were also sent to the store.
	Ingest bool `json:"ingest"`
	// StartedAt is when the crawl began; Elapsed the time its earlier runs
	// took (for collection_duration).
	StartedAt time.Time     `json:"started_at"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	Sources   []SourceState `json:"sources"`
	// Seen are the ids of the movies accepted so far (de-duplication).
	Seen []int64 `json:"seen"`
	// JournalBytes is the committed length of records.jsonl.
	JournalBytes int64  `json:"journal_bytes"`
	Counts       Counts `json:"counts"`
	// Rejections are the first maxRejections rejected records.
	Rejections []Rejection `json:"rejections"`
}

// SourceState is the progress through one source.
type SourceState struct {
	Source
	// NextPage is the first page not done.
	NextPage int `json:"next_page"`
	// LastPage is the last page to fetch (known after the first page).
	LastPage int  `json:"last_page"`
	Done     bool `json:"done"`
}

// Counts are a crawl's totals.
type Counts struct {
	Pages      int `json:"pages"`
	Accepted   int `json:"accepted"`
	Rejected   int `json:"rejected"`
	Duplicates int `json:"duplicates"`
}

// Rejection is one record the crawl refused, with the fields at fault.
type Rejection struct {
	Source string `json:"source"`
	Page   int    `json:"page"`
	// Index is the record's position in the page's results.
	Index int `json:"index"`
	// ID is the record's movie id, 0 when it has none.
	ID     int64                `json:"id"`
	Fields []feature.FieldError `json:"fields"`
}

// maxRejections bounds the rejections a checkpoint and a summary keep.
const maxRejections = 1000

// Success is the last successful crawl.
type Success struct {
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Movies     int       `json:"movies"`
	Out        string    `json:"out,omitempty"`
}

// LoadCheckpoint returns the saved checkpoint, or nil when there is none.
func (s *State) LoadCheckpoint() (*Checkpoint, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, checkpointFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, fmt.Errorf("checkpoint %s is corrupt (%v); delete it to start the crawl over", filepath.Join(s.dir, checkpointFile), err)
	}
	if cp.Version != checkpointV {
		return nil, fmt.Errorf("checkpoint %s has version %d, this crawler writes %d; delete it to start over",
			filepath.Join(s.dir, checkpointFile), cp.Version, checkpointV)
	}
	return &cp, nil
}

// SaveCheckpoint replaces the checkpoint atomically.
func (s *State) SaveCheckpoint(cp *Checkpoint) error {
	cp.Version = checkpointV
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, checkpointFile), b)
}

// Discard removes the checkpoint and the journal (the crawl is over, or is
// started over).
func (s *State) Discard() error {
	var errs []error
	for _, name := range []string{checkpointFile, journalFile} {
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		errs = append(errs, syncDir(s.dir))
	}
	return errors.Join(errs...)
}

// LastSuccess returns the last successful crawl; the zero Success when none.
func (s *State) LastSuccess() (Success, error) {
	var out Success
	b, err := os.ReadFile(filepath.Join(s.dir, lastSuccessFile))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return Success{}, fmt.Errorf("%s is corrupt: %w", filepath.Join(s.dir, lastSuccessFile), err)
	}
	return out, nil
}

func (s *State) saveLastSuccess(v Success) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, lastSuccessFile), b)
}

// journal is the append-only file of accepted records.
type journal struct {
	f    *os.File
	size int64
}

// openJournal opens records.jsonl cut to its committed length.
func (s *State) openJournal(committed int64) (*journal, error) {
	path := filepath.Join(s.dir, journalFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640) // #nosec G302 G304 -- a file in the operator's --state-dir, group-readable on purpose
	if err != nil {
		return nil, fmt.Errorf("open records journal: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if st.Size() < committed {
		_ = f.Close()
		return nil, fmt.Errorf("records journal %s is shorter (%d bytes) than its checkpoint says (%d); delete the state directory's checkpoint.json to start the crawl over",
			path, st.Size(), committed)
	}
	if st.Size() > committed {
		if err := f.Truncate(committed); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("cut the records journal to its checkpoint: %w", err)
		}
	}
	if _, err := f.Seek(committed, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &journal{f: f, size: committed}, nil
}

// append writes records, one JSON line each, and syncs them to disk.
func (j *journal) append(records []Record) error {
	if len(records) == 0 {
		return nil
	}
	var b bytes.Buffer
	for _, r := range records {
		line, err := marshal(r)
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	n, err := j.f.Write(b.Bytes())
	j.size += int64(n)
	if err != nil {
		return fmt.Errorf("append to the records journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync the records journal: %w", err)
	}
	return nil
}

// records reads back every committed record.
func (j *journal) records() ([]Record, error) {
	r := io.NewSectionReader(j.f, 0, j.size)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var out []Record
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("records journal line %d: %w", len(out)+1, err)
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the records journal: %w", err)
	}
	return out, nil
}

func (j *journal) close() error { return j.f.Close() }

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, synced, renamed over path, and the directory synced, so a
// crash leaves the old file or the new one, never a part.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(0o640); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 -- the operator's --state-dir
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
