package cache

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestNewRedisClientParsesEachMode(t *testing.T) {
	t.Parallel()
	t.Run("single", func(t *testing.T) {
		c, err := NewRedisClient(RedisSingle, "rediss://:pw@cache.example:6380/2?read_timeout=1s", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		o := c.(*redis.Client).Options()
		if o.Addr != "cache.example:6380" || o.DB != 2 || o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example" {
			t.Errorf("options = addr %q db %d tls %v, want cache.example:6380, 2, TLS", o.Addr, o.DB, o.TLSConfig)
		}
		if o.ReadTimeout != time.Second || o.WriteTimeout != DefaultWriteTimeout || o.MaxRetries > 0 {
			t.Errorf("timeouts = read %v write %v retries %d, want the URL's 1s, the default %v, no retries",
				o.ReadTimeout, o.WriteTimeout, o.MaxRetries, DefaultWriteTimeout)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		c, err := NewRedisClient(RedisCluster, "rediss://h1:7000?addr=h2:7001&addr=h3:7002&dial_timeout=2s", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		o := c.(*redis.ClusterClient).Options()
		if strings.Join(o.Addrs, ",") != "h1:7000,h2:7001,h3:7002" || o.TLSConfig == nil {
			t.Errorf("addrs %v tls %v, want the three seeds with TLS", o.Addrs, o.TLSConfig)
		}
		if o.DialTimeout != 2*time.Second || o.ReadTimeout != DefaultReadTimeout || o.MaxRetries > 0 || o.MaxRedirects != 0 {
			t.Errorf("dial %v read %v retries %d redirects %d, want 2s, %v, no retries, no redirects",
				o.DialTimeout, o.ReadTimeout, o.MaxRetries, o.MaxRedirects, DefaultReadTimeout)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		c, err := NewRedisClient(RedisSentinel, "redis://s1:26379?addr=s2:26379&master_name=cache", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if _, ok := c.(*redis.Client); !ok {
			t.Errorf("sentinel client = %T, want a failover *redis.Client", c)
		}
	})
	for _, tc := range []struct{ mode, url, want string }{
		{RedisSentinel, "redis://s1:26379", "master_name is required"},
		{RedisCluster, "http://h1:7000", "invalid URL scheme"},
		{RedisSingle, "redis://h1:7000/x", "invalid database number"},
		{RedisCluster, "redis://h1:7000?bogus=1", "bogus"},
		{"ring", "redis://h1:7000", "must be single, cluster or sentinel"},
	} {
		if err := ValidateRedisURL(tc.mode, tc.url); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateRedisURL(%s, %s) = %v, want an error containing %q", tc.mode, tc.url, err, tc.want)
		}
	}
}
