package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of the test's own on loopback: three
// masters and three replicas (six redis-server processes, created with
// redis-cli --cluster create), which the test may kill node by node.
// Cleanup kills every node.
type RedisCluster struct {
	tb    testing.TB
	Nodes []*Redis
}

// clusterNodeTimeout is how long a node may be unreachable before the
// others fail it over: short, so that a test's failover takes seconds.
const clusterNodeTimeout = "1000"

// StartRedisCluster starts a 6-node Redis Cluster (3 masters, 3 replicas)
// and waits until every node reports cluster_state:ok. It is skipped under
// go test -short; redis-server and redis-cli are required.
func StartRedisCluster(tb testing.TB) *RedisCluster {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs a Redis Cluster: skipped with -short")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Fatalf("redis-cli not installed: %v", err)
	}
	c := &RedisCluster{tb: tb}
	addrs := make([]string, 6)
	for i := range addrs {
		n := StartRedis(tb, RedisOptions{extraArgs: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", clusterNodeTimeout,
			// A replica may take over whatever its lag: the cache does not
			// rely on replicas being current.
			"--cluster-replica-validity-factor", "0",
		}})
		c.Nodes = append(c.Nodes, n)
		addrs[i] = n.Addr()
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil { // #nosec G204 -- redis-cli found on PATH by the test helper, arguments built by it
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(3)
	return c
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// URL is the cluster's URL for redis.ParseClusterURL: the first node, and
// the others as addr parameters.
func (c *RedisCluster) URL() string {
	var b strings.Builder
	b.WriteString("redis://" + c.Nodes[0].Addr())
	for i, n := range c.Nodes[1:] {
		if i == 0 {
			b.WriteString("?")
		} else {
			b.WriteString("&")
		}
		b.WriteString("addr=" + n.Addr())
	}
	return b.String()
}

// Running returns the nodes whose process runs.
func (c *RedisCluster) Running() []*Redis {
	var out []*Redis
	for _, n := range c.Nodes {
		n.mu.Lock()
		up := n.cmd != nil
		n.mu.Unlock()
		if up {
			out = append(out, n)
		}
	}
	return out
}

// NodeInfo returns the fields of INFO section of a node.
func (c *RedisCluster) NodeInfo(n *Redis, section string) (map[string]string, error) {
	client := redis.NewClient(&redis.Options{Addr: n.Addr(), DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, MaxRetries: -1})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		s   string
		err error
	)
	if section == "cluster" {
		s, err = client.ClusterInfo(ctx).Result()
	} else {
		s, err = client.Info(ctx, section).Result()
	}
	if err != nil {
		return nil, err
	}
	fields := make(map[string]string)
	for line := range strings.Lines(s) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	return fields, nil
}

// Masters returns the running nodes that are masters.
func (c *RedisCluster) Masters() []*Redis {
	var out []*Redis
	for _, n := range c.Running() {
		if f, err := c.NodeInfo(n, "replication"); err == nil && f["role"] == "master" {
			out = append(out, n)
		}
	}
	return out
}

// ReplicaOf returns the running replica of master, nil if it has none.
func (c *RedisCluster) ReplicaOf(master *Redis) *Redis {
	f, err := c.NodeInfo(master, "replication")
	if err != nil {
		c.tb.Fatalf("replication info of %s: %v", master.Addr(), err)
	}
	for _, n := range c.Running() {
		if strings.Contains(f["slave0"], "port="+strconv.Itoa(n.port)+",") {
			return n
		}
	}
	return nil
}

// WaitHealthy waits until every running node reports cluster_state:ok and
// sees masters masters among the running nodes, with every replica's link
// to its master up.
func (c *RedisCluster) WaitHealthy(masters int) {
	c.tb.Helper()
	Eventually(c.tb, 2*time.Minute, "redis cluster ok", func() (bool, string) {
		n := 0
		for _, node := range c.Running() {
			ci, err := c.NodeInfo(node, "cluster")
			if err != nil {
				return false, err.Error()
			}
			if ci["cluster_state"] != "ok" {
				return false, node.Addr() + " cluster_state " + ci["cluster_state"]
			}
			ri, err := c.NodeInfo(node, "replication")
			if err != nil {
				return false, err.Error()
			}
			switch ri["role"] {
			case "master":
				n++
			case "slave":
				if ri["master_link_status"] != "up" {
					return false, node.Addr() + " replica link " + ri["master_link_status"]
				}
			}
		}
		return n == masters, fmt.Sprintf("%d running masters, want %d", n, masters)
	})
}

// RedisSentinel is a master, its replica and one Sentinel watching them,
// of the test's own on loopback. Cleanup kills them.
type RedisSentinel struct {
	Master, Replica, Sentinel *Redis
	// MasterName is the name the Sentinel knows the master by.
	MasterName string
}

// StartRedisSentinel starts a master, a replica of it and a Sentinel
// (quorum 1, a master is down after 1s) and waits until the replica's link
// is up and the Sentinel knows the replica. It is skipped under go test
// -short.
func StartRedisSentinel(tb testing.TB) *RedisSentinel {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs Redis Sentinel: skipped with -short")
	}
	s := &RedisSentinel{MasterName: "fsmaster"}
	s.Master = StartRedis(tb, RedisOptions{})
	s.Replica = StartRedis(tb, RedisOptions{extraArgs: []string{"--replicaof", "127.0.0.1", strconv.Itoa(s.Master.port)}})
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server not installed: %v", err)
	}
	dir := tb.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	sentinel := &Redis{tb: tb, port: FreePort(tb), dir: dir}
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 10000\n",
		sentinel.port, dir, s.MasterName, s.Master.port, s.MasterName, s.MasterName)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	sentinel.args = []string{bin, conf, "--sentinel"}
	sentinel.start(false)
	tb.Cleanup(sentinel.Kill)
	s.Sentinel = sentinel
	Eventually(tb, time.Minute, "replica linked and known to the sentinel", func() (bool, string) {
		reply := s.Sentinel.Command("SENTINEL REPLICAS " + s.MasterName)
		return strings.HasPrefix(reply, "*1"), reply
	})
	return s
}

// URL is the Sentinel's URL for redis.ParseFailoverURL.
func (s *RedisSentinel) URL() string {
	return fmt.Sprintf("redis://%s?master_name=%s", s.Sentinel.Addr(), s.MasterName)
}
