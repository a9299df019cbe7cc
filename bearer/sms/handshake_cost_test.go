package sms_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

// The SMS cost of a full DTLS 1.2 handshake per authentication mode: PSK,
// raw public key (RFC 7250 as pion carries it: a self-signed certificate
// whose key the peer pins) and X.509 (device and server certificates from
// one CA, ECDSA P-256), each with the SMS profile of smsgw (no cookie
// exchange, no CID) at the handshake datagram sizes compared below.

// handshakeCost is one handshake's traffic on the SMS bearer.
type handshakeCost struct {
	down, up     sms.Count // server → device, device → server
	downDG, upDG []int     // datagram sizes in order
}

// sizeBearer records the sizes of the datagrams written through it.
type sizeBearer struct {
	bearer.Bearer
	mu    sync.Mutex
	sizes []int
}

func (b *sizeBearer) WriteTo(p []byte, a net.Addr) (int, error) {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(p))
	b.mu.Unlock()
	return b.Bearer.WriteTo(p, a)
}

func (b *sizeBearer) written() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.sizes)
}

func (h handshakeCost) segs() uint64 { return h.down.Segments + h.up.Segments }

func (h handshakeCost) String() string {
	return fmt.Sprintf("%2d SMS (%d down in datagrams of %v B, %d up in %v B), %4d B", h.segs(),
		h.down.Segments, h.downDG, h.up.Segments, h.upDG, h.down.Bytes+h.up.Bytes)
}

// certKind says how the test certificates are made.
type certKind int

const (
	// certTypical: what a CA issues by default: country, organisation
	// and common name, 16-byte serial, SAN, key usage, extended key
	// usage, subject and authority key identifiers; the chain sent
	// includes the root.
	certTypical certKind = iota
	// certShort: common names only (the device's is its endpoint name),
	// 1-byte serial, no extensions on the leaves, the chain without its
	// root (RFC 5246 §7.4.2: the self-signed root "MAY be omitted", the
	// peer has it).
	certShort
)

