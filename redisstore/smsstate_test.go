package redisstore_test

import (
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/statetest"
	"github.com/m2mbearer/m2mbearer/redisstore"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// TestSMSStateConformance runs the StateStore and RateLimiter suites
// against Redis: restart by SIGKILL and AOF reload, and a peer node.
func TestSMSStateConformance(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true})
	prefixOf := map[sms.StateStore]string{}
	open := func(t *testing.T, prefix, node string) sms.StateStore {
		s := openDB(t, srv, prefix, node).SMSState()
		prefixOf[s] = prefix
		return s
	}
	statetest.Run(t, statetest.Factory{
		New: func(t *testing.T) sms.StateStore { return open(t, prefixes(t), "a") },
		Reopen: func(t *testing.T, s sms.StateStore) sms.StateStore {
			srv.Kill()
			srv.Restart()
			return open(t, prefixOf[s], "a")
		},
		Peer: func(t *testing.T, s sms.StateStore) sms.StateStore { return open(t, prefixOf[s], "b") },
	})
	t.Run("limiter", func(t *testing.T) {
		dbOf := map[sms.RateLimiter]*redisstore.DB{}
		statetest.RunLimiter(t, statetest.LimiterFactory{
			New: func(t *testing.T, rate float64, burst int) sms.RateLimiter {
				db := openDB(t, srv, prefixes(t), "a")
				l := db.RateLimiter(rate, burst)
				dbOf[l] = db
				return l
			},
			Peer: func(t *testing.T, l sms.RateLimiter, rate float64, burst int) sms.RateLimiter {
				return openDB(t, srv, dbOf[l].Prefix(), "b").RateLimiter(rate, burst)
			},
		})
	})
}
