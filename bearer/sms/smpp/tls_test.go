package smpp_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a leaf certificate for names (DNS names or IP addresses),
// for a server or a client, and returns it with its PEM certificate and key.
func (ca *testCA) issue(t *testing.T, client bool, names ...string) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c, certPEM, keyPEM
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsFiles are the PEM files an operator would configure.
type tlsFiles struct {
	dir                          string
	ca, otherCA, client, clientK string
	selfSigned                   string // the SMSC's own self-signed certificate (selfSignedSMSC)
}

// tlsSetup returns the SMSC's TLS configuration (a certificate for
// smsc.test and 127.0.0.1 from one CA; clientAuth as asked) and the files.
func tlsSetup(t *testing.T, clientAuth tls.ClientAuthType) (*tls.Config, tlsFiles) {
	t.Helper()
	ca, other, clients := newCA(t, "operator CA"), newCA(t, "someone else"), newCA(t, "client CA")
	srv, _, _ := ca.issue(t, false, "smsc.test", "127.0.0.1")
	_, ccert, ckey := clients.issue(t, true, "city-gateway")
	pool := x509.NewCertPool()
	pool.AddCert(clients.cert)
	dir := t.TempDir()
	f := tlsFiles{dir: dir, ca: writeFile(t, dir, "ca.pem", ca.pem), otherCA: writeFile(t, dir, "other.pem", other.pem),
		client: writeFile(t, dir, "client.pem", ccert), clientK: writeFile(t, dir, "client.key", ckey)}
	return &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: clientAuth, ClientCAs: pool, MinVersion: tls.VersionTLS12}, f
}

// selfSignedSMSC replaces the SMSC's certificate by a self-signed one (not
// a CA) for smsc.test, as some operators run, and writes it for the link's
// tls_ca_file, which then pins it.
func selfSignedSMSC(t *testing.T, cfg *tls.Config, f *tlsFiles) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "smsc.test"}, DNSNames: []string{"smsc.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	c, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Certificates = []tls.Certificate{c}
	f.selfSigned = writeFile(t, f.dir, "smsc-self-signed.pem", certPEM)
}

// TestTLS: SMPP over TLS end to end against the simulated SMSC's TLS
// listener: bind (both bind modes), submits with receipts correlated,
// deliver_sm received, the name checked by tls_server_name or the dialled
// IP address, a client certificate for an SMSC that asks for one.
func TestTLS(t *testing.T) {
	cases := []struct {
		name       string
		bind       smpp.BindMode
		clientAuth tls.ClientAuthType
		opts       func(f tlsFiles) smpp.TLSOptions
	}{
		{"transceiver, name from tls_server_name", smpp.Transceiver, tls.NoClientCert,
			func(f tlsFiles) smpp.TLSOptions { return smpp.TLSOptions{ServerName: "smsc.test", CAFile: f.ca} }},
		{"transceiver, dialled IP address checked", smpp.Transceiver, tls.NoClientCert,
			func(f tlsFiles) smpp.TLSOptions { return smpp.TLSOptions{CAFile: f.ca} }},
		{"transmitter+receiver", smpp.TransmitterReceiver, tls.NoClientCert,
			func(f tlsFiles) smpp.TLSOptions { return smpp.TLSOptions{ServerName: "smsc.test", CAFile: f.ca} }},
		{"self-signed SMSC certificate pinned by tls_ca_file", smpp.Transceiver, tls.NoClientCert,
			func(f tlsFiles) smpp.TLSOptions {
				return smpp.TLSOptions{ServerName: "smsc.test", CAFile: f.selfSigned}
			}},
		{"client certificate asked and given", smpp.Transceiver, tls.RequireAndVerifyClientCert,
			func(f tlsFiles) smpp.TLSOptions {
				return smpp.TLSOptions{ServerName: "smsc.test", CAFile: f.ca, CertFile: f.client, KeyFile: f.clientK}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srvTLS, files := tlsSetup(t, c.clientAuth)
			if strings.HasPrefix(c.name, "self-signed") {
				selfSignedSMSC(t, srvTLS, &files)
			}
			cfg, err := c.opts(files).Config("127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			r := newRig(t, rigOpts{smscTLS: srvTLS, link: smpp.Config{Bind: c.bind, TLS: cfg}, reports: true})
			for i, size := range []int{20, 500} {
				if !t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
					out := datagram(size, byte(i))
					if _, err := r.gw.WriteTo(out, addr(deviceNum)); err != nil {
						t.Fatal(err)
					}
					if got, from := read(t, r.dev); !bytes.Equal(got, out) || from != serverNum {
						t.Fatalf("device got %d bytes from %s", len(got), from)
					}
					waitResult(t, r, outbox.DeliveredOutcome)
					back := datagram(size+3, byte(i+9))
					if _, err := r.dev.WriteTo(back, addr(serverNum)); err != nil {
						t.Fatal(err)
					}
					if got, from := read(t, r.gw); !bytes.Equal(got, back) || from != deviceNum {
						t.Fatalf("gateway got %d bytes from %s", len(got), from)
					}
				}) {
					return
				}
			}
			st := settled(r.link)
			if st.Receipts == 0 || st.AwaitingReceipt != 0 || st.ReceiptsUnknown != 0 || st.LastBindError != "" {
				t.Fatalf("link stats %+v", st)
			}
			if s := r.smsc.Stats(); s.TLSFailures != 0 || s.Binds == 0 {
				t.Fatalf("smsc stats %+v", s)
			}
		})
	}
}

