// Package gwtest holds what the gateway's tests and the daemon's proof
// tests share: a data dir filled with many registrations, and busy ports.
//
// # Usage
//
//	dir := t.TempDir()
//	if err := gwtest.FillRegistrations(dir, 5000, 300); err != nil {
//		t.Fatal(err)
//	}
//	// start the gateway or the smsgw binary with data_dir: dir
//
//	tcp, udp := gwtest.BusyPorts(t) // start-up must refuse these
//
// # Design
//
// [FillRegistrations] writes registrations.db through the same
// bbolt-backed registry the gateway opens, so the file is what a gateway
// that had those devices would have left, not a hand-built imitation.
// Only tests import this package.
package gwtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// FillRegistrations writes n UDP registrations (endpoints light-00000,
// light-00001, ..., lifetime one day, LwM2M 1.1, an object list of about
// linkBytes of link format) into dir's registrations.db.
func FillRegistrations(dir string, n, linkBytes int) (err error) {
	// NoSync and many Adds at once: bbolt batches them (10 ms a batch).
	db, err := bolt.Open(filepath.Join(dir, "registrations.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Sync(), db.Close()) }()
	regs, err := registry.NewBolt(db, registry.BoltOptions{})
	if err != nil {
		return err
	}
	var objs []registry.ObjectLink
	for i := 0; len(objs)*12 < linkBytes; i++ {
		objs = append(objs, registry.ObjectLink{Object: 3300 + uint16(i)})
	}
	now := time.Now().UnixNano()
	const workers = 64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				r := &registry.Registration{Endpoint: fmt.Sprintf("light-%05d", i), Lifetime: 86400, Version: registry.V1_1,
					Binding: registry.BindingU, Objects: objs,
					Addr:       netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i%250 + 1)}), uint16(5683+i/250)),
					Registered: now, Updated: now}
				if _, err := regs.Add(context.Background(), r); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, regs.Close())...)
}

// BusyPorts holds a TCP and a UDP port on 127.0.0.1 for the test's life
// and returns their addresses, for start-up tests against ports in use.
func BusyPorts(t testing.TB) (tcp, udp string) {
	t.Helper()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close() })
	ul, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ul.Close() })
	return tl.Addr().String(), ul.LocalAddr().String()
}
