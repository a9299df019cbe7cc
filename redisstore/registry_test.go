package redisstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry/registrytest"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
	"github.com/m2mbearer/m2mbearer/lwm2m/server/bindingstest"
	"github.com/m2mbearer/m2mbearer/redisstore"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// prefixes gives each store of a test its own key space in one server.
var prefixes = func() func(t *testing.T) string {
	n := 0
	return func(t *testing.T) string { n++; return fmt.Sprintf("t%d:", n) }
}()

func openDB(t *testing.T, srv *redistest.Server, prefix, node string) *redisstore.DB {
	t.Helper()
	db, err := redisstore.Open(context.Background(), srv.URL(), redisstore.Options{Prefix: prefix, Node: node})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestRegistryConformance runs the registry.Store suite against Redis,
// with a restart (a new Registry over the same keys) and a peer node.
func TestRegistryConformance(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefixOf := map[registry.Store]string{}
	open := func(t *testing.T, prefix string, o registry.Options) registry.Store {
		db := openDB(t, srv, prefix, "n")
		r, err := db.OpenRegistry(context.Background(), redisstore.RegistryOptions{Options: o})
		if err != nil {
			t.Fatal(err)
		}
		prefixOf[r] = prefix
		return r
	}
	registrytest.Run(t, registrytest.Factory{
		New: func(t *testing.T, o registry.Options) registry.Store { return open(t, prefixes(t), o) },
		Reopen: func(t *testing.T, s registry.Store, o registry.Options) registry.Store {
			s.Close()
			return open(t, prefixOf[s], o)
		},
		Peer: func(t *testing.T, s registry.Store, o registry.Options) registry.Store {
			return open(t, prefixOf[s], o)
		},
	})
}

// TestBindingsConformance runs the BindingStore suite against Redis, with
// a peer node.
func TestBindingsConformance(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefixOf := map[server.BindingStore]string{}
	open := func(t *testing.T, prefix string, max int) server.BindingStore {
		b, err := openDB(t, srv, prefix, "n").OpenBindings(context.Background(), max)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		prefixOf[b] = prefix
		return b
	}
	bindingstest.Run(t, bindingstest.Factory{
		New:  func(t *testing.T, max int) server.BindingStore { return open(t, prefixes(t), max) },
		Peer: func(t *testing.T, s server.BindingStore) server.BindingStore { return open(t, prefixOf[s], 0) },
	})
}
