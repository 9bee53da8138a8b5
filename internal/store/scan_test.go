package store

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/featurestore/featurestore/internal/feature"
)

// pagesOf serves the rows of ids (sorted) the way a backend's query does:
// ids after the cursor, in order, at most limit. It counts the queries.
func pagesOf(ids []string, queries *int) func(after string, limit int) ([]feature.Row, error) {
	return func(after string, limit int) ([]feature.Row, error) {
		*queries++
		i := sort.SearchStrings(ids, after)
		if i < len(ids) && ids[i] == after {
			i++
		}
		var page []feature.Row
		for _, id := range ids[i:min(i+limit, len(ids))] {
			page = append(page, feature.Row{EntityID: id})
		}
		return page, nil
	}
}

func TestScanPages(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, scanPageSize - 1, scanPageSize, scanPageSize + 1, 2 * scanPageSize, 2*scanPageSize + 7} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("e%05d", i)
		}
		var queries int
		var got []string
		err := ScanPages(pagesOf(ids, &queries), func(r feature.Row) error {
			got = append(got, r.EntityID)
			return nil
		})
		if err != nil || !slices.Equal(got, ids) {
			t.Errorf("%d rows: ScanPages = %v, saw %d rows (want all %d in order)", n, err, len(got), n)
		}
		// A full page may have more behind it; a short one ends the scan.
		if want := n/scanPageSize + 1; queries != want {
			t.Errorf("%d rows: %d queries, want %d", n, queries, want)
		}
	}
}

func TestScanPagesStops(t *testing.T) {
	t.Parallel()
	ids := make([]string, 3*scanPageSize)
	for i := range ids {
		ids[i] = fmt.Sprintf("e%05d", i)
	}
	stop := errors.New("stop")
	calls, queries := 0, 0
	err := ScanPages(pagesOf(ids, &queries), func(feature.Row) error {
		calls++
		if calls == scanPageSize+2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != scanPageSize+2 || queries != 2 {
		t.Errorf("fn failing: ScanPages = %v after %d calls and %d queries, want %v after %d and 2", err, calls, queries, stop, scanPageSize+2)
	}

	failed := errors.New("query failed")
	calls = 0
	err = ScanPages(func(after string, limit int) ([]feature.Row, error) {
		if after != "" {
			return nil, failed
		}
		return pagesOf(ids, new(int))(after, limit)
	}, func(feature.Row) error { calls++; return nil })
	if !errors.Is(err, failed) || calls != scanPageSize {
		t.Errorf("second page failing: ScanPages = %v after %d calls, want %v after %d", err, calls, failed, scanPageSize)
	}
}
