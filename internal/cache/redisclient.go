package cache

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"

	"github.com/redis/go-redis/v9"
)

// The Redis deployments the cache can use (--redis-mode).
const (
	// RedisSingle is one server (or a proxy): the URL is parsed by
	// redis.ParseURL.
	RedisSingle = "single"
	// RedisCluster is a Redis Cluster: the URL names one or more seed nodes,
	// redis://h1:p1?addr=h2:p2&addr=h3:p3, parsed by redis.ParseClusterURL.
	RedisCluster = "cluster"
	// RedisSentinel is a master watched by Sentinels: the URL names the
	// Sentinels and the master, redis://s1:26379?addr=s2:26379&master_name=m,
	// parsed by redis.ParseFailoverURL.
	RedisSentinel = "sentinel"
)

// RedisModes lists the modes, for help texts and validation.
var RedisModes = []string{RedisSingle, RedisCluster, RedisSentinel}

// clientDefaults are the cache's client settings for what the URL leaves
// unset (see RedisOptionsFromURL).
type clientDefaults struct {
	q url.Values
}

func newClientDefaults(rawURL string) (clientDefaults, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return clientDefaults{}, fmt.Errorf("parse redis url: %w", err)
	}
	return clientDefaults{q: u.Query()}, nil
}

// apply sets the cache's defaults on the fields of a client's options that
// the URL did not set.
func (d clientDefaults) apply(dial, read, write, pool *int64, maxRetries, dialerRetries *int) {
	set := func(p *int64, name string, v int64) {
		if !d.q.Has(name) {
			*p = v
		}
	}
	set(dial, "dial_timeout", int64(DefaultDialTimeout))
	set(read, "read_timeout", int64(DefaultReadTimeout))
	set(write, "write_timeout", int64(DefaultWriteTimeout))
	set(pool, "pool_timeout", int64(DefaultPoolTimeout))
	if !d.q.Has("max_retries") {
		*maxRetries = -1
	}
	if !d.q.Has("dialer_retries") {
		*dialerRetries = 1
	}
}

// NewRedisClient parses rawURL for mode (RedisSingle, RedisCluster or
// RedisSentinel; "" is RedisSingle) with go-redis's own parser, applies the
// cache's defaults for what the URL leaves unset (see RedisOptionsFromURL;
// on a cluster also no redirect retries, max_redirects=-1, so that a
// topology change is an error the cache sees rather than a silent
// re-route), and returns the client. onConnect, if not nil, runs on every
// new connection. rediss:// enables TLS in every mode; configureTLS, if not
// nil, is called with the TLS configuration the URL gives (nil for a plain
// redis:// URL) to complete it (CA, client certificate) or refuse it.
func NewRedisClient(mode, rawURL string, onConnect func(context.Context, *redis.Conn) error, configureTLS func(*tls.Config) error) (redis.UniversalClient, error) {
	tlsOf := func(c *tls.Config) error {
		if configureTLS == nil {
			return nil
		}
		return configureTLS(c)
	}
	d, err := newClientDefaults(rawURL)
	if err != nil {
		return nil, err
	}
	switch mode {
	case RedisSingle, "":
		opts, err := RedisOptionsFromURL(rawURL)
		if err != nil {
			return nil, err
		}
		opts.OnConnect = onConnect
		if err := tlsOf(opts.TLSConfig); err != nil {
			return nil, err
		}
		return redis.NewClient(opts), nil
	case RedisCluster:
		opts, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("parse redis cluster url: %w", err)
		}
		d.apply((*int64)(&opts.DialTimeout), (*int64)(&opts.ReadTimeout), (*int64)(&opts.WriteTimeout),
			(*int64)(&opts.PoolTimeout), &opts.MaxRetries, &opts.DialerRetries)
		if !d.q.Has("max_redirects") {
			opts.MaxRedirects = -1
		}
		opts.OnConnect = onConnect
		if err := tlsOf(opts.TLSConfig); err != nil {
			return nil, err
		}
		return redis.NewClusterClient(opts), nil
	case RedisSentinel:
		opts, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("parse redis sentinel url: %w", err)
		}
		if opts.MasterName == "" {
			return nil, fmt.Errorf("parse redis sentinel url: master_name is required (redis://sentinel:26379?master_name=mymaster)")
		}
		d.apply((*int64)(&opts.DialTimeout), (*int64)(&opts.ReadTimeout), (*int64)(&opts.WriteTimeout),
			(*int64)(&opts.PoolTimeout), &opts.MaxRetries, &opts.DialerRetries)
		opts.OnConnect = onConnect
		if err := tlsOf(opts.TLSConfig); err != nil {
			return nil, err
		}
		return redis.NewFailoverClient(opts), nil
	default:
		return nil, fmt.Errorf("redis mode %q: must be single, cluster or sentinel", mode)
	}
}

// ValidateRedisURL reports whether rawURL is a valid URL for mode, as
// NewRedisClient would parse it, without connecting.
func ValidateRedisURL(mode, rawURL string) error {
	c, err := NewRedisClient(mode, rawURL, nil, nil)
	if err != nil {
		return err
	}
	return c.Close()
}
