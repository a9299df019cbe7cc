package secure_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestEndpointSessionExpiry: an LwM2M-style server (the DTLS server side)
// sends a request to a device through its session; once the idle session
// has expired, the same request fails at once with an error wrapping
// secure.ErrNoSession: the server must wait for the device to handshake
// again, or wake it by SMS.
func TestEndpointSessionExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hub, err := pipe.NewHub()
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := hub.Conn("server")
	psk := []byte("expiry-psk-16byt")
	srv, err := secure.NewServer(sb, &secure.Config{
		PSKLookup: func([]byte) ([]byte, error) { return psk, nil }, IdleTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	se, err := bearer.NewEndpoint(srv, bearer.WithHandler(bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		_ = w.WriteResponse(codes.Content, nil)
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer se.Close()

	device := func(name string) *bearer.Endpoint {
		cb, _ := hub.Conn(name)
		conn, err := secure.Dial(ctx, cb, pipe.Addr("server"), &secure.Config{PSKIdentity: []byte(name), PSKKey: psk})
		if err != nil {
			t.Fatal(err)
		}
		mux := bearer.NewServeMux()
		mux.HandleFunc("/3/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
			_ = w.WriteResponse(codes.Content, []byte("m2mbearer"))
		})
		ce, err := bearer.NewEndpoint(conn, bearer.WithHandler(mux))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ce.Close() })
		// The device speaks first (a registration would), so the server
		// has a session with it.
		if _, err := ce.Get(ctx, pipe.Addr("server"), "/rd"); err != nil {
			t.Fatal(err)
		}
		return ce
	}
	device("lamp-1")
	resp, err := se.Get(ctx, pipe.Addr("lamp-1"), "/3/0/0")
	if err != nil || string(resp.Payload) != "m2mbearer" {
		t.Fatalf("server → device: %v %v", resp, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for srv.Stats().Expired == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a counter, bounded
	}
	start := time.Now()
	_, err = se.Get(ctx, pipe.Addr("lamp-1"), "/3/0/0")
	if !errors.Is(err, secure.ErrNoSession) {
		t.Fatalf("after expiry: %v, want ErrNoSession", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("ErrNoSession took %v", el)
	}
}
