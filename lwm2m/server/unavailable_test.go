package server

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// downErr is what a shared store returns while its backend is out of
// reach (redisstore's *UnavailableError has the same method).
type downErr struct{}

func (downErr) Error() string     { return "store backend out of reach" }
func (downErr) Unavailable() bool { return true }

// flakyStore fails every change while down is set.
type flakyStore struct {
	registry.Store
	down atomic.Bool
}

func (f *flakyStore) Add(ctx context.Context, r *registry.Registration) (*registry.Registration, error) {
	if f.down.Load() {
		return nil, downErr{}
	}
	return f.Store.Add(ctx, r)
}

func (f *flakyStore) Update(ctx context.Context, id uint64, fn func(*registry.Registration) (*registry.Registration, error)) (*registry.Registration, *registry.Registration, error) {
	if f.down.Load() {
		return nil, nil, downErr{}
	}
	return f.Store.Update(ctx, id, fn)
}

func (f *flakyStore) Remove(ctx context.Context, id uint64) (*registry.Registration, error) {
	if f.down.Load() {
		return nil, downErr{}
	}
	return f.Store.Remove(ctx, id)
}

// TestStoreUnavailable: while the registry store is out of reach,
// Register, Update and De-register get 5.03 with Max-Age 5 and a
// diagnostic saying so (never 4.04, which would make a client register
// again, nor 5.00), counted in Stats.Unavailable and not as "registry
// full"; once it is back, the same requests succeed.
func TestStoreUnavailable(t *testing.T) {
	st := &flakyStore{Store: new(registry.Memory)}
	srv, err := New(st, WithNoSecRule(NoSecAll()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	p := udpPeer(5683)
	reg := p.call(srv, codes.POST, "/rd?ep=lamp&lt=300&lwm2m=1.1", "</3/0>")
	if reg.code != codes.Created {
		t.Fatalf("register %v", reg.code)
	}
	loc := "/rd/" + string(reg.opts[len(reg.opts)-1].Value)
	st.down.Store(true)
	for _, tc := range []struct {
		name string
		code codes.Code
		uri  string
		body []string
	}{
		{"register", codes.POST, "/rd?ep=lamp2&lt=300&lwm2m=1.1", []string{"</3/0>"}},
		{"update", codes.POST, loc + "?lt=600", nil},
		{"de-register", codes.DELETE, loc, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := p.call(srv, tc.code, tc.uri, tc.body...)
			if w.code != codes.ServiceUnavailable || !strings.Contains(string(w.payload), "unavailable") {
				t.Fatalf("%v %q", w.code, w.payload)
			}
			if ma, err := w.opts.GetUint32(message.MaxAge); err != nil || ma != 5 {
				t.Fatalf("Max-Age %d %v", ma, err)
			}
		})
	}
	if s := srv.Stats(); s.Unavailable.Load() != 3 || s.Full.Load() != 0 {
		t.Fatalf("Unavailable %d Full %d", s.Unavailable.Load(), s.Full.Load())
	}
	st.down.Store(false)
	if w := p.call(srv, codes.POST, loc+"?lt=600"); w.code != codes.Changed {
		t.Fatalf("update after the outage: %v", w.code)
	}
	if !Unavailable(downErr{}) || Unavailable(errors.New("x")) || Unavailable(nil) {
		t.Fatal("Unavailable")
	}
}
