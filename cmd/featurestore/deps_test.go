package main

import (
	"os/exec"
	"strings"
	"testing"
)

// testOnly are the module paths (or path prefixes) that only tests use:
// the deployment checks parse manifests with the Kubernetes API types and
// the compose file with compose-go, and the test support packages compare
// with go-cmp. They share go.mod with the service but must never be linked
// into its binary.
var testOnly = []string{
	"k8s.io/",
	"sigs.k8s.io/",
	"github.com/compose-spec/compose-go/",
	"github.com/santhosh-tekuri/jsonschema/",
	"github.com/google/go-cmp/",
	"github.com/featurestore/featurestore/internal/testenv",
	"github.com/featurestore/featurestore/internal/store/storetest",
}

// TestBinaryLinksNoTestOnlyPackage lists the packages the featurestore
// binary is built from and fails if any of them belongs to a test-only
// dependency: one module keeps go.mod simple, and this test is what keeps
// the binary's dependency graph clean.
func TestBinaryLinksNoTestOnlyPackage(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the binary's packages")
	}
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	pkgs := strings.Fields(string(out))
	seen := map[string]bool{}
	for _, pkg := range pkgs {
		seen[pkg] = true
		for _, prefix := range testOnly {
			if strings.HasPrefix(pkg, prefix) {
				t.Errorf("the featurestore binary links %s, a test-only package", pkg)
			}
		}
	}
	// The listing must be the real graph, not an empty or partial one.
	for _, want := range []string{
		"github.com/featurestore/featurestore/internal/app",
		"github.com/jackc/pgx/v5",
		"github.com/redis/go-redis/v9",
		"modernc.org/sqlite",
	} {
		if !seen[want] {
			t.Errorf("go list -deps . does not list %s; got %d packages", want, len(pkgs))
		}
	}
}
