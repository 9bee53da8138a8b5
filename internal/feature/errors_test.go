package feature

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestErrorCode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want Code
	}{
		{nil, ""},
		{errors.New("a bug"), CodeInternal},
		{NotFound("no such group"), CodeNotFound},
		{fmt.Errorf("read: %w", Unavailable("postgres is unavailable", errors.New("refused"))), CodeUnavailable},
		{fmt.Errorf("read: %w", context.Canceled), CodeCanceled},
		{fmt.Errorf("read: %w", context.DeadlineExceeded), CodeTimeout},
		// A coded error decides over the context error it wraps.
		{Unavailable("postgres is unavailable", context.Canceled), CodeUnavailable},
	} {
		if got := ErrorCode(c.err); got != c.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// TestClassify: an ended context decides first; a live one changes nothing.
func TestClassify(t *testing.T) {
	t.Parallel()
	live := context.Background()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()

	unavailable := Unavailable("postgres is unavailable", errors.New("connection reset"))
	notFound := NotFound("no such entity")
	for _, c := range []struct {
		name string
		ctx  context.Context
		err  error
		want Code
	}{
		{"live: unchanged", live, unavailable, CodeUnavailable},
		{"live: an uncoded error stays internal", live, errors.New("bug"), CodeInternal},
		{"live: nil", live, nil, ""},
		{"canceled: a broken connection", canceled, unavailable, CodeCanceled},
		{"canceled: a timeout reported by the database", canceled, Timeout("statement cancelled", nil), CodeCanceled},
		{"canceled: even a decided answer", canceled, notFound, CodeCanceled},
		{"canceled: nil stays nil", canceled, nil, ""},
		{"deadline: unavailable", expired, unavailable, CodeTimeout},
		{"deadline: internal", expired, errors.New("conn closed"), CodeTimeout},
		{"deadline: a decided answer stands", expired, notFound, CodeNotFound},
		{"deadline: a canceled store call stays canceled", expired, Canceled("gone", nil), CodeCanceled},
	} {
		got := Classify(c.ctx, c.err)
		if code := ErrorCode(got); code != c.want {
			t.Errorf("%s: Classify = %v (code %q), want code %q", c.name, got, code, c.want)
		}
		if c.err != nil && !errors.Is(got, c.err) {
			t.Errorf("%s: Classify lost the cause %v: %v", c.name, c.err, got)
		}
	}
}

func TestCodesAreDistinct(t *testing.T) {
	t.Parallel()
	seen := map[Code]bool{}
	for _, c := range Codes() {
		if c == "" || seen[c] {
			t.Errorf("code %q is empty or listed twice", c)
		}
		seen[c] = true
	}
}
