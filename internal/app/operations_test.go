package app

import (
	"testing"

	"github.com/featurestore/featurestore/internal/metrics"
	"github.com/featurestore/featurestore/internal/service"
)

// The metrics package pre-creates series for the operation names the
// service reports; the two lists live in separate packages (the service
// does not depend on metrics), so this test keeps them equal.
func TestServiceOperationsMatchMetricsOperations(t *testing.T) {
	pairs := [][2]string{
		{service.OpGetEntity, metrics.OpGetEntity},
		{service.OpGetEntityAsOf, metrics.OpGetEntityAsOf},
		{service.OpGetOnlineFeatures, metrics.OpGetOnlineFeatures},
		{service.OpIngest, metrics.OpIngest},
		{service.OpWriteRows, metrics.OpWriteRows},
		{service.OpListGroups, metrics.OpListGroups},
		{service.OpGetGroup, metrics.OpGetGroup},
		{service.OpPutGroup, metrics.OpPutGroup},
		{service.OpDeleteGroup, metrics.OpDeleteGroup},
		{service.OpStats, metrics.OpStats},
		{service.OpRecompute, metrics.OpRecompute},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("service operation %q is %q in metrics", p[0], p[1])
		}
	}
}
