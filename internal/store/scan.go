package store

import "github.com/featurestore/featurestore/internal/feature"

// scanPageSize is how many rows ScanPages asks a backend for at a time.
const scanPageSize = 500

// ScanPages is the paging loop of a backend's ScanLatest: it calls page for
// the rows after the entity id after ("" first), at most limit of them in
// entity id order, and fn with each row, until a page comes back short. No
// query is open while fn runs. It stops at the first error of page or fn.
func ScanPages(page func(after string, limit int) ([]feature.Row, error), fn func(feature.Row) error) error {
	after := ""
	for {
		rows, err := page(after, scanPageSize)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(rows) < scanPageSize {
			return nil
		}
		after = rows[len(rows)-1].EntityID
	}
}