// TestTLSRefused: a TLS session that cannot be trusted never binds; the
// link says why (Stats.LastBindError, the log) with the option that fixes
// it, keeps trying with backoff, and SendTPDU fails retryably.
func TestTLSRefused(t *testing.T) {
	cases := []struct {
		name       string
		clientAuth tls.ClientAuthType
		plainSMSC  bool
		opts       func(f tlsFiles) smpp.TLSOptions
		want       string
	}{
		{"certificate from an unknown CA", tls.NoClientCert, false,
			func(f tlsFiles) smpp.TLSOptions { return smpp.TLSOptions{ServerName: "smsc.test", CAFile: f.otherCA} },
			"certificate signed by unknown authority"},
		{"system roots only", tls.NoClientCert, false,
			func(f tlsFiles) smpp.TLSOptions { return smpp.TLSOptions{ServerName: "smsc.test"} }, "tls_ca_file"},
		{"certificate for another name", tls.NoClientCert, false,
			func(f tlsFiles) smpp.TLSOptions { return smpp.TLSOptions{ServerName: "smsc.example.net", CAFile: f.ca} },
			"tls_server_name"},
		{"client certificate asked, none given", tls.RequireAndVerifyClientCert, false,
			func(f tlsFiles) smpp.TLSOptions { return smpp.TLSOptions{ServerName: "smsc.test", CAFile: f.ca} },
			"tls_cert_file"},
		{"plain SMPP port", tls.NoClientCert, true,
			func(f tlsFiles) smpp.TLSOptions { return smpp.TLSOptions{ServerName: "smsc.test", CAFile: f.ca} },
			"speak TLS on this port"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srvTLS, files := tlsSetup(t, c.clientAuth)
			if c.plainSMSC {
				srvTLS = nil
			}
			cfg, err := c.opts(files).Config("127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			r := newRig(t, rigOpts{smscTLS: srvTLS, link: smpp.Config{TLS: cfg}})
			var st smpp.Stats
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if st = r.link.Stats(); st.BindFailures >= 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("stats %+v", st)
				}
			}
			if st.Bound || st.Binds != 0 || !strings.Contains(st.LastBindError, "smpp: TLS with the SMSC failed") ||
				!strings.Contains(st.LastBindError, c.want) {
				t.Fatalf("stats %+v, want an error saying %q", st, c.want)
			}
			if !c.plainSMSC && r.smsc.Stats().Binds != 0 {
				t.Fatalf("smsc stats %+v", r.smsc.Stats())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, _, err = r.link.SendTPDU(ctx, "", deviceNum, submitTPDU(t))
			var re interface{ Retryable() bool }
			if !errors.Is(err, smpp.ErrNotBound) || !errors.As(err, &re) || !re.Retryable() {
				t.Fatalf("SendTPDU: %v", err)
			}
		})
	}
}

// TestTLSOptions: the files an operator names are checked, each error
// naming the option.
func TestTLSOptions(t *testing.T) {
	_, files := tlsSetup(t, tls.NoClientCert)
	junk := writeFile(t, files.dir, "junk.pem", []byte("not a certificate"))
	cases := []struct {
		name string
		opts smpp.TLSOptions
		want string // "" for success
	}{
		{"system roots, host name", smpp.TLSOptions{}, ""},
		{"CA file", smpp.TLSOptions{CAFile: files.ca}, ""},
		{"client pair", smpp.TLSOptions{CertFile: files.client, KeyFile: files.clientK}, ""},
		{"CA file missing", smpp.TLSOptions{CAFile: filepath.Join(files.dir, "nope.pem")}, "tls_ca_file"},
		{"CA file without PEM", smpp.TLSOptions{CAFile: junk}, "holds no PEM certificate"},
		{"certificate without key", smpp.TLSOptions{CertFile: files.client}, "go together"},
		{"key without certificate", smpp.TLSOptions{KeyFile: files.clientK}, "go together"},
		{"key not matching", smpp.TLSOptions{CertFile: files.client, KeyFile: junk}, "tls_cert_file/tls_key_file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := c.opts.Config("smsc.example.net")
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err %v, want %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ServerName != "smsc.example.net" || cfg.MinVersion != tls.VersionTLS12 || cfg.InsecureSkipVerify {
				t.Fatalf("config %+v", cfg)
			}
			if (c.opts.CAFile != "") != (cfg.RootCAs != nil) || (c.opts.CertFile != "") != (len(cfg.Certificates) == 1) {
				t.Fatalf("config %+v", cfg)
			}
		})
	}
}
