package gateway

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestProxyMode bridges SMS-only lights to an external LwM2M server over
// UDP (our own server stands in for it, as a Leshan would): the lights
// register through the proxy, each from its own UDP socket, and the external
// server reads them; the answers travel SMS → proxy → UDP.
func TestProxyMode(t *testing.T) {
	u, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ext := server.New(registry.NewMemory(registry.Options{}))
	ep, err := bearer.NewEndpoint(u, bearer.WithHandler(ext.Handler("udp")))
	if err != nil {
		t.Fatal(err)
	}
	ext.Attach("udp", ep)
	t.Cleanup(func() { ext.Close(); ep.Close() })
	sub := ext.Subscribe(16)

	cfg := config.Default()
	cfg.Mode = "proxy"
	cfg.Proxy.Server = u.LocalAddr().String()
	cfg.DataDir = t.TempDir()
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "", testToken
	cfg.Simulator.Fleet = config.Fleet{SMS: 2, Awake: 3 * time.Second}
	cfg.Simulator.Latency, cfg.Simulator.SendTime = 20*time.Millisecond, 10*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())

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
		c, err := ext.Read(ctx, name, path.Resource(3, 0, 2))
		if err != nil || c.Text() != name {
			t.Fatalf("external server reads %s /3/0/2 through the proxy: %q %v", name, c.Text(), err)
		}
	}
	// Not registered with the embedded server: the proxy owns SMS.
	if _, ok := g.srv.Lookup("light-sms-1"); ok {
		t.Fatal("SMS light registered with the embedded server in proxy mode")
	}
	st := g.proxy.stats()
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
