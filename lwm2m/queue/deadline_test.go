package queue

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// deadlineConn records what the SMS waker writes and with which deadline.
type deadlineConn struct {
	net.PacketConn
	mu        sync.Mutex
	deadlines []time.Time
	plain     int
}

func (c *deadlineConn) WriteTo(p []byte, a net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.plain++
	return len(p), nil
}

func (c *deadlineConn) WriteToBefore(p []byte, a net.Addr, d time.Time) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadlines = append(c.deadlines, d)
	return len(p), nil
}

// TestWakeCarriesEarliestDeadline: the wake-up of a device is written with
// the earliest expiry of its queued requests, so the SMS outbox can send
// the most urgent wake-ups first.
func TestWakeCarriesEarliestDeadline(t *testing.T) {
	conn := &deadlineConn{}
	m, err := New(Config{Store: NewMemStore(), Executor: newFleet(), Waker: NewSMSWaker(conn, nil),
		Wake: WakePolicy{MinInterval: time.Hour, Timeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	soon := time.Now().Add(3 * time.Minute).Truncate(time.Millisecond)
	// Requests queued before the device is wakeable, so one wake-up sees both.
	for _, exp := range []time.Time{time.Now().Add(time.Hour), soon} {
		if _, err := m.Enqueue(context.Background(), Request{Endpoint: "lamp", Kind: KindRead, Paths: []string{"/3/0"}, Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	m.SetDevice("lamp", DeviceConfig{Wake: wakeable("+491720000001")})
	waitFor(t, "a wake-up", func() bool {
		conn.mu.Lock()
		defer conn.mu.Unlock()
		return len(conn.deadlines)+conn.plain > 0
	})
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.plain != 0 || len(conn.deadlines) != 1 || !conn.deadlines[0].Equal(soon) {
		t.Fatalf("deadlines %v (plain writes %d), want [%v]", conn.deadlines, conn.plain, soon)
	}
}
