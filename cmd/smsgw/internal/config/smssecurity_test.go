package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// keyFiles writes an EC key, a self-signed certificate for it and its
// public key, and returns their paths and the public key in hex.
func keyFiles(t *testing.T) (keyFile, certFile, pubPEM, pubHex string) {
	t.Helper()
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(k)
	keyFile = filepath.Join(dir, "k.pem")
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	cder, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, "c.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cder}), 0o600)
	spki, _ := x509.MarshalPKIXPublicKey(k.Public())
	return keyFile, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})), hex.EncodeToString(spki)
}

func TestSMSSecurityConfig(t *testing.T) {
	keyFile, certFile, pubPEM, pubHex := keyFiles(t)
	dev := func(ep, extra string) string {
		return "    - endpoint: " + ep + "\n      msisdn: '+491720000001'\n" + extra
	}
	psk := "  psk:\n    - {identity: a, key: '00112233445566778899aabbccddeeff', endpoint: a}\n"
	creds := "  private_key: " + keyFile + "\n  certificate: " + certFile + "\n  ca: " + certFile + "\n"
	t.Run("valid", func(t *testing.T) {
		y := "lwm2m:\n  nosec: [n]\n" + psk + creds +
			"  rpk:\n    - endpoint: r\n      public_key: |\n" + indent(pubPEM, "        ") +
			"    - {endpoint: r2, public_key: '" + pubHex + "'}\n" +
			"  x509:\n    - {endpoint: x, certificate: " + certFile + "}\n" +
			"  oscore:\n    - {endpoint: o, master_secret: '0102030405060708090a0b0c0d0e0f10', recipient_id: '01'}\n" +
			"sms:\n  dtls_idle: 1h\n  devices:\n" + dev("a", "      security: psk\n") + dev("r", "      security: rpk\n") +
			dev("x", "      security: x509\n") + dev("n", "") + dev("o", "") + dev("t", "      trigger: true\n      security: nosec\n")
		c, err := Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"a": "psk", "r": "rpk", "x": "x509", "n": "nosec", "o": "oscore", "t": "nosec"}
		for _, d := range c.SMS.Devices {
			if got := c.SecurityMode(d); got != want[d.Endpoint] {
				t.Errorf("%s: mode %q, want %q", d.Endpoint, got, want[d.Endpoint])
			}
		}
		if !c.DTLSOverSMS() || c.SMS.DTLSIdle != time.Hour || c.LwM2M.DTLSSessionTTL != 24*time.Hour {
			t.Fatalf("config %+v %+v", c.SMS, c.LwM2M.DTLSSessionTTL)
		}
		for _, r := range c.LwM2M.RPK {
			if k, err := r.SPKI(); err != nil || hex.EncodeToString(k) != pubHex {
				t.Fatalf("rpk %s: %v", r.Endpoint, err)
			}
		}
	})
	tests := []struct {
		name, yaml string
		line       int
		want       string
	}{
		{"unknown mode", "sms:\n  devices:\n" + dev("a", "      security: tls\n"), 5, "unknown security"},
		{"psk without entry", "sms:\n  devices:\n" + dev("a", "      security: psk\n"), 5, "lwm2m.psk entry"},
		{"rpk without entry", "sms:\n  devices:\n" + dev("a", "      security: rpk\n"), 5, "lwm2m.rpk entry"},
		{"x509 without entry", "sms:\n  devices:\n" + dev("a", "      security: x509\n"), 5, "lwm2m.x509 entry"},
		{"oscore without context", "sms:\n  devices:\n" + dev("a", "      security: oscore\n"), 5, "lwm2m.oscore entry"},
		{"nosec not allowed", "lwm2m:\n  nosec: deny\nsms:\n  devices:\n" + dev("a", ""), 5, "does not allow"},
		{"psk beside an oscore context", "lwm2m:\n" + psk +
			"  oscore:\n    - {endpoint: a, master_secret: '0102030405060708090a0b0c0d0e0f10', recipient_id: '01'}\n" +
			"sms:\n  devices:\n" + dev("a", "      security: psk\n"), 10, "has an OSCORE context"},
		{"rpk key not hex", "lwm2m:\n  private_key: " + keyFile + "\n  rpk:\n    - {endpoint: r, public_key: 'xyz'}\n", 4, "neither hex"},
		{"rpk and psk for one name", "lwm2m:\n" + psk + "  private_key: " + keyFile + "\n  rpk:\n    - {endpoint: a, public_key: '" + pubHex + "'}\n", 6, "one identity per endpoint"},
		{"rpk without server key", "lwm2m:\n  rpk:\n    - {endpoint: r, public_key: '" + pubHex + "'}\n", 2, "need the server's private_key"},
		{"x509 file missing", "lwm2m:\n" + creds + "  x509:\n    - {endpoint: x, certificate: /nonexistent.pem}\n", 6, "certificate:"},
		{"x509 without ca", "lwm2m:\n  private_key: " + keyFile + "\n  certificate: " + certFile + "\n  x509:\n    - {endpoint: x, certificate: " + certFile + "}\n", 2, "need ca"},
		{"certificate without key", "lwm2m:\n  certificate: " + certFile + "\n", 2, "needs private_key"},
		{"key file garbage", "lwm2m:\n  private_key: " + certFile + "\n", 2, "want EC PRIVATE KEY"},
		{"dtls_idle negative", "sms:\n  dtls_idle: -1s\n", 2, "dtls_idle"},
		{"session ttl too long", "lwm2m:\n  dtls_session_ttl: 1000h\n", 2, "at most 168h"},
		{"dtls over sms in proxy mode", "mode: proxy\nproxy:\n  server: 127.0.0.1:5683\nlwm2m:\n" + psk + "sms:\n  devices:\n" + dev("a", "      security: psk\n"), 11, "needs mode: server"},
		{"fleet dtls_sms", "simulator:\n  fleet:\n    dtls_sms: -1\n", 3, "dtls_sms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err %v, want *Error", err)
			}
			for _, p := range ce.Problems {
				if strings.Contains(p.String(), tc.want) {
					if p.Line != tc.line {
						t.Fatalf("%v at line %d, want %d", p, p.Line, tc.line)
					}
					return
				}
			}
			t.Fatalf("problems %v lack %q", ce.Problems, tc.want)
		})
	}
}

func indent(s, pre string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(pre + l + "\n")
	}
	return b.String()
}
