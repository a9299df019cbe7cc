package queue_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue/storetest"
)

// TestStoreConformance runs the queue.Store suite against MemStore and
// BoltStore (redisstore runs it against Redis).
func TestStoreConformance(t *testing.T) {
	t.Run("mem", func(t *testing.T) {
		storetest.Run(t, storetest.Factory{New: func(*testing.T) queue.Store { return queue.NewMemStore() }})
	})
	t.Run("bolt", func(t *testing.T) {
		open := func(t *testing.T, p string) queue.Store {
			s, err := queue.OpenBoltStore(p, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		paths := map[queue.Store]string{}
		storetest.Run(t, storetest.Factory{
			New: func(t *testing.T) queue.Store {
				p := filepath.Join(t.TempDir(), "q.db")
				s := open(t, p)
				paths[s] = p
				return s
			},
			Reopen: func(t *testing.T, s queue.Store) queue.Store {
				s.Close()
				return open(t, paths[s])
			},
		})
	})
}
