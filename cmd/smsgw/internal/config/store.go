package config

import (
	"fmt"
	"regexp"
	"time"

	"github.com/m2mbearer/m2mbearer/redisstore"
)

// RedisStore reports whether the shared state is kept in Redis (store:
// redis://... or rediss://...) rather than in the bbolt files under
// data_dir (store: "" or bbolt, the default). docs/redis.md.
func (c *Config) RedisStore() bool { return c.Store != "" && c.Store != "bbolt" }

var (
	prefixRE = regexp.MustCompile(`^[!-~]{1,64}$`)
	nodeRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// Cluster tunes several nodes on one Redis store (docs/cluster.md).
type Cluster struct {
	HeartbeatTTL time.Duration `yaml:"heartbeat_ttl"`
	LeaseTTL     time.Duration `yaml:"lease_ttl"`
	RPCTimeout   time.Duration `yaml:"rpc_timeout"`
}

func (c *Config) validateStore(ck *checker) {
	for _, d := range []struct {
		v    time.Duration
		name string
	}{{c.Cluster.HeartbeatTTL, "heartbeat_ttl"}, {c.Cluster.LeaseTTL, "lease_ttl"}, {c.Cluster.RPCTimeout, "rpc_timeout"}} {
		if d.v < 300*time.Millisecond || d.v > time.Hour {
			ck.add(fmt.Sprintf("%v: between 300ms and 1h", d.v), "cluster", d.name)
		}
	}
	if c.RedisStore() {
		if _, err := redisstore.ParseURL(c.Store); err != nil {
			ck.add(fmt.Sprintf("%v; use bbolt (the default) or redis://[user:pass@]host:port/db", err), "store")
		}
	}
	if !prefixRE.MatchString(c.StorePrefix) {
		ck.add(fmt.Sprintf("%q: 1 to 64 printable characters without spaces", c.StorePrefix), "store_prefix")
	}
	if c.Node != "" && !nodeRE.MatchString(c.Node) {
		ck.add(fmt.Sprintf("%q: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit", c.Node), "node")
	}
}
