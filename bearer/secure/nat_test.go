package secure_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// natRelay is a tiny UDP NAT for tests: the client talks to front; the
// relay forwards to the server from an outside socket, and rebind()
// switches to a new outside socket (a new source port), as a NAT does when
// its mapping expires.
type natRelay struct {
	front  *net.UDPConn
	server *net.UDPAddr
	mu     sync.Mutex
	out    *net.UDPConn
	client *net.UDPAddr
	wg     sync.WaitGroup
	outs   []*net.UDPConn
}

func newNATRelay(t *testing.T, server *net.UDPAddr) *natRelay {
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &natRelay{front: front, server: server}
	r.rebind(t)
	r.wg.Add(1)
	go func() { // client → server
		defer r.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.client = from
			out := r.out
			r.mu.Unlock()
			_, _ = out.WriteToUDP(buf[:n], server)
		}
	}()
	t.Cleanup(func() {
		_ = front.Close()
		r.mu.Lock()
		for _, o := range r.outs {
			_ = o.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

// rebind opens a new outside socket; the old one stops being used.
func (r *natRelay) rebind(t *testing.T) {
	out, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.out = out
	r.outs = append(r.outs, out)
	r.mu.Unlock()
	r.wg.Add(1)
	go func() { // server → client
		defer r.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, _, err := out.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			c := r.client
			r.mu.Unlock()
			if c != nil {
				_, _ = r.front.WriteToUDP(buf[:n], c)
			}
		}
	}()
}

// TestNATRebindingUDP: a CoAP client behind a NAT whose outside port
// changes keeps its DTLS session thanks to the connection ID; the server's
// Endpoint answers at the new address, with the same identity.
func TestNATRebindingUDP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	psk := []byte("nat-test-secret!")
	sb, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := secure.NewServer(sb, &secure.Config{PSKLookup: func([]byte) ([]byte, error) { return psk, nil }})
	if err != nil {
		t.Fatal(err)
	}
	peers := make(chan string, 8)
	mux := bearer.NewServeMux()
	mux.HandleFunc("/whoami", func(w bearer.ResponseWriter, r *bearer.Request) {
		peers <- r.Peer.String()
		_ = w.WriteResponse(codes.Content, []byte(r.Identity.String()))
	})
	se, err := bearer.NewEndpoint(srv, bearer.WithHandler(mux))
	if err != nil {
		t.Fatal(err)
	}
	defer se.Close()

	relay := newNATRelay(t, sb.LocalAddr().(*net.UDPAddr))
	cb, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := relay.front.LocalAddr()
	conn, err := secure.Dial(ctx, cb, front, &secure.Config{PSKIdentity: []byte("lamp-7"), PSKKey: psk})
	if err != nil {
		t.Fatal(err)
	}
	ce, err := bearer.NewEndpoint(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer ce.Close()

	get := func() string {
		t.Helper()
		resp, err := ce.Get(ctx, front, "/whoami")
		if err != nil || string(resp.Payload) != "psk:lamp-7" {
			t.Fatalf("GET: %v %v", resp, err)
		}
		return <-peers
	}
	before := get()
	relay.rebind(t)
	after := get()
	if before == after {
		t.Fatalf("the relay did not change the source address (%s)", before)
	}
	st := srv.Stats()
	if st.Rebinds != 1 || st.HandshakesOK != 1 || st.Sessions != 1 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("session moved from %s to %s without a new handshake", before, after)
}
