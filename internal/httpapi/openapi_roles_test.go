package httpapi

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/api"
	"github.com/featurestore/featurestore/internal/auth"
)

// documentedRoles returns "METHOD path role" for every operation of the
// OpenAPI document, from the x-required-role line of each operation, and
// the operations whose security is [] (public).
func documentedRoles(t *testing.T) (roles, public []string) {
	t.Helper()
	pathRE := regexp.MustCompile(`^  (/\S*):\s*$`)
	methodRE := regexp.MustCompile(`^    (get|put|post|delete):`)
	roleRE := regexp.MustCompile(`^      x-required-role: (\w+)$`)
	var path, op string
	for line := range strings.Lines(string(api.OpenAPI)) {
		line = strings.TrimRight(line, "\r\n")
		switch m := pathRE.FindStringSubmatch(line); {
		case m != nil:
			path, op = m[1], ""
			continue
		case !strings.HasPrefix(line, "  "):
			path, op = "", ""
			continue
		}
		if m := methodRE.FindStringSubmatch(line); m != nil && path != "" {
			op = strings.ToUpper(m[1]) + " " + path
		}
		if m := roleRE.FindStringSubmatch(line); m != nil && op != "" {
			roles = append(roles, op+" "+m[1])
		}
		if line == "      security: []" && op != "" {
			public = append(public, op)
		}
	}
	slices.Sort(roles)
	slices.Sort(public)
	return roles, public
}

// TestOpenAPIRolesMatchRouteTable: each operation documents the role its
// route needs (x-required-role), and exactly the public ones declare no
// security; the route table is the one owner of both.
func TestOpenAPIRolesMatchRouteTable(t *testing.T) {
	t.Parallel()
	var want, wantPublic []string
	for _, rt := range routes(Deps{}) {
		want = append(want, rt.method+" "+rt.pattern+" "+rt.role.String())
		if rt.role == auth.Anyone {
			wantPublic = append(wantPublic, rt.method+" "+rt.pattern)
		}
	}
	slices.Sort(want)
	slices.Sort(wantPublic)
	got, public := documentedRoles(t)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("route table (-) vs x-required-role (+):\n%s", diff)
	}
	if diff := cmp.Diff(wantPublic, public); diff != "" {
		t.Errorf("public routes (-) vs security: [] (+):\n%s", diff)
	}
}
