package app

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestGoRedisMessagesGoToTheJSONLog(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	routeRedisLogs(zap.New(core))
	redisLogger{}.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts", 1)
	entries := logs.All()
	if len(entries) != 1 || entries[0].Level != zap.WarnLevel ||
		entries[0].Message != "redis: connection pool: failed to dial after 1 attempts" ||
		entries[0].ContextMap()["component"] != "go-redis" {
		t.Fatalf("go-redis message logged as %+v", entries)
	}
}
