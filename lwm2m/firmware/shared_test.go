package firmware_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// memLeases is an in-memory lease table for the shared-mode tests.
type memLeases struct {
	mu   sync.Mutex
	held map[string]string
}

func (l *memLeases) lease(node string) func(ctx context.Context, name string) (context.Context, func(), error) {
	return func(ctx context.Context, name string) (context.Context, func(), error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if h := l.held[name]; h != "" {
			return nil, nil, fmt.Errorf("%s held by %s", name, h)
		}
		l.held[name] = node
		lctx, cancel := context.WithCancel(ctx)
		return lctx, func() {
			cancel()
			l.mu.Lock()
			delete(l.held, name)
			l.mu.Unlock()
		}, nil
	}
}

// TestSharedCampaign: two Managers on one campaign store (two nodes of a
// cluster), each running the steps of the devices it holds (split by a
// hash of the name) under step leases: the campaign created on one is
// found by the other, every light is updated exactly once, and both
// report it done.
func TestSharedCampaign(t *testing.T) {
	ls := &lights{}
	e := newEnv(t, ls)
	lights := fleet(t, e, ls, "sh-", 30)
	img := image(t, e, "2.2", 1500)
	db := openDB(t, t.TempDir())
	defer db.Close()
	st, err := firmware.NewBoltCampaigns(db)
	if err != nil {
		t.Fatal(err)
	}
	leases := &memLeases{held: map[string]string{}}
	holds := func(node int) func(string) bool {
		return func(ep string) bool {
			h := fnv.New32a()
			h.Write([]byte(ep))
			return int(h.Sum32()%2) == node
		}
	}
	var mgrs []*firmware.Manager
	for node := range 2 {
		m, err := firmware.NewManagerOn(st, e.upd, firmware.WithShared(firmware.Shared{
			Holds: holds(node), Lease: leases.lease(fmt.Sprint(node)), Poll: 50 * time.Millisecond}))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		mgrs = append(mgrs, m)
	}
	o := fast()
	o.AwakeWindow = 5 * time.Second
	id, err := mgrs[0].Create(t.Context(), firmware.Spec{Name: "shared", Image: img.ID, Prefix: "sh-", Concurrency: 8,
		Backoff: 100 * time.Millisecond, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range mgrs {
		var rep firmware.Report
		deadline := time.Now().Add(2 * time.Minute)
		for {
			rep, err = m.Wait(ctxT(t, time.Minute), id)
			if err == nil || !errors.Is(err, firmware.ErrNotFound) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond) // node 1 finds it at its next poll
		}
		if err != nil || rep.Status != firmware.CampaignDone || rep.Counts[firmware.DevDone] != len(lights) {
			t.Fatalf("node %d: %v %s %v", i, err, rep.Status, rep.Counts)
		}
	}
	for _, l := range lights {
		if n := l.dev.Applied(); n != 1 {
			t.Errorf("%s applied %d updates", l.c.Name(), n)
		}
	}
}
