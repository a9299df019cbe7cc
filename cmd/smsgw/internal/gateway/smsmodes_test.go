package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// pki is a CA, the server's certificate and a device's, in PEM files.
type pki struct {
	pool                    *x509.CertPool
	server, device          tls.Certificate
	caFile, srvCert, srvKey string
	devCertFile             string
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newTestPKI(t *testing.T, dir string) *pki {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smsgw test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string) (tls.Certificate, *ecdsa.PrivateKey) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, k
	}
	p := &pki{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	var srvKey *ecdsa.PrivateKey
	p.server, srvKey = leaf(2, "smsgw")
	p.device, _ = leaf(3, "meter-x509")
	p.caFile, p.srvCert, p.srvKey = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	p.devCertFile = filepath.Join(dir, "meter-x509.pem")
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	writePEM(t, p.srvCert, "CERTIFICATE", p.server.Certificate[0])
	kder, _ := x509.MarshalECPrivateKey(srvKey)
	writePEM(t, p.srvKey, "EC PRIVATE KEY", kder)
	writePEM(t, p.devCertFile, "CERTIFICATE", p.device.Certificate[0])
	return p
}

// smsTestDevice attaches a device with its own number to the gateway's
// simulated SMS network: an SMS bearer whose peer is the server SIM in
// mode, and, for DTLS, a session with cfg.
func smsTestDevice(t *testing.T, g *Gateway, msisdn string, mode sms.Mode, cfg *secure.Config) (bearer.Bearer, *sms.Bearer) {
	t.Helper()
	link, err := newEndpointLink(g.simNet, msisdn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(link.Close)
	b, err := sms.New(link, sms.Config{StateDir: t.TempDir(),
		Peers:  map[string]sms.Peer{"+491710000001": {Security: mode, SIM: msisdn}},
		Worker: outbox.WorkerConfig{Poll: 10 * time.Millisecond, BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg == nil {
		t.Cleanup(func() { b.Close() })
		return b, b
	}
	cfg.MTU, cfg.CIDLength = smsHandshakeMTU, new(0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := secure.Dial(ctx, b, srvSIM, cfg)
	if err != nil {
		t.Fatalf("%s: DTLS over SMS: %v", msisdn, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, b
}

// TestSMSDeviceModes runs the gateway in-process with configured SMS
// devices in every security mode, each a device on the simulated SMS
// network: the PSK, raw-key and X.509 devices register over DTLS over
// SMS with their identities and are read; the NoSec device (allowed by
// lwm2m.nosec) registers in plain; a device configured for DTLS that sends
// plain CoAP is refused and counted, never registered.
func TestSMSDeviceModes(t *testing.T) {
	if testing.Short() {
		t.Skip("SMS handshakes through the simulated network")
	}
	dir := t.TempDir()
	p := newTestPKI(t, dir)
	rpkKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rpkCert, _ := secure.NewRawKeyCertificate(rpkKey)
	rpkSPKI, _ := secure.PublicKeyInfo(rpkKey.Public())
	pskKey := "00112233445566778899aabbccddeeff"

	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", testToken
	cfg.Simulator.Fleet = config.Fleet{Awake: 3 * time.Second}
	cfg.Simulator.Latency, cfg.Simulator.SendTime = 20*time.Millisecond, 10*time.Millisecond
	cfg.LwM2M.NoSec = config.NoSec{Names: []string{"meter-nosec"}}
	cfg.LwM2M.Certificate, cfg.LwM2M.PrivateKey, cfg.LwM2M.CA = p.srvCert, p.srvKey, p.caFile
	cfg.LwM2M.PSK = []config.PSK{{Identity: "meter-psk", Key: pskKey, Endpoint: "meter-psk"},
		{Identity: "meter-liar", Key: pskKey, Endpoint: "meter-liar"}, {Identity: "meter-sleepy", Key: pskKey, Endpoint: "meter-sleepy"}}
	cfg.Queue.AwakeWindow = time.Second
	cfg.LwM2M.RPK = []config.RPK{{Endpoint: "meter-rpk", PublicKey: hex.EncodeToString(rpkSPKI)}}
	cfg.LwM2M.X509 = []config.X509{{Endpoint: "meter-x509", Certificate: p.devCertFile}}
	dev := func(ep, num, mode string) config.SMSDevice {
		return config.SMSDevice{Endpoint: ep, MSISDN: num, ServerSIM: "+491710000001", Security: mode}
	}
	cfg.SMS.Devices = []config.SMSDevice{dev("meter-psk", "+491729900001", "psk"), dev("meter-rpk", "+491729900002", "rpk"),
		dev("meter-x509", "+491729900003", "x509"), dev("meter-nosec", "+491729900004", "nosec"), dev("meter-liar", "+491729900005", "psk")}
	sleepy := dev("meter-sleepy", "+491729900006", "psk")
	sleepy.Trigger = true
	cfg.SMS.Devices = append(cfg.SMS.Devices, sleepy)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())
	a := apiClient{t, g.Info().API}

	for _, tc := range []struct {
		ep, num  string
		mode     sms.Mode
		cfg      *secure.Config
		identity string // prefix of the registration's identity
	}{
		{"meter-psk", "+491729900001", sms.ModeDTLS, &secure.Config{PSKIdentity: []byte("meter-psk"), PSKKey: mustHex(t, pskKey)}, "psk:meter-psk"},
		{"meter-rpk", "+491729900002", sms.ModeDTLS, &secure.Config{Certificate: &rpkCert, VerifyRawKey: secure.TrustKeys(leafSPKI(t, p.server))}, "rpk:"},
		{"meter-x509", "+491729900003", sms.ModeDTLS, &secure.Config{Certificate: &p.device, RootCAs: p.pool}, "x509:"},
		{"meter-nosec", "+491729900004", sms.ModeNoSec, nil, ""},
	} {
		t.Run(tc.ep, func(t *testing.T) {
			b, raw := smsTestDevice(t, g, tc.num, tc.mode, tc.cfg)
			if tc.cfg != nil {
				u := raw.TotalUsage()
				s, r := sms.Total(u.Sent), sms.Total(u.Received)
				t.Logf("%s handshake over SMS: %d SMS (%d sent, %d received), %d bytes", tc.ep, s.Segments+r.Segments, s.Segments, r.Segments, s.Bytes+r.Bytes)
			}
			startSMSClient(t, ctx, b, tc.ep, tc.num, false)
			reg, ok := g.srv.Lookup(tc.ep)
			if !ok || reg.Transport() != "sms" || !strings.HasPrefix(reg.Identity, tc.identity) || (tc.identity == "") != (reg.Identity == "") {
				t.Fatalf("registration %v: transport %q identity %q", ok, reg.Transport(), reg.Identity)
			}
			if code, v := a.do("GET", "/devices/"+tc.ep+"/data/3/0/0", ""); code != 200 || !strings.Contains(strings.ToLower(toJSON(v)), "m2mbearer") {
				t.Fatalf("read: %d %v", code, v)
			}
		})
	}

	// A queue-mode device on DTLS over SMS: asleep for the server, it is
	// woken by a trigger that can only reach it over its DTLS session
	// (its SMS bearer takes nothing else from the server's number).
	t.Run("queue-mode DTLS device woken over its session", func(t *testing.T) {
		b, _ := smsTestDevice(t, g, "+491729900006", sms.ModeDTLS, &secure.Config{PSKIdentity: []byte("meter-sleepy"), PSKKey: mustHex(t, pskKey)})
		startSMSClient(t, ctx, b, "meter-sleepy", "+491729900006", true)
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, v := a.do("GET", "/devices/meter-sleepy", "")
			if v["awake"] == false && v["wakeable"] == true {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("never asleep and wakeable: %v", v)
			}
			time.Sleep(100 * time.Millisecond)
		}
		before := g.smsB.Stats().DatagramsSent
		if code, v := a.do("GET", "/devices/meter-sleepy/data/3/0/0?wait=30s", ""); code != 200 || !strings.Contains(strings.ToLower(toJSON(v)), "m2mbearer") {
			t.Fatalf("queued read: %d %v", code, v)
		}
		if m := metricsText(t, a); !strings.Contains(m, "smsgw_sms_wakeups_total 1") {
			t.Fatalf("wake-ups: %s", grepLines(m, "wakeups"))
		}
		t.Logf("woken over DTLS over SMS and read: %d datagrams sent by the server", g.smsB.Stats().DatagramsSent-before)
	})

	t.Run("DTLS device in plain is refused and counted", func(t *testing.T) {
		before := g.smsB.Stats().DroppedSecurity
		b, _ := smsTestDevice(t, g, "+491729900005", sms.ModeNoSec, nil) // the device believes it may speak plain
		req := []byte{0x40, 0x02, 0x00, 0x01, 0xb2, 'r', 'd', 0x4d, 0x01, 'e', 'p', '=', 'm', 'e', 't', 'e', 'r', '-', 'l', 'i', 'a', 'r'}
		if _, err := b.WriteTo(req, srvSIM); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for g.smsB.Stats().DroppedSecurity == before {
			if time.Now().After(deadline) {
				t.Fatal("not counted")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, ok := g.srv.Lookup("meter-liar"); ok {
			t.Fatal("registered")
		}
		m := metricsText(t, a)
		if !strings.Contains(m, `smsgw_sms_total{what="dropped_security"} 1`) {
			t.Fatalf("metric: %s", grepLines(m, "dropped_security"))
		}
	})
}

// startSMSClient registers our LwM2M client as ep over b (binding S; in
// queue mode with /1/0/21 Trigger true when queue), closed at the end of
// the test.
func startSMSClient(t *testing.T, ctx context.Context, b bearer.Bearer, ep, num string, queue bool) {
	t.Helper()
	opts := []client.Option{client.WithBinding("S"), client.WithLifetime(300), client.WithSMSNumber(num[1:]),
		client.WithLogger(slog.New(slog.DiscardHandler))}
	if queue {
		opts = append(opts, client.WithQueueMode())
	}
	c, err := client.New(ep, opts...)
	if err != nil {
		t.Fatal(err)
	}
	err = errors.Join(c.AddServer(client.Server{ShortID: 101, Lifetime: 300, Binding: "S"}),
		c.AddDevice(client.Device{Manufacturer: "m2mbearer", Serial: ep, Binding: "S"}))
	if queue && err == nil {
		err = c.Set(path.Resource(1, 0, 21), content.NewBool(true))
	}
	if err != nil {
		t.Fatal(err)
	}
	e, err := bearer.NewEndpoint(b, bearer.WithHandler(c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); e.Close() })
	if err := c.Start(ctx, e, srvSIM); err != nil {
		t.Fatalf("register %s: %v", ep, err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func leafSPKI(t *testing.T, c tls.Certificate) []byte {
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.RawSubjectPublicKeyInfo
}

// srvSIM is the demo configuration's first server SIM.
var srvSIM = func() net.Addr { a, _ := sms.ParseMSISDN("+491710000001"); return a }()

// metricsText fetches /metrics.
func metricsText(t *testing.T, a apiClient) string {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(a.base, "/api/v1") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
