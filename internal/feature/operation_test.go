package feature

import "testing"

// The operations are metric label values: each must be distinct and a valid
// name (bounded, no characters a label value would have to escape).
func TestOperationsAreDistinctNames(t *testing.T) {
	ops := Operations()
	if len(ops) == 0 {
		t.Fatal("no operations")
	}
	seen := map[Operation]bool{}
	for _, op := range ops {
		if !ValidName(string(op)) {
			t.Errorf("operation %q is not a valid name", op)
		}
		if seen[op] {
			t.Errorf("operation %q listed twice", op)
		}
		seen[op] = true
	}
}
