package store

import (
	"context"
	"sync"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// IdempotencyRecord is what the system of record keeps of a write made with
// an Idempotency-Key: the request's fingerprint (its method, path and body)
// and the answer it got, written in the same transaction as the write, so
// the record exists exactly when the write was committed.
type IdempotencyRecord struct {
	Key         string
	Fingerprint string
	Status      int
	Body        []byte
	CreatedAt   time.Time
}

// IdempotentWrite travels in the context of a write made with an
// Idempotency-Key (WithIdempotentWrite). A store that keeps idempotency
// records (postgres, sqlite) inserts Record() in the transaction of the
// write it makes with that context, or fails the write with
// ErrIdempotencyKeyInUse when an unexpired record of the key exists.
//
// The answer to record is rendered from the write's result before the
// commit, by whoever knows the result: the service calls RecordAnswer with
// its result just before it writes rows; a store calls it with the group it
// stored, or with nil for a group it deleted.
type IdempotentWrite struct {
	Key         string
	Fingerprint string
	// Now is the record's creation time; a record of the same key created
	// before ExpiredBefore has expired and may be replaced.
	Now, ExpiredBefore time.Time

	render func(result any) (status int, body []byte)

	mu     sync.Mutex
	status int
	body   []byte
}

// NewIdempotentWrite returns the idempotent write of key; render turns the
// write's result into the status and body of its answer.
func NewIdempotentWrite(key, fingerprint string, now, expiredBefore time.Time, render func(result any) (int, []byte)) *IdempotentWrite {
	return &IdempotentWrite{Key: key, Fingerprint: fingerprint, Now: now, ExpiredBefore: expiredBefore, render: render}
}

// SetAnswer sets the answer to record.
func (w *IdempotentWrite) SetAnswer(status int, body []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.status, w.body = status, body
}

// Answer returns the answer set so far (status 0: none).
func (w *IdempotentWrite) Answer() (int, []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status, w.body
}

// Record returns the record a store writes with the write.
func (w *IdempotentWrite) Record() IdempotencyRecord {
	status, body := w.Answer()
	if body == nil {
		body = []byte{}
	}
	return IdempotencyRecord{Key: w.Key, Fingerprint: w.Fingerprint, Status: status, Body: body, CreatedAt: w.Now}
}

type idempotentKey struct{}

// WithIdempotentWrite returns ctx carrying w.
func WithIdempotentWrite(ctx context.Context, w *IdempotentWrite) context.Context {
	return context.WithValue(ctx, idempotentKey{}, w)
}

// IdempotentWriteFrom returns the idempotent write ctx carries, or nil.
func IdempotentWriteFrom(ctx context.Context) *IdempotentWrite {
	w, _ := ctx.Value(idempotentKey{}).(*IdempotentWrite)
	return w
}

// RecordAnswer renders result as the answer of the idempotent write ctx
// carries, if any.
func RecordAnswer(ctx context.Context, result any) {
	if w := IdempotentWriteFrom(ctx); w != nil && w.render != nil {
		w.SetAnswer(w.render(result))
	}
}

// ErrIdempotencyKeyInUse is the error of a write whose Idempotency-Key has
// an unexpired record already (a concurrent request with the same key
// committed first): nothing was written.
var ErrIdempotencyKeyInUse = &feature.Error{Code: feature.CodeConflict,
	Message: "another request with this Idempotency-Key was committed first",
	Fields:  []feature.FieldError{{Field: "Idempotency-Key", Problem: "in use"}}}
