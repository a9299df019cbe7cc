package registry_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry/registrytest"
)

// TestConformance runs the registry.Store suite against Memory and Bolt
// (redisstore runs it against Redis).
func TestConformance(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		registrytest.Run(t, registrytest.Factory{
			New: func(t *testing.T, o registry.Options) registry.Store {
				m, err := registry.NewMemory(o)
				if err != nil {
					t.Fatal(err)
				}
				return m
			},
		})
	})
	t.Run("bolt", func(t *testing.T) {
		dir := t.TempDir()
		n := 0
		open := func(t *testing.T, file string, o registry.Options) registry.Store {
			b, err := registry.OpenBolt(file, registry.BoltOptions{Options: o})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		registrytest.Run(t, registrytest.Factory{
			New: func(t *testing.T, o registry.Options) registry.Store {
				n++
				return open(t, filepath.Join(dir, fmt.Sprintf("s%d.db", n)), o)
			},
			Reopen: func(t *testing.T, s registry.Store, o registry.Options) registry.Store {
				file := fmt.Sprintf("s%d.db", n)
				s.Close()
				return open(t, filepath.Join(dir, file), o)
			},
		})
	})
}
