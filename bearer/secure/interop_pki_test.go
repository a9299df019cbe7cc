package secure_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/internal/coapproc"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// pemPKI writes a CA and a client certificate as PEM files for libcoap and
// returns the CA pool and a server certificate (with a 127.0.0.1 SAN).
func pemPKI(t *testing.T, dir string) (*x509.CertPool, tls.Certificate) {
	caKey := ecKey(t)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "interop CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(n int64, cn string, eku x509.ExtKeyUsage) (*ecdsa.PrivateKey, []byte) {
		k := ecKey(t)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: cn},
			DNSNames: []string{cn}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, k.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		return k, der
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	ck, cder := leaf(3, "lamp-44", x509.ExtKeyUsageClientAuth)
	write("client.pem", "CERTIFICATE", cder)
	kder, _ := x509.MarshalECPrivateKey(ck)
	write("client.key", "EC PRIVATE KEY", kder)
	sk, sder := leaf(2, "localhost", x509.ExtKeyUsageServerAuth)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, tls.Certificate{Certificate: [][]byte{sder}, PrivateKey: sk}
}

// TestInteropLibcoapClientX509: coap-client-openssl with a client
// certificate against our server offering only
// TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (RFC 7925): mutual X.509
// authentication, and the client's certificate reaches the handler.
func TestInteropLibcoapClientX509(t *testing.T) {
	client := coapproc.LookPath(t, "coap-client-openssl")
	dir := t.TempDir()
	pool, srvCert := pemPKI(t, dir)
	ub, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := secure.NewServer(ub, &secure.Config{Certificate: &srvCert, RootCAs: pool, HandshakeTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	suite := make(chan string, 1)
	mux := bearer.NewServeMux()
	mux.HandleFunc("/id", func(w bearer.ResponseWriter, r *bearer.Request) {
		s, _ := srv.CipherSuite(r.Peer)
		select {
		case suite <- s:
		default:
		}
		cn := ""
		if len(r.Identity.Certificates) > 0 {
			if c, err := x509.ParseCertificate(r.Identity.Certificates[0]); err == nil {
				cn = c.Subject.CommonName
			}
		}
		_ = w.WriteResponse(codes.Content, []byte(r.Identity.Mode+":"+cn))
	})
	ep, err := bearer.NewEndpoint(srv, bearer.WithHandler(mux))
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	uri := "coaps://127.0.0.1:" + strconv.Itoa(ub.LocalAddr().(*net.UDPAddr).Port) + "/id"
	out, log, err := coapproc.Run(context.Background(), interopTimeout, client,
		"-c", filepath.Join(dir, "client.pem"), "-j", filepath.Join(dir, "client.key"),
		"-C", filepath.Join(dir, "ca.pem"), "-B", "20", "-m", "get", uri)
	if err != nil || strings.TrimSpace(string(out)) != "x509:lamp-44" {
		t.Fatalf("GET /id = %q, %v\n%s", out, err, log)
	}
	s := <-suite
	t.Logf("coap-client-openssl (X.509) ↔ secure.Server: suite %s", s)
	if s != "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8" {
		t.Errorf("suite %s", s)
	}
}
