package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// IdempotencyStore is what the Idempotency-Key support needs of the system
// of record (postgres.Store, sqlite.Store): reading a key's record and
// deleting expired ones. The records themselves are written by the store's
// writes, in their transactions (store.IdempotentWrite).
type IdempotencyStore interface {
	GetIdempotencyRecord(ctx context.Context, key string) (store.IdempotencyRecord, bool, error)
	DeleteIdempotencyRecords(ctx context.Context, createdBefore time.Time) (int64, error)
}

// IdempotencyKeyHeader names the header (draft-ietf-httpapi-idempotency-key-header).
const IdempotencyKeyHeader = "Idempotency-Key"

// idempotency serves the Idempotency-Key header of the write routes.
type idempotency struct {
	store IdempotencyStore // nil: the header is ignored
	ttl   time.Duration
	now   func() time.Time
}

// validIdempotencyKey: 1 to 255 printable ASCII characters (a UUID, say).
func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// scopedKey is the key under which the record of a request's
// Idempotency-Key is kept: per authenticated caller (the token's or JWT
// subject's principal), so that one caller can neither replay another's
// answer nor block its keys; one space for everyone when authentication is
// off. Neither a key nor a principal name holds a newline, so scopes never
// collide.
func scopedKey(r *http.Request, key string) string {
	if id, on := identityOf(r.Context()); on && id.err == nil && id.principal.Name != "" {
		return "caller:" + id.principal.Name + "\n" + key
	}
	return key
}

// fingerprint identifies a request for its key: method, path, query and
// body. A retry must repeat all four.
func fingerprint(r *http.Request, body []byte) string {
	h := sha256.New()
	h.Write([]byte(r.Method + "\n" + r.URL.EscapedPath() + "?" + r.URL.RawQuery + "\n"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// renderJSON is the answer a write's result gets: status and the body
// encode writes.
func renderJSON(status int, v any) (int, []byte) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // results are plain data; they always encode
	return status, b.Bytes()
}

// wrap makes write f honour the Idempotency-Key header:
//
//   - a key seen before (and not expired) with the same request replays the
//     recorded answer, with Idempotency-Replayed: true;
//   - with another request it answers 422 idempotency_key_reused;
//   - a new key runs the write with a store.IdempotentWrite in its context,
//     so the store records the answer (render of the write's result) in the
//     write's own transaction: the record exists if and only if the write
//     was committed. A write whose commit outcome was unknown (503
//     outcome_unknown) can therefore be retried with the same key: it
//     either replays the answer or runs the write for the first time.
//
// A request without the header, or a router without an IdempotencyStore,
// runs f unchanged.
func (i idempotency) wrap(render func(result any) (int, []byte), f apiFunc) apiFunc {
	return func(r *http.Request) (response, error) {
		key, has := r.Header[IdempotencyKeyHeader]
		if !has || i.store == nil {
			return f(r)
		}
		if len(key) != 1 || !validIdempotencyKey(key[0]) {
			return response{}, feature.Invalid("invalid Idempotency-Key header",
				feature.FieldError{Field: IdempotencyKeyHeader, Problem: "must be one value of 1 to 255 printable ASCII characters"})
		}
		body, err := bodyBytes(r)
		if err != nil {
			return response{}, err
		}
		fp := fingerprint(r, body)
		now := i.now()
		k := scopedKey(r, key[0])
		if res, done, err := i.replay(r.Context(), k, fp, now); done || err != nil {
			return res, err
		}
		w := store.NewIdempotentWrite(k, fp, now, now.Add(-i.ttl), render)
		res, err := f(r.WithContext(store.WithIdempotentWrite(r.Context(), w)))
		if errors.Is(err, store.ErrIdempotencyKeyInUse) {
			// A concurrent request with the key committed first: answer as
			// a retry would.
			if res, done, err := i.replay(r.Context(), k, fp, now); done || err != nil {
				return res, err
			}
		}
		if err != nil {
			return res, err
		}
		if status, b := w.Answer(); status != 0 {
			// Answer exactly what was recorded, so a replay is identical.
			return response{status: status, raw: b, header: res.header}, nil
		}
		return res, nil
	}
}

// replay answers from the record of key, if there is an unexpired one:
// done reports that it did (or that the key is refused).
func (i idempotency) replay(ctx context.Context, key, fp string, now time.Time) (response, bool, error) {
	rec, found, err := i.store.GetIdempotencyRecord(ctx, key)
	if err != nil {
		return response{}, true, err
	}
	if !found || rec.CreatedAt.Before(now.Add(-i.ttl)) {
		return response{}, false, nil
	}
	if rec.Fingerprint != fp {
		return response{}, true, &feature.Error{Code: feature.CodeIdempotencyKeyReused,
			Message: "this Idempotency-Key was used for a different request",
			Fields:  []feature.FieldError{{Field: IdempotencyKeyHeader, Problem: "already used with another method, path or body"}}}
	}
	if rec.Status == 0 {
		return response{}, true, feature.Conflict("a request with this Idempotency-Key has no recorded answer",
			feature.FieldError{Field: IdempotencyKeyHeader, Problem: "in use"})
	}
	return response{status: rec.Status, raw: rec.Body, header: map[string]string{"Idempotency-Replayed": "true"}}, true, nil
}

// expire deletes the expired records.
func (i idempotency) expire(ctx context.Context) (int64, error) {
	return i.store.DeleteIdempotencyRecords(ctx, i.now().Add(-i.ttl))
}

// ExpireIdempotencyKeys deletes the records of st older than ttl every
// interval until ctx ends; log receives failures (nil: dropped).
func ExpireIdempotencyKeys(ctx context.Context, st IdempotencyStore, ttl, interval time.Duration, log func(deleted int64, err error)) {
	i := idempotency{store: st, ttl: ttl, now: time.Now}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := i.expire(ctx)
		if log != nil && (err != nil || n > 0) && ctx.Err() == nil {
			log(n, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
