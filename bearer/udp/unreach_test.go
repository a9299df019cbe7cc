package udp

import (
	"net"
	"testing"
	"time"
)

// closedPort returns a loopback UDP address nothing listens on.
func closedPort(t *testing.T) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a := c.LocalAddr().(*net.UDPAddr)
	c.Close()
	return a
}

// TestOnUnreachable: a datagram to a closed port is reported with its
// destination (the kernel's ICMP port unreachable), on the read path and on
// the next write alike, and later writes still go out.
func TestOnUnreachable(t *testing.T) {
	c, err := Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan string, 16)
	if !c.OnUnreachable(func(a net.Addr) { got <- a.String() }) {
		t.Skip("this platform does not report ICMP errors of unconnected sockets")
	}
	dead := closedPort(t)
	live, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	t.Run("read path", func(t *testing.T) {
		if _, err := c.WriteTo([]byte("ping"), dead); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 64)
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, _, _ = c.ReadFrom(buf)
		}()
		select {
		case a := <-got:
			if a != dead.String() {
				t.Fatalf("reported %s, want %s", a, dead)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("no report of the ICMP port unreachable")
		}
		_ = c.SetReadDeadline(time.Now())
		<-done
		_ = c.SetReadDeadline(time.Time{})
	})
	t.Run("write path", func(t *testing.T) {
		if _, err := c.WriteTo([]byte("ping"), dead); err != nil {
			t.Fatal(err)
		}
		// The next send to a live peer takes the pending report and
		// still goes out.
		time.Sleep(50 * time.Millisecond)
		if _, err := c.WriteTo([]byte("hello"), live.LocalAddr()); err != nil {
			t.Fatalf("write after an ICMP error: %v", err)
		}
		buf := make([]byte, 64)
		_ = live.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, _, err := live.ReadFrom(buf); err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("live peer got %q %v", buf[:n], err)
		}
		select {
		case a := <-got:
			if a != dead.String() {
				t.Fatalf("reported %s, want %s", a, dead)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("no report on the write path")
		}
	})
	if c.Stats().Refused < 2 {
		t.Fatalf("Refused %d, want 2", c.Stats().Refused)
	}
}
