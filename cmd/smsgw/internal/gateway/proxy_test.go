package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestProxyMode bridges SMS-only lights to an external LwM2M server over
// UDP (our own server stands in for it, as a Leshan would): the lights
// register through the proxy, each from its own UDP socket, and the external
// server reads them; the answers travel SMS → proxy → UDP.
func TestProxyMode(t *testing.T) {
	ext, extAddr := startExternal(t)
	sub := ext.Subscribe(16)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := startProxy(t, ctx, extAddr)

	addrs := map[string]string{}
	for len(addrs) < 2 {
		select {
		case ev := <-sub.C:
			if ev.Kind == server.Registered {
				r := ev.Registration
				// The proxy rewrote b=S to b=U and dropped sms=: the
				// external server reaches the light over UDP at its socket.
				if r.Binding != registry.BindingU || r.SMS != "" || r.Transport() != "udp" || !r.Addr.IsValid() {
					t.Fatalf("registration at the external server: %+v", r)
				}
				addrs[r.Endpoint] = r.Addr.String()
			}
		case <-ctx.Done():
			t.Fatalf("registrations at the external server: %v", addrs)
		}
	}
	if addrs["light-sms-1"] == addrs["light-sms-2"] {
		t.Fatalf("devices share a UDP socket: %v", addrs)
	}
	for _, name := range []string{"light-sms-1", "light-sms-2"} {
		ok := t.Run(name, func(t *testing.T) {
			c, err := ext.Read(ctx, name, path.Resource(3, 0, 2))
			if err != nil || c.Text() != name {
				t.Fatalf("external server reads %s /3/0/2 through the proxy: %q %v", name, c.Text(), err)
			}
		})
		if !ok {
			t.FailNow()
		}
	}
	// Not registered with the embedded server: the proxy owns SMS.
	if _, ok := g.srv.Lookup("light-sms-1"); ok {
		t.Fatal("SMS light registered with the embedded server in proxy mode")
	}
	// The proxy counts a relayed datagram after writing it: the external
	// server may have its answer a moment before the count moves.
	deadline := time.Now().Add(5 * time.Second)
	st := g.proxy.stats()
	for (st.Up < 4 || st.Down < 4) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		st = g.proxy.stats()
	}
	if st.Devices != 2 || st.Up < 4 || st.Down < 4 || st.Rewritten < 2 {
		t.Fatalf("proxy stats %+v", st)
	}
}

func TestProxyDuplicateCON(t *testing.T) {
	s := &proxySock{seen: map[uint16]time.Time{}}
	con := []byte{0x40, 0x01, 0x12, 0x34}
	if s.duplicate(con) || !s.duplicate(con) {
		t.Fatal("second copy of a CON not recognised")
	}
	ack := []byte{0x60, 0x45, 0x12, 0x34}
	for i := 0; i < 2; i++ {
		if s.duplicate(ack) {
			t.Fatal("ACKs are never dropped")
		}
	}
	for i := 0; i < 3*maxSeenPerSock; i++ {
		s.duplicate([]byte{0x40, 0x01, byte(i >> 8), byte(i)})
	}
	if len(s.seen) > maxSeenPerSock {
		t.Fatalf("table grew to %d", len(s.seen))
	}
	if s.duplicate([]byte{0x40}) {
		t.Fatal("short datagram")
	}
}

// smsConnStub is the SMS side of the proxy in a unit test: ReadFrom
// returns what the test injects, WriteTo records what goes to devices.
type smsConnStub struct {
	in     chan smsDatagram
	out    chan smsDatagram
	closed chan struct{}
	once   sync.Once
}

type smsDatagram struct {
	b    []byte
	addr net.Addr
}

func newSMSConnStub() *smsConnStub {
	return &smsConnStub{in: make(chan smsDatagram, 4), out: make(chan smsDatagram, 4), closed: make(chan struct{})}
}

func (c *smsConnStub) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case d := <-c.in:
		return copy(p, d.b), d.addr, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *smsConnStub) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case c.out <- smsDatagram{append([]byte(nil), p...), addr}:
		return len(p), nil
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *smsConnStub) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *smsConnStub) LocalAddr() net.Addr              { return sms.Addr{} }
func (c *smsConnStub) SetDeadline(time.Time) error      { return nil }
func (c *smsConnStub) SetReadDeadline(time.Time) error  { return nil }
func (c *smsConnStub) SetWriteDeadline(time.Time) error { return nil }

// TestProxyRefusesForeignEndpointName: a bridged device registering under
// another device's name gets 4.03 from the proxy and nothing reaches the
// external server; under its own name the Register is relayed.
func TestProxyRefusesForeignEndpointName(t *testing.T) {
	up, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	stub := newSMSConnStub()
	p, err := newProxy(stub, up.LocalAddr().String(), "127.0.0.1",
		map[string]string{"+491710000001": "light-sms-1", "+491710000002": "light-sms-2"},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stub.Close(); p.Close() }()
	from, _ := sms.ParseMSISDN("+491710000001")
	register := func(ep string, typ message.Type, mid int32) []byte {
		m := message.Message{Token: []byte{1, 2, 3, 4}, Code: codes.POST, MessageID: mid, Type: typ}
		for _, o := range []message.Option{{ID: message.URIPath, Value: []byte("rd")},
			{ID: message.URIQuery, Value: []byte("ep=" + ep)}, {ID: message.URIQuery, Value: []byte("b=S")}} {
			m.Options = m.Options.Add(o)
		}
		n, _ := coder.DefaultCoder.Size(m)
		b := make([]byte, n)
		if _, err := coder.DefaultCoder.Encode(m, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, typ := range []message.Type{message.Confirmable, message.NonConfirmable} {
		ok := t.Run(typ.String(), func(t *testing.T) {
			stub.in <- smsDatagram{register("light-sms-2", typ, 0x1234), from}
			select {
			case d := <-stub.out:
				var m message.Message
				if _, err := coder.DefaultCoder.Decode(d.b, &m); err != nil {
					t.Fatal(err)
				}
				wantType := message.Acknowledgement
				if typ == message.NonConfirmable {
					wantType = message.NonConfirmable
				}
				if m.Code != codes.Forbidden || m.Type != wantType || !bytes.Equal(m.Token, []byte{1, 2, 3, 4}) ||
					(typ == message.Confirmable && m.MessageID != 0x1234) || d.addr.String() != from.String() {
					t.Fatalf("answer to %v: %+v to %v", typ, m, d.addr)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no 4.03 for %v", typ)
			}
		})
		if !ok {
			t.FailNow() // the datagrams below follow on the same stub
		}
	}
	// Its own name is relayed upstream (and is the first datagram there).
	stub.in <- smsDatagram{register("light-sms-1", message.Confirmable, 0x2000), from}
	up.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, _, err := up.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	if ep, ok := registerEndpoint(buf[:n]); !ok || ep != "light-sms-1" {
		t.Fatalf("upstream got %q %v", ep, ok)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st := p.stats() // Up is counted just after the write upstream
		if st.Refused == 2 && st.Up == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", st)
		}
	}
}
