package config

import (
	"fmt"
	"regexp"

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

func (c *Config) validateStore(ck *checker) {
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
