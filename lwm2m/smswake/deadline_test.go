package smswake

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

// deadlineConn records what the SMS waker writes and with which deadline.
type deadlineConn struct {
	net.PacketConn
	mu        sync.Mutex
	deadlines []time.Time
	plain     int
	wrote     chan struct{} // one token per write
}

func (c *deadlineConn) written() {
	select {
	case c.wrote <- struct{}{}:
	default:
	}
}

func (c *deadlineConn) WriteTo(p []byte, a net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.plain++
	c.written()
	return len(p), nil
}

func (c *deadlineConn) WriteToBefore(p []byte, a net.Addr, d time.Time) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadlines = append(c.deadlines, d)
	c.written()
	return len(p), nil
}

// TestWakeCarriesEarliestDeadline: the wake-up of a device is written with
// the earliest expiry of its queued requests, so the SMS outbox can send
// the most urgent wake-ups first.
func TestWakeCarriesEarliestDeadline(t *testing.T) {
	conn := &deadlineConn{wrote: make(chan struct{}, 8)}
	m, err := queue.New(queue.Config{Store: queue.NewMemStore(), Executor: executor, Waker: New(conn, nil),
		Wake: queue.WakePolicy{MinInterval: time.Hour, Timeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	soon := time.Now().Add(3 * time.Minute).Truncate(time.Millisecond)
	// Requests queued before the device is wakeable, so one wake-up sees both.
	for _, exp := range []time.Time{time.Now().Add(time.Hour), soon} {
		if _, err := m.Enqueue(context.Background(), queue.Request{Endpoint: "lamp", Kind: queue.KindRead, Paths: []string{"/3/0"}, Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	m.SetDevice("lamp", queue.DeviceConfig{Wake: &queue.WakeTarget{MSISDN: "+491720000001", Version: "1.1", Trigger: true}})
	select {
	case <-conn.wrote:
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for a wake-up")
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.plain != 0 || len(conn.deadlines) != 1 || !conn.deadlines[0].Equal(soon) {
		t.Fatalf("deadlines %v (plain writes %d), want [%v]", conn.deadlines, conn.plain, soon)
	}
}
