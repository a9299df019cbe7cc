package config

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Security modes of an SMS device (sms.devices[].security), LwM2M's SMS
// Security Mode.
const (
	// SMSNoSec: plain CoAP over SMS, the number as the only credential.
	// Registering that way needs lwm2m.nosec to allow the name; a device
	// with trigger: true may be woken by a plain trigger either way.
	SMSNoSec = "nosec"
	// SMSPSK, SMSRPK, SMSX509: DTLS 1.2 over SMS with the device's
	// lwm2m.psk, lwm2m.rpk or lwm2m.x509 entry.
	SMSPSK  = "psk"
	SMSRPK  = "rpk"
	SMSX509 = "x509"
	// SMSOSCORE: OSCORE-protected CoAP over SMS with the device's
	// lwm2m.oscore context.
	SMSOSCORE = "oscore"
)

// DTLS reports whether the mode is DTLS over SMS.
func smsDTLS(mode string) bool { return mode == SMSPSK || mode == SMSRPK || mode == SMSX509 }

// SecurityMode returns the device's SMS security mode: Security when set;
// unset, "oscore" when lwm2m.oscore holds a context for the endpoint, else
// "nosec" (what a device listed without a mode has always been).
// Validation refuses a Security that contradicts the device's other
// entries, so the unset field never means something an explicit one would
// not.
func (c *Config) SecurityMode(d SMSDevice) string {
	if d.Security != "" {
		return d.Security
	}
	for _, o := range c.LwM2M.OSCORE {
		if o.Endpoint == d.Endpoint {
			return SMSOSCORE
		}
	}
	return SMSNoSec
}

// DTLSOverSMS reports whether any configured device uses DTLS over SMS.
func (c *Config) DTLSOverSMS() bool {
	for _, d := range c.SMS.Devices {
		if smsDTLS(c.SecurityMode(d)) {
			return true
		}
	}
	return false
}

// RPK binds a device's raw public key to its endpoint name (DTLS with
// TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, the key pinned: RFC 7250's trust
// decision, see bearer/secure).
type RPK struct {
	// Endpoint is the endpoint name the key may register as.
	Endpoint string `yaml:"endpoint"`
	// PublicKey is the device's DER SubjectPublicKeyInfo in hex (LwM2M
	// /0/x/3 Public Key or Identity), or a PEM "PUBLIC KEY" block.
	PublicKey string `yaml:"public_key"`
}

// SPKI decodes the public key.
func (r RPK) SPKI() ([]byte, error) {
	s := strings.TrimSpace(r.PublicKey)
	var der []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		b, _ := pem.Decode([]byte(s))
		if b == nil || b.Type != "PUBLIC KEY" {
			return nil, errors.New("not a PEM PUBLIC KEY block")
		}
		der = b.Bytes
	} else {
		var err error
		if der, err = hex.DecodeString(s); err != nil {
			return nil, errors.New("neither hex DER nor a PEM PUBLIC KEY block")
		}
	}
	if _, err := x509.ParsePKIXPublicKey(der); err != nil {
		return nil, fmt.Errorf("not a SubjectPublicKeyInfo: %w", err)
	}
	return der, nil
}

// X509 binds a device certificate to its endpoint name: the device
// authenticates with it (its chain verified against lwm2m.ca) and may
// register only as Endpoint.
type X509 struct {
	// Endpoint is the endpoint name the certificate may register as.
	Endpoint string `yaml:"endpoint"`
	// Certificate is a PEM file holding the device's certificate.
	Certificate string `yaml:"certificate"`
}

// Leaf reads the device certificate (DER).
func (x X509) Leaf() ([]byte, error) {
	b, err := os.ReadFile(x.Certificate)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", x.Certificate)
	}
	if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
		return nil, fmt.Errorf("%s: %w", x.Certificate, err)
	}
	return blk.Bytes, nil
}

