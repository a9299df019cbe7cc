package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// pausingStore runs onLookup (once, when set) inside ByEndpoint, after
// it read the registration and before it returns it: what happens there
// happens between Execute resolving the device's address and the request
// going on the wire.
type pausingStore struct {
	registry.Store
	mu       sync.Mutex
	onLookup func()
}

func (s *pausingStore) ByEndpoint(name string) (*registry.Registration, bool) {
	reg, ok := s.Store.ByEndpoint(name)
	s.mu.Lock()
	f := s.onLookup
	s.onLookup = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return reg, ok
}

// TestQueueSendFollowsMoveDuringLookup: a queue-mode device re-registers
// from a new port while the server's Execute has resolved its old address
// but not yet put the request on the wire (nothing is in flight for the
// Register to steer). The request must still reach the device at its new
// port at once, not be retransmitted into the old, silent port (a stale
// NAT mapping) until ExecTimeout. Before the fix this hung for the whole
// ExecTimeout; TestShortTimerClient/silent_old_port hit it under load.
func TestQueueSendFollowsMoveDuringLookup(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := &pausingStore{Store: new(registry.Memory)}
	s, err := New(store, WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	uc, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := bearer.NewEndpoint(uc, bearer.WithHandler(s.Handler("udp")), bearer.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	s.Attach("udp", ep)
	q, err := s.EnableQueue(QueueConfig{Config: queue.Config{Store: queue.NewMemStore(), DefaultWindow: time.Hour, ExecTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(); s.Close(); ep.Close() })

	// The old port swallows datagrams; the new one is the device.
	old, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { old.Close() })
	dc, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := bearer.NewEndpoint(dc, bearer.WithLogger(quiet), bearer.WithHandler(bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		_ = w.WriteResponse(codes.Content, []byte("ACME"))
	})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })

	const name = "moved-during-lookup"
	reg := queueReg(name, registry.V1_1, registry.BindingU, true, "")
	reg.Addr = old.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, err := store.Add(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	s.addrs.set(reg)
	s.queueRegistered(reg, "udp", true)

	newAddr := dc.LocalAddr().(*net.UDPAddr).AddrPort()
	store.mu.Lock()
	store.onLookup = func() {
		// The device's Update from its new port, handled in full
		// (store, then queue mode) while Execute holds the old address.
		_, cur, err := store.Store.Update(context.Background(), reg.ID, func(o *registry.Registration) (*registry.Registration, error) {
			n := *o
			n.Addr = netip.AddrPortFrom(newAddr.Addr(), newAddr.Port())
			return &n, nil
		})
		if err != nil {
			t.Error(err)
			return
		}
		s.addrs.del(reg)
		s.addrs.set(cur)
		s.queueRegistered(cur, "udp", false)
	}
	store.mu.Unlock()

	id, err := q.Enqueue(context.Background(), queue.Request{Endpoint: name, Kind: queue.KindRead, Paths: []string{"/3/0/0"}, ContentFormat: queue.NoContentFormat})
	if err != nil {
		t.Fatal(err)
	}
	// Well under ExecTimeout (1 min) and under the old port's first
	// retransmission's give-up: only a request steered to the new port
	// is done by then.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := q.Wait(ctx, id)
	if err != nil || rec.State != queue.StateDone || string(rec.Result.Payload) != "ACME" {
		t.Fatalf("request %d: %+v %v", id, rec, err)
	}
	if rec.Attempt.N != 1 {
		t.Fatalf("attempts %d, want 1 (steered, not re-queued)", rec.Attempt.N)
	}
	store.mu.Lock()
	armed := store.onLookup != nil
	store.mu.Unlock()
	if armed {
		t.Fatal("the move was never injected during the lookup")
	}
}
