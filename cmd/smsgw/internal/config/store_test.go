package config

import (
	"errors"
	"strings"
	"testing"
)

func TestStoreOptions(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		redis      bool
		field      string // "" when valid
	}{
		{"default is bbolt", "", false, ""},
		{"bbolt by name", "store: bbolt\n", false, ""},
		{"redis", "store: redis://127.0.0.1:6379/0\n", true, ""},
		{"redis with user and password", "store: redis://smsgw:s3cret@redis.example:6380/2\n", true, ""},
		{"rediss", "store: rediss://redis.example:6380/0\nstore_prefix: \"city-1:\"\nnode: gw-a\n", true, ""},
		{"other scheme", "store: mysql://db/x\n", true, "store"},
		{"no host", "store: redis:///0\n", true, "store"},
		{"bad db", "store: redis://h:6379/zero\n", true, "store"},
		{"query", "store: redis://h:6379/0?prefix=x\n", true, "store"},
		{"empty prefix", "store_prefix: \"\"\n", false, "store_prefix"},
		{"prefix with a space", "store_prefix: \"a b\"\n", false, "store_prefix"},
		{"bad node", "node: \"-x\"\n", false, "node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.RedisStore() != tc.redis {
					t.Fatalf("RedisStore %v", c.RedisStore())
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) != 1 || e.Problems[0].Field != tc.field || e.Problems[0].Line != 1 {
				t.Fatalf("err %v", err)
			}
			if strings.Contains(e.Error(), "s3cret") {
				t.Fatal("password in the message")
			}
		})
	}
}