// ServerCertificate loads lwm2m.certificate and lwm2m.private_key: the
// server's X.509 chain, or with no certificate file a raw public key (a
// self-signed wrapper made at start; the device pins the key, LwM2M
// /0/x/4 Server Public Key). nil when neither is set.
func (l LwM2M) ServerCertificate(rawKey func(key any) (tls.Certificate, error)) (*tls.Certificate, error) {
	if l.PrivateKey == "" {
		return nil, nil
	}
	if l.Certificate != "" {
		c, err := tls.LoadX509KeyPair(l.Certificate, l.PrivateKey)
		if err != nil {
			return nil, err
		}
		return &c, nil
	}
	b, err := os.ReadFile(l.PrivateKey)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", l.PrivateKey)
	}
	var key any
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		err = fmt.Errorf("PEM block %q, want EC PRIVATE KEY or PRIVATE KEY", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.PrivateKey, err)
	}
	c, err := rawKey(key)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// validateSMSSecurity checks sms.devices[].security against the entries
// each mode needs, lwm2m.rpk and lwm2m.x509, and the server's credentials.
func (c *Config) validateSMSSecurity(ck *checker) {
	l := c.LwM2M
	ids := identities{psk: map[string]bool{}, osc: map[string]bool{}, rpk: map[string]bool{}, x5: map[string]bool{}}
	for _, p := range l.PSK {
		ids.psk[p.Endpoint] = true
	}
	for _, o := range l.OSCORE {
		ids.osc[o.Endpoint] = true
	}
	c.validateRPK(ck, ids)
	c.validateX509(ck, ids)
	c.validateServerCredentials(ck, len(l.RPK) > 0, len(l.X509) > 0)
	for i, d := range c.SMS.Devices {
		c.validateSMSDeviceSecurity(ck, ids, fmt.Sprint(i), d)
	}
	if c.SMS.DTLSIdle < 0 {
		ck.add("dtls_idle must not be negative (0: the DTLS default of 10 minutes)", "sms", "dtls_idle")
	}
	if l.DTLSSessionTTL < 0 {
		ck.add("dtls_session_ttl must not be negative (0: no session resumption)", "lwm2m", "dtls_session_ttl")
	} else if l.DTLSSessionTTL > 7*24*time.Hour {
		ck.add("dtls_session_ttl is at most 168h (RFC 5246 §F.1.4 suggests 24h)", "lwm2m", "dtls_session_ttl")
	}
}

// identities are the endpoint names that have credentials, by kind:
// lwm2m.psk, lwm2m.oscore, lwm2m.rpk and lwm2m.x509.
type identities struct {
	psk, osc, rpk, x5 map[string]bool
}

// validateRPK checks lwm2m.rpk (one identity per endpoint, a readable
// public key) and adds its endpoints to ids.rpk.
func (c *Config) validateRPK(ck *checker, ids identities) {
	for i, r := range c.LwM2M.RPK {
		idx := fmt.Sprint(i)
		switch {
		case r.Endpoint == "":
			ck.add("endpoint is required: the endpoint name this key may register as", "lwm2m", "rpk", idx, "endpoint")
		case ids.rpk[r.Endpoint] || ids.psk[r.Endpoint] || ids.osc[r.Endpoint]:
			ck.add(fmt.Sprintf("endpoint %q has another key, PSK or OSCORE context: one identity per endpoint", r.Endpoint), "lwm2m", "rpk", idx, "endpoint")
		}
		ids.rpk[r.Endpoint] = true
		if _, err := r.SPKI(); err != nil {
			ck.add(fmt.Sprintf("public_key: %v", err), "lwm2m", "rpk", idx, "public_key")
		}
	}
}

// validateX509 checks lwm2m.x509 (one identity per endpoint, a readable
// certificate) and adds its endpoints to ids.x5.
func (c *Config) validateX509(ck *checker, ids identities) {
	for i, x := range c.LwM2M.X509 {
		idx := fmt.Sprint(i)
		switch {
		case x.Endpoint == "":
			ck.add("endpoint is required: the endpoint name this certificate may register as", "lwm2m", "x509", idx, "endpoint")
		case ids.x5[x.Endpoint] || ids.rpk[x.Endpoint] || ids.psk[x.Endpoint] || ids.osc[x.Endpoint]:
			ck.add(fmt.Sprintf("endpoint %q has another certificate, key, PSK or OSCORE context: one identity per endpoint", x.Endpoint), "lwm2m", "x509", idx, "endpoint")
		}
		ids.x5[x.Endpoint] = true
		if _, err := x.Leaf(); err != nil {
			ck.add(fmt.Sprintf("certificate: %v", err), "lwm2m", "x509", idx, "certificate")
		}
	}
}