// x509Creds returns a CA pool, the server's and a device's certificate
// (leaf first) of kind k.
func x509Creds(t *testing.T, k certKind) (*x509.CertPool, tls.Certificate, tls.Certificate) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := func() *big.Int {
		if k == certShort {
			return big.NewInt(1)
		}
		s, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		return s
	}
	name := func(cn string) pkix.Name {
		if k == certShort {
			return pkix.Name{CommonName: cn}
		}
		return pkix.Name{Country: []string{"DE"}, Organization: []string{"City of Example Streetlighting"}, CommonName: cn}
	}
	caKey := key()
	caT := &x509.Certificate{SerialNumber: serial(), Subject: name("Example Streetlight CA"),
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	if k == certShort {
		caT.Subject = name("CA")
		caT.SubjectKeyId = []byte{1, 2, 3, 4}
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	if k == certShort {
		// No authority key identifier in the leaves (Go copies the CA's
		// subject key identifier into it): 15 bytes of each leaf that
		// path building does without (one CA).
		ca.SubjectKeyId = nil
	}
	leaf := func(cn string) tls.Certificate {
		lk := key()
		lt := &x509.Certificate{SerialNumber: serial(), Subject: name(cn),
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(5 * 365 * 24 * time.Hour)}
		if k == certTypical {
			lt.DNSNames = []string{cn + ".streetlights.example.org"}
			lt.KeyUsage = x509.KeyUsageDigitalSignature
			lt.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, lt, ca, lk.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		chain := [][]byte{der}
		if k == certTypical {
			chain = append(chain, caDER)
		}
		return tls.Certificate{Certificate: chain, PrivateKey: lk}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, leaf("lwm2m-server"), leaf("light-17")
}

// rpkCreds returns the server's and a device's raw keys as pion carries
// them, and the SPKIs each pins.
func rpkCreds(t *testing.T) (srv, dev tls.Certificate, srvSPKI, devSPKI []byte) {
	t.Helper()
	one := func() (tls.Certificate, []byte) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		c, err := secure.NewRawKeyCertificate(k)
		if err != nil {
			t.Fatal(err)
		}
		spki, err := secure.PublicKeyInfo(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		return c, spki
	}
	srv, srvSPKI = one()
	dev, devSPKI = one()
	return srv, dev, srvSPKI, devSPKI
}

// handshakeConfigs returns the server's and the device's DTLS configs of
// mode ("psk", "rpk", "x509", "x509-typical") for handshake datagrams of
// mtu bytes, in the SMS profile (no cookie exchange, no CID).
func handshakeConfigs(t *testing.T, mode string, mtu int) (srv, dev *secure.Config) {
	t.Helper()
	srv, dev = secureCfg(mtu)
	srv.SkipHelloVerify, srv.CIDLength, dev.CIDLength = true, new(0), new(0)
	switch mode {
	case "psk":
	case "rpk":
		sc, dc, ss, ds := rpkCreds(t)
		srv.PSKLookup, dev.PSKIdentity, dev.PSKKey = nil, nil, nil
		srv.Certificate, srv.VerifyRawKey = &sc, secure.TrustKeys(ds)
		dev.Certificate, dev.VerifyRawKey = &dc, secure.TrustKeys(ss)
	case "x509", "x509-typical":
		k := certShort
		if mode == "x509-typical" {
			k = certTypical
		}
		pool, sc, dc := x509Creds(t, k)
		srv.PSKLookup, dev.PSKIdentity, dev.PSKKey = nil, nil, nil
		srv.Certificate, srv.RootCAs = &sc, pool
		dev.Certificate, dev.RootCAs = &dc, pool
	default:
		t.Fatalf("mode %q", mode)
	}
	return srv, dev
}

// measureHandshake runs one full handshake of mode over a fresh SMS pair
// and returns what it cost and the identity mode the server saw.
func measureHandshake(t *testing.T, mode string, mtu int) handshakeCost {
	t.Helper()
	p := newPair(t, smstest.Faults{}, dtlsPeers)
	scfg, ccfg := handshakeConfigs(t, mode, mtu)
	srvB, devB := &sizeBearer{Bearer: p.srv}, &sizeBearer{Bearer: p.dev}
	ss, err := secure.NewServer(srvB, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	conn, err := secure.Dial(costCtx(t), devB, mustAddr(t, serverNum), ccfg)
	if err != nil {
		t.Fatalf("%s handshake over SMS (MTU %d): %v", mode, mtu, err)
	}
	defer conn.Close()
	if id := conn.Identity(); !strings.EqualFold(id.Mode, strings.TrimSuffix(mode, "-typical")) {
		t.Fatalf("%s handshake: the device authenticated the server as %q", mode, id.Mode)
	}
	// The server's last flight (ChangeCipherSpec, Finished) may still be
	// on its way: wait until both sides' accounting agree.
	var h handshakeCost
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		su, _ := p.srv.Usage(deviceNum)
		du, _ := p.dev.Usage(serverNum)
		h = handshakeCost{down: sms.Total(su.Sent), up: sms.Total(du.Sent)}
		if sms.Total(du.Received).Datagrams == h.down.Datagrams && sms.Total(su.Received).Datagrams == h.up.Datagrams {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s handshake: SMS still on the way", mode)
		}
	}
	h.downDG, h.upDG = srvB.written(), devB.written()
	return h
}

// TestDTLSHandshakeSMSCount counts the SMS of one full DTLS handshake per
// authentication mode, as smsgw ran them before (one SMS segment per
// handshake datagram: MTU 140) and as it runs them now (handshake
// datagrams up to SMSHandshakeMTU, concatenated SMS: a flight goes as
// one datagram in as many 134-byte segments as it needs instead of
// 115-byte fragments each with its own 25 bytes of record and fragment
// headers), and with typical against short certificates. The figures are
// in docs/dtls-sms.md.
func TestDTLSHandshakeSMSCount(t *testing.T) {
	type row struct {
		mode     string
		mtu      int
		max      uint64 // SMS at most (signatures and certificates vary by a byte or two)
		baseline bool
	}
	rows := []row{
		{"psk", 140, 4, true},
		{"psk", secure.SMSHandshakeMTU, 4, false},
		{"rpk", 140, 14, true},
		{"rpk", secure.SMSHandshakeMTU, 11, false},
		{"x509-typical", 140, 27, true},
		{"x509-typical", secure.SMSHandshakeMTU, 23, false},
		{"x509", 140, 14, true},
		{"x509", secure.SMSHandshakeMTU, 11, false},
	}
	got := map[string]handshakeCost{}
	for _, r := range rows {
		name := fmt.Sprintf("%s/MTU%d", r.mode, r.mtu)
		t.Run(name, func(t *testing.T) {
			h := measureHandshake(t, r.mode, r.mtu)
			got[name] = h
			t.Logf("%-18s %v", name, h)
			if h.segs() > r.max {
				t.Errorf("%s handshake at MTU %d: %d SMS, want at most %d", r.mode, r.mtu, h.segs(), r.max)
			}
		})
	}
	var b strings.Builder
	for _, r := range rows {
		if r.baseline {
			name := fmt.Sprintf("%s/MTU%d", r.mode, r.mtu)
			now := fmt.Sprintf("%s/MTU%d", r.mode, secure.SMSHandshakeMTU)
			fmt.Fprintf(&b, "\n%-13s MTU 140: %v | MTU %d: %v | ratio %.2f", r.mode, got[name], secure.SMSHandshakeMTU, got[now],
				float64(got[now].segs())/float64(max(got[name].segs(), 1)))
		}
	}
	t.Logf("full DTLS handshake over SMS:%s", b.String())
}
