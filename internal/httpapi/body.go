package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/featurestore/featurestore/internal/feature"
)

// ByteBudget bounds the request body bytes held in memory at once, across
// all requests: a request takes its share as its body is read and gives it
// back when it has been answered. A body that would take the total past the
// budget is refused with 503 overloaded at once, so that many large bodies
// in parallel cannot exhaust the memory (twelve 32 MiB bodies are 384 MiB
// before any decoding).
type ByteBudget struct {
	max  int64
	used atomic.Int64
	obs  LimitObserver
}

// NewByteBudget returns a budget of max bytes (at least one maximal body);
// obs (nil: none) counts the bodies it refuses.
func NewByteBudget(max int64, obs LimitObserver) *ByteBudget {
	if obs == nil {
		obs = nopLimitObserver{}
	}
	return &ByteBudget{max: max, obs: obs}
}

// InUse returns the bytes currently held.
func (b *ByteBudget) InUse() int64 { return b.used.Load() }

func (b *ByteBudget) take(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *ByteBudget) give(n int64) { b.used.Add(-n) }

// bodyState is what the limits middleware leaves in a request's context for
// readBody: the size limit, the budget and what this request holds of it,
// and the body once it has been read (the idempotency check reads it
// before the handler does).
type bodyState struct {
	max    int64
	budget *ByteBudget
	held   int64
	read   []byte
	err    error
	done   bool
}

type bodyKey struct{}

func bodyStateOf(ctx context.Context) *bodyState {
	s, _ := ctx.Value(bodyKey{}).(*bodyState)
	return s
}

func (s *bodyState) grow(n int64) bool {
	if s.budget == nil {
		return true
	}
	if !s.budget.take(n) {
		s.budget.obs.ShedBody()
		return false
	}
	s.held += n
	return true
}

func (s *bodyState) release() {
	if s.budget != nil && s.held > 0 {
		s.budget.give(s.held)
		s.held = 0
	}
}

// errBodyOverBudget answers a body the byte budget cannot hold now.
var errBodyOverBudget = &feature.Error{Code: feature.CodeOverloaded,
	Message: "too many large request bodies are being processed; retry shortly",
	Fields:  []feature.FieldError{{Field: "body", Problem: "the server's request body memory is in use"}}}

// tooLarge is the 413 of a body over max bytes.
func tooLarge(max int64) error {
	return feature.TooLarge(fmt.Sprintf("request body is larger than %d bytes", max),
		feature.FieldError{Field: "body", Problem: "too large (--max-body-bytes is " + strconv.FormatInt(max, 10) + ")"})
}

// readBody reads the whole body, once per request, within the limit and
// the byte budget the limits middleware set. The buffer is sized from
// Content-Length when there is one (a declared length over the limit has
// already been answered 413 without reading); otherwise it grows, taking
// budget as it does, and reading stops the moment the limit is crossed.
func readBody(r *http.Request) ([]byte, error) {
	b, err := bodyBytes(r)
	if err != nil {
		return nil, err
	}
	if len(trimSpace(b)) == 0 {
		return nil, feature.Invalid("request body is empty", feature.FieldError{Field: "body", Problem: "a JSON document is required"})
	}
	return b, nil
}

// bodyBytes is readBody without the requirement of a body: the bytes read
// (none for an empty body), read once per request.
func bodyBytes(r *http.Request) ([]byte, error) {
	st := bodyStateOf(r.Context())
	if st == nil { // a handler used outside the router: no budget to apply
		st = &bodyState{max: 32 << 20}
		r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, st))
	}
	if !st.done {
		st.read, st.err = readLimited(r, st)
		st.done = true
	}
	return st.read, st.err
}

func readLimited(r *http.Request, st *bodyState) ([]byte, error) {
	if r.Body == nil || r.ContentLength == 0 {
		return nil, nil
	}
	size := int64(512)
	if r.ContentLength > 0 {
		size = r.ContentLength
	}
	if size > st.max {
		return nil, tooLarge(st.max)
	}
	if !st.grow(size) {
		return nil, errBodyOverBudget
	}
	buf := make([]byte, 0, size)
	for {
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > st.max {
			return nil, tooLarge(st.max)
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, bodyError(err)
		}
		if r.ContentLength > 0 && int64(len(buf)) == r.ContentLength {
			return buf, nil // net/http never yields more than the declared length
		}
		if len(buf) == cap(buf) {
			// Full: grow by doubling, to at most one byte past the limit
			// (reading that byte is how a crossing is seen).
			next := min(2*int64(cap(buf)), st.max+1)
			if next <= int64(cap(buf)) {
				next = int64(cap(buf)) + 1
			}
			if !st.grow(next - int64(cap(buf))) {
				return nil, errBodyOverBudget
			}
			bigger := make([]byte, len(buf), next)
			copy(bigger, buf)
			buf = bigger
		}
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
