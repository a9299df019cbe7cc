package outbox_test

import (
	"path/filepath"
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox/outboxtest"
)

// TestBackendConformance runs the outbox.Backend suite against the bbolt
// file (redisstore runs it against Redis).
func TestBackendConformance(t *testing.T) {
	paths := map[outbox.Backend]string{}
	open := func(t *testing.T, p string) outbox.Backend {
		b, err := outbox.OpenBolt(p)
		if err != nil {
			t.Fatal(err)
		}
		paths[b] = p
		return b
	}
	outboxtest.Run(t, outboxtest.Factory{
		New: func(t *testing.T) outbox.Backend { return open(t, filepath.Join(t.TempDir(), "o.db")) },
		Reopen: func(t *testing.T, b outbox.Backend) outbox.Backend {
			b.Close()
			return open(t, paths[b])
		},
	})
}
