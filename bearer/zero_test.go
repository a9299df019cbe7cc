package bearer_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
)

// TestZeroValues: the zero ServeMux routes like NewServeMux's (Handle
// panicked on its nil map); a zero Endpoint is a closed one; a zero pipe
// Hub works and a zero Conn is closed; a zero udp.Conn is closed.
// internal/zerovalue calls every method of every exported type this way.
func TestZeroValues(t *testing.T) {
	t.Run("ServeMux", func(t *testing.T) {
		var mux bearer.ServeMux
		mux.HandleFunc("/a", func(w bearer.ResponseWriter, _ *bearer.Request) { _ = w.WriteResponse(codes.Content, nil) })
		mux.Handle("/fw/", bearer.NotFoundHandler())
		if mux.Handler("/a") == nil || mux.Handler("/fw/x") == nil || mux.Handler("/b") != nil {
			t.Fatal("routing of a zero ServeMux")
		}
	})
	t.Run("Endpoint", func(t *testing.T) {
		var e bearer.Endpoint
		addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
		if _, err := e.Get(context.Background(), addr, "/x"); !errors.Is(err, bearer.ErrClosed) {
			t.Fatalf("Get: %v", err)
		}
		if err := e.Ping(context.Background(), addr); !errors.Is(err, bearer.ErrClosed) {
			t.Fatalf("Ping: %v", err)
		}
		if err := e.Close(); err != nil || e.LocalAddr() != nil {
			t.Fatalf("Close %v, LocalAddr %v", err, e.LocalAddr())
		}
		select {
		case <-e.Done():
		default:
			t.Fatal("Done of a zero Endpoint blocks")
		}
	})
	t.Run("pipe", func(t *testing.T) {
		var h pipe.Hub
		a, err := h.Conn("a")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := h.Conn("b")
		if _, err := a.WriteTo([]byte("x"), b.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		if n, _, err := b.ReadFrom(buf); err != nil || string(buf[:n]) != "x" {
			t.Fatalf("%q %v", buf[:n], err)
		}
		var c pipe.Conn
		if _, _, err := c.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("zero Conn ReadFrom: %v", err)
		}
	})
	t.Run("udp", func(t *testing.T) {
		var c udp.Conn
		if _, err := c.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("WriteTo: %v", err)
		}
		if err := c.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Close: %v", err)
		}
	})
}