// validateSMSDeviceSecurity checks the security of sms.devices[idx]: the
// credentials its mode needs, no OSCORE context for another mode, and no
// DTLS over SMS in proxy mode.
func (c *Config) validateSMSDeviceSecurity(ck *checker, ids identities, idx string, d SMSDevice) {
	l := c.LwM2M
	mode := c.SecurityMode(d)
	need := func(have map[string]bool, list string) {
		if !have[d.Endpoint] {
			ck.add(fmt.Sprintf("security %s needs an lwm2m.%s entry with endpoint %q", mode, list, d.Endpoint), "sms", "devices", idx, "security")
		}
	}
	switch mode {
	case SMSNoSec:
		if !l.NoSec.Allows(d.Endpoint) && !d.Trigger {
			ck.add(fmt.Sprintf("device %q would register over SMS without security, which lwm2m.nosec (%s) does not allow: "+
				"set security (psk, rpk, x509 or oscore) with its credentials, or allow the name in lwm2m.nosec", d.Endpoint, l.NoSec),
				"sms", "devices", idx, "security")
		}
	case SMSPSK:
		need(ids.psk, "psk")
	case SMSRPK:
		need(ids.rpk, "rpk")
	case SMSX509:
		need(ids.x5, "x509")
	case SMSOSCORE:
		need(ids.osc, "oscore")
	default:
		ck.add(fmt.Sprintf("unknown security %q; use nosec, psk, rpk, x509 or oscore", d.Security), "sms", "devices", idx, "security")
		return
	}
	if mode != SMSOSCORE && ids.osc[d.Endpoint] {
		ck.add(fmt.Sprintf("device %q has an OSCORE context (lwm2m.oscore) but security %s: use security oscore, or remove the context", d.Endpoint, mode),
			"sms", "devices", idx, "security")
	}
	if smsDTLS(mode) && c.Mode == "proxy" && !d.Trigger {
		ck.add("proxy mode relays SMS-only devices in plain to the external server; DTLS over SMS needs mode: server", "sms", "devices", idx, "security")
	}
}

// validateServerCredentials checks lwm2m.certificate, private_key and ca.
func (c *Config) validateServerCredentials(ck *checker, rpk, x5 bool) {
	l := c.LwM2M
	if l.Certificate != "" && l.PrivateKey == "" {
		ck.add("certificate needs private_key", "lwm2m", "private_key")
	}
	if (rpk || x5) && l.PrivateKey == "" {
		ck.add("devices with raw public keys or certificates need the server's private_key (and for x509 its certificate)", "lwm2m", "private_key")
	}
	if x5 && l.CA == "" {
		ck.add("x509 devices need ca: the PEM file of the CAs that sign their certificates", "lwm2m", "ca")
	}
	if x5 && l.PrivateKey != "" && l.Certificate == "" {
		ck.add("x509 devices need the server's certificate (a raw key alone serves rpk devices)", "lwm2m", "certificate")
	}
	if l.PrivateKey != "" {
		if _, err := l.ServerCertificate(checkRawKey); err != nil {
			ck.add(err.Error(), "lwm2m", "private_key")
		}
	}
	if l.CA != "" {
		if _, err := l.CAPool(); err != nil {
			ck.add(err.Error(), "lwm2m", "ca")
		}
	}
}

// checkRawKey stands in for secure.NewRawKeyCertificate in validation
// (config does not import the DTLS package): it accepts the key kinds the
// DTLS suites use.
func checkRawKey(key any) (tls.Certificate, error) {
	if _, ok := key.(crypto.Signer); !ok {
		return tls.Certificate{}, fmt.Errorf("private_key: %T cannot sign", key)
	}
	return tls.Certificate{}, nil
}

// CAPool reads lwm2m.ca.
func (l LwM2M) CAPool() (*x509.CertPool, error) {
	b, err := os.ReadFile(l.CA)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", l.CA)
	}
	return p, nil
}

// KeyID is a short printable fingerprint of a key or certificate (the
// first 8 bytes of its SHA-256), for logs.
func KeyID(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:8])
}
