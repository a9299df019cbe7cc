package bearer_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
)

// deadlineConn is a pipe bearer that records the deadlines it is given.
type deadlineConn struct {
	*pipe.Conn
	mu        sync.Mutex
	deadlines []time.Time
}

func (c *deadlineConn) WriteToBefore(p []byte, a net.Addr, d time.Time) (int, error) {
	c.mu.Lock()
	c.deadlines = append(c.deadlines, d)
	c.mu.Unlock()
	return c.Conn.WriteTo(p, a)
}

// TestFireExpires: a fired request with Expires reaches a DeadlineWriter
// bearer with that deadline; without Expires it is a plain write.
func TestFireExpires(t *testing.T) {
	hub, err := pipe.NewHub(pipe.WithParams(fastParams(5*time.Second, 0)))
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := hub.Conn("srv")
	dc := &deadlineConn{Conn: sc}
	srv, err := bearer.NewEndpoint(dc)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dev, _ := hub.Conn("dev")
	defer dev.Close()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	for _, tc := range []struct {
		name    string
		expires time.Time
	}{
		{"with Expires", exp},
		{"without Expires", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := bearer.NewRequest(codes.POST, pipe.Addr("dev"), "/1/0/8")
			req.Type, req.Expires = message.NonConfirmable, tc.expires
			if err := srv.Fire(context.Background(), req, time.Minute); err != nil {
				t.Fatal(err)
			}
			readRaw(t, dev, 2*time.Second)
		})
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if len(dc.deadlines) != 1 || !dc.deadlines[0].Equal(exp) {
		t.Fatalf("deadlines %v, want [%v]", dc.deadlines, exp)
	}
}
