package secure_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/internal/coapproc"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

const interopTimeout = 30 * time.Second

// TestInteropLibcoapClient: libcoap's coap-client-openssl (OpenSSL DTLS)
// does GET and PUT over coaps with PSK against our Endpoint over secure
// over UDP. The server offers only TLS_PSK_WITH_AES_128_CCM_8 (RFC 7925),
// so a completed handshake proves OpenSSL negotiated it; the handler
// records the suite the session reports.
func TestInteropLibcoapClient(t *testing.T) {
	client := coapproc.LookPath(t, "coap-client-openssl")
	ub, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("interop-secret-1")
	srv, err := secure.NewServer(ub, &secure.Config{
		PSKLookup: func(id []byte) ([]byte, error) {
			if string(id) == "lamp-42" {
				return key, nil
			}
			return nil, fmt.Errorf("unknown identity %q", id)
		},
		HandshakeTimeout: 4 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var stored []byte
	suites := map[string]bool{}
	mux := bearer.NewServeMux()
	mux.HandleFunc("/id", func(w bearer.ResponseWriter, r *bearer.Request) {
		s, _ := srv.CipherSuite(r.Peer)
		mu.Lock()
		suites[s] = true
		mu.Unlock()
		_ = w.WriteResponse(codes.Content, []byte(r.Identity.String()))
	})
	mux.HandleFunc("/store", func(w bearer.ResponseWriter, r *bearer.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Code == codes.PUT {
			stored = append([]byte(nil), r.Payload...)
			_ = w.WriteResponse(codes.Changed, nil)
			return
		}
		_ = w.WriteResponse(codes.Content, stored)
	})
	ep, err := bearer.NewEndpoint(srv, bearer.WithHandler(mux))
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	port := ub.LocalAddr().(*net.UDPAddr).Port
	uri := func(p string) string { return "coaps://127.0.0.1:" + strconv.Itoa(port) + p }
	ctx := context.Background()
	base := []string{"-k", string(key), "-u", "lamp-42", "-B", "20"}

	out, log, err := coapproc.Run(ctx, interopTimeout, client, append(base, "-m", "get", uri("/id"))...)
	if err != nil {
		t.Fatalf("GET: %v\n%s", err, log)
	}
	if got := strings.TrimSpace(string(out)); got != "psk:lamp-42" {
		t.Fatalf("GET /id = %q\n%s", got, log)
	}
	if _, log, err := coapproc.Run(ctx, interopTimeout, client, append(base, "-m", "put", "-e", "dim=40", uri("/store"))...); err != nil {
		t.Fatalf("PUT: %v\n%s", err, log)
	}
	out, log, err = coapproc.Run(ctx, interopTimeout, client, append(base, "-m", "get", uri("/store"))...)
	if err != nil || strings.TrimSpace(string(out)) != "dim=40" {
		t.Fatalf("GET /store = %q, %v\n%s", out, err, log)
	}
	// A wrong key fails the handshake; the client gives up.
	if out, _, _ := coapproc.Run(ctx, interopTimeout, client, "-k", "wrong-key-wrong!", "-u", "lamp-42", "-B", "3", "-m", "get", uri("/id")); strings.Contains(string(out), "psk:") {
		t.Fatalf("wrong key answered: %q", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(suites) != 1 || !suites["TLS_PSK_WITH_AES_128_CCM_8"] {
		t.Fatalf("negotiated suites %v", suites)
	}
	deadline := time.Now().Add(interopTimeout)
	for srv.Stats().HandshakesFailed == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling a counter, bounded
	}
	st := srv.Stats()
	t.Logf("coap-client-openssl ↔ secure.Server: suite TLS_PSK_WITH_AES_128_CCM_8; stats %+v", st)
	if st.HandshakesOK != 3 || st.HandshakesFailed < 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestInteropLibcoapServer: our DTLS client (PSK, CCM_8) against libcoap's
// coap-server-openssl: GET / and PUT then GET /example_data.
func TestInteropLibcoapServer(t *testing.T) {
	bin := coapproc.LookPath(t, "coap-server-openssl")
	key := "interop-secret-2"
	s := coapproc.StartServer(t, bin, "127.0.0.1", "-k", key, "-h", "")
	peer := &net.UDPAddr{IP: s.Addr.IP, Port: s.Addr.Port + 1} // coaps is port+1
	ub, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	conn, err := secure.Dial(ctx, ub, peer, &secure.Config{PSKIdentity: []byte("lamp-43"), PSKKey: []byte(key)})
	if err != nil {
		t.Fatalf("Dial: %v\n%s", err, s.Log)
	}
	t.Logf("secure.Dial ↔ coap-server-openssl: suite %s", conn.CipherSuite())
	if conn.CipherSuite() != "TLS_PSK_WITH_AES_128_CCM_8" {
		t.Errorf("suite %s", conn.CipherSuite())
	}
	ep, err := bearer.NewEndpoint(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	resp, err := ep.Get(ctx, peer, "/")
	if err != nil || resp.Code != codes.Content || !strings.Contains(string(resp.Payload), "libcoap") {
		t.Fatalf("GET /: %v %v\n%s", resp, err, s.Log)
	}
	resp, err = ep.Put(ctx, peer, "/example_data", message.TextPlain, []byte("42"))
	if err != nil || (resp.Code != codes.Changed && resp.Code != codes.Created) {
		t.Fatalf("PUT: %v %v\n%s", resp, err, s.Log)
	}
	resp, err = ep.Get(ctx, peer, "/example_data")
	if err != nil || string(resp.Payload) != "42" {
		t.Fatalf("GET /example_data: %v %v\n%s", resp, err, s.Log)
	}
}
