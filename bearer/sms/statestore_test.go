package sms_test

import (
	"path/filepath"
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/statetest"
)

// TestStateStoreConformance runs the StateStore and RateLimiter suites
// against the defaults (redisstore runs them against Redis).
func TestStateStoreConformance(t *testing.T) {
	paths := map[sms.StateStore]string{}
	open := func(t *testing.T, p string) sms.StateStore {
		s, err := sms.OpenBoltState(p)
		if err != nil {
			t.Fatal(err)
		}
		paths[s] = p
		return s
	}
	statetest.Run(t, statetest.Factory{
		New: func(t *testing.T) sms.StateStore { return open(t, filepath.Join(t.TempDir(), "s.db")) },
		Reopen: func(t *testing.T, s sms.StateStore) sms.StateStore {
			s.Close()
			return open(t, paths[s])
		},
	})
	t.Run("limiter", func(t *testing.T) {
		statetest.RunLimiter(t, statetest.LimiterFactory{
			New: func(_ *testing.T, rate float64, burst int) sms.RateLimiter { return sms.NewRateLimiter(rate, burst, 0) },
		})
	})
}
