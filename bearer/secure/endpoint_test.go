package secure_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// identityHandler serves /id (the peer's identity, checking that
// r.Identity and bearer.PeerIdentity(r.Peer) agree), /store (PUT keeps
// the body, GET returns it) and /big (a 3000-byte body, sent Block2).
func identityHandler(t *testing.T) bearer.Handler {
	var mu sync.Mutex
	var stored []byte
	mux := bearer.NewServeMux()
	mux.HandleFunc("/id", func(w bearer.ResponseWriter, r *bearer.Request) {
		if a, b := r.Identity.String(), bearer.PeerIdentity(r.Peer).String(); a != b {
			t.Errorf("r.Identity %s != PeerIdentity(r.Peer) %s", a, b)
		}
		_ = w.WriteResponse(codes.Content, []byte(r.Identity.String()))
	})
	mux.HandleFunc("/store", func(w bearer.ResponseWriter, r *bearer.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Code {
		case codes.PUT:
			stored = bytes.Clone(r.Payload)
			_ = w.WriteResponse(codes.Changed, nil)
		default:
			_ = w.WriteResponse(codes.Content, stored)
		}
	})
	mux.HandleFunc("/big", func(w bearer.ResponseWriter, r *bearer.Request) {
		_ = w.WriteResponse(codes.Content, bigBody)
	})
	return mux
}

var bigBody = bytes.Repeat([]byte("0123456789abcdef"), 3000/16)

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// caPair returns a CA pool and a server and a client certificate it signed.
func caPair(t *testing.T) (*x509.CertPool, tls.Certificate, tls.Certificate) {
	caKey := ecKey(t)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	leaf := func(n int64, cn string) tls.Certificate {
		k := ecKey(t)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: cn},
			DNSNames: []string{cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, k.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	return pool, leaf(2, "server"), leaf(3, "client")
}

// TestEndpointOverSecure runs the CoAP Endpoint over DTLS over a lossy
// in-memory pipe in each security mode: the identity reaches the handler,
// PUT and GET work, a Block2 body is fetched, and DTLS handshake
// retransmission copes with 10% loss.
func TestEndpointOverSecure(t *testing.T) {
	pool, srvCert, cliCert := caPair(t)
	srvKey, devKey := ecKey(t), ecKey(t)
	srvRPK, _ := secure.NewRawKeyCertificate(srvKey)
	devRPK, _ := secure.NewRawKeyCertificate(devKey)
	srvSPKI, _ := secure.PublicKeyInfo(srvKey.Public())
	devSPKI, _ := secure.PublicKeyInfo(devKey.Public())
	psk := []byte("secret-key-16byt")

	for _, tc := range []struct {
		name     string
		srv, cli secure.Config
		wantID   string
	}{
		{"psk", secure.Config{PSKLookup: func(id []byte) ([]byte, error) {
			if string(id) == "urn:imei:1" {
				return psk, nil
			}
			return nil, nil
		}}, secure.Config{PSKIdentity: []byte("urn:imei:1"), PSKKey: psk}, "psk:urn:imei:1"},
		{"x509", secure.Config{Certificate: &srvCert, RootCAs: pool},
			secure.Config{Certificate: &cliCert, RootCAs: pool, ServerName: "server"}, "x509:91-byte key"},
		{"rpk", secure.Config{Certificate: &srvRPK, VerifyRawKey: secure.TrustKeys(devSPKI)},
			secure.Config{Certificate: &devRPK, VerifyRawKey: secure.TrustKeys(srvSPKI)}, "rpk:91-byte key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			hub, err := pipe.NewHub(pipe.WithFaults(pipe.Faults{Loss: 0.1}), pipe.WithSeed(7))
			if err != nil {
				t.Fatal(err)
			}
			sb, _ := hub.Conn("server")
			cb, _ := hub.Conn("device")
			tc.srv.FlightInterval = 100 * time.Millisecond
			tc.cli.FlightInterval = 100 * time.Millisecond
			srv, err := secure.NewServer(sb, &tc.srv)
			if err != nil {
				t.Fatal(err)
			}
			se, err := bearer.NewEndpoint(srv, bearer.WithHandler(identityHandler(t)))
			if err != nil {
				t.Fatal(err)
			}
			defer se.Close()
			conn, err := secure.Dial(ctx, cb, pipe.Addr("server"), &tc.cli)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			ce, err := bearer.NewEndpoint(conn)
			if err != nil {
				t.Fatal(err)
			}
			defer ce.Close()
			resp, err := ce.Get(ctx, pipe.Addr("server"), "/id")
			if err != nil {
				t.Fatalf("GET /id: %v", err)
			}
			if resp.Code != codes.Content || string(resp.Payload) != tc.wantID {
				t.Fatalf("GET /id: %v %q, want %q", resp.Code, resp.Payload, tc.wantID)
			}
			if !strings.HasPrefix(bearer.PeerIdentity(resp.Peer).Mode, tc.name[:3]) {
				t.Errorf("response peer identity %v", bearer.PeerIdentity(resp.Peer))
			}
			body := bytes.Repeat([]byte("streetlight "), 40)
			if resp, err := ce.Put(ctx, pipe.Addr("server"), "/store", message.TextPlain, body); err != nil || resp.Code != codes.Changed {
				t.Fatalf("PUT: %v %v", resp, err)
			}
			if resp, err := ce.Get(ctx, pipe.Addr("server"), "/store"); err != nil || !bytes.Equal(resp.Payload, body) {
				t.Fatalf("GET /store: %v", err)
			}
			if resp, err := ce.Get(ctx, pipe.Addr("server"), "/big"); err != nil || !bytes.Equal(resp.Payload, bigBody) {
				t.Fatalf("GET /big: %v", err)
			}
		})
	}
}
