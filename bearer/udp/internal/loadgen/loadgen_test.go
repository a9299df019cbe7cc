package loadgen

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

func TestEncodeGET(t *testing.T) {
	b, err := encodeGET("/bench/x")
	if err != nil {
		t.Fatal(err)
	}
	m := message.Message{Options: make(message.Options, 0, 8)}
	if _, err := coder.DefaultCoder.Decode(b, &m); err != nil {
		t.Fatal(err)
	}
	p, err := m.Options.Path()
	if m.Code != codes.GET || m.Type != message.Confirmable || len(m.Token) != tokenLen || err != nil || p != "/bench/x" {
		t.Fatalf("decoded %v %v %x %q %v", m.Code, m.Type, m.Token, p, err)
	}
}

func TestRunAgainstGoCoap(t *testing.T) {
	s, err := StartGoCoap("127.0.0.1:0", "/bench", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Stop(10 * time.Second); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, s.Addr, Config{Workers: 4, Path: "/bench", Requests: 400, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.OK != 400 || res.Bad != 0 {
		t.Fatalf("result %v, want 400 ok", res)
	}
	// A path the server does not serve answers 4.04: counted as bad.
	res, err = Run(ctx, s.Addr, Config{Workers: 2, Path: "/nope", Requests: 10, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Bad != 10 {
		t.Fatalf("result %v, want 10 bad", res)
	}
	res, err = Run(ctx, s.Addr, Config{Workers: 2, Path: "/nope", Requests: 10, Timeout: 5 * time.Second, WantCode: codes.NotFound})
	if err != nil || res.OK != 10 {
		t.Fatalf("result %v, %v; want 10 ok", res, err)
	}
}

func TestRunCountsLost(t *testing.T) {
	// A socket that never answers.
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, pc.LocalAddr().(*net.UDPAddr), Config{Workers: 2, Path: "/x", Duration: 300 * time.Millisecond, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Lost == 0 || res.Elapsed > 10*time.Second {
		t.Fatalf("result %v, want only lost requests", res)
	}
	if _, err := Run(ctx, pc.LocalAddr().(*net.UDPAddr), Config{Path: "/x"}); err == nil {
		t.Fatal("no Duration nor Requests accepted")
	}
}
