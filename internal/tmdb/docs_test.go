package tmdb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/testenv"
)

// docRow is one feature as docs/features.md lists it.
type docRow struct{ Group, Feature, Type, Formula string }

// TestDocsListFeatures keeps docs/features.md in step with Groups: under a
// "## movie_..." heading, the table rows must be exactly that group's
// features, types and formulas (the descriptions), in order.
func TestDocsListFeatures(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "features.md"))
	if err != nil {
		t.Fatal(err)
	}
	var got []docRow
	group := ""
	for line := range strings.Lines(string(doc)) {
		line = strings.TrimSpace(line)
		if h, ok := strings.CutPrefix(line, "## "); ok {
			group = ""
			if strings.HasPrefix(h, "movie_") {
				group = h
			}
			continue
		}
		if group == "" || !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.Trim(strings.TrimSpace(cells[i]), "`")
		}
		if len(cells) != 3 {
			t.Errorf("%s: row %q does not have 3 cells", group, line)
			continue
		}
		if cells[0] == "feature" || strings.HasPrefix(cells[0], "---") {
			continue
		}
		got = append(got, docRow{group, cells[0], cells[1], cells[2]})
	}

	var want []docRow
	var tables strings.Builder
	for _, g := range Groups() {
		tables.WriteString("## " + g.Name + "\n\n" + g.Description + "\n\n| feature | type | formula |\n|---|---|---|\n")
		for _, f := range g.Features {
			want = append(want, docRow{g.Name, f.Name, string(f.Type), f.Description})
			tables.WriteString("| `" + f.Name + "` | " + string(f.Type) + " | " + f.Description + " |\n")
		}
		tables.WriteString("\n")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("docs/features.md is out of date (-Groups +doc):\n%s\nThe group sections should read:\n\n%s", diff, tables.String())
	}
}
