package redisstore_test

import (
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox/outboxtest"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// TestOutboxConformance runs the outbox.Backend suite against Redis
// (restart: SIGKILL and AOF reload).
func TestOutboxConformance(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true})
	prefixOf := map[outbox.Backend]string{}
	open := func(t *testing.T, prefix string) outbox.Backend {
		b := openDB(t, srv, prefix, "a").Outbox([]string{"+491710000001", "+491710000002"})
		prefixOf[b] = prefix
		return b
	}
	outboxtest.Run(t, outboxtest.Factory{
		New: func(t *testing.T) outbox.Backend { return open(t, prefixes(t)) },
		Reopen: func(t *testing.T, b outbox.Backend) outbox.Backend {
			srv.Kill()
			srv.Restart()
			return open(t, prefixOf[b])
		},
	})
}
