package secure

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"
)

// NewRawKeyCertificate wraps a raw key pair in a self-signed certificate so
// pion/dtls can carry it, for the raw-public-key emulation: the peer pins
// the certificate's SubjectPublicKeyInfo (Config.VerifyRawKey, TrustKeys)
// and ignores everything else in it (subject, validity, signature). The key
// should be an ECDSA P-256 key for TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8.
// The certificate is as short as RFC 5280 lets it be (a 3-character
// common name as issuer and subject, no extensions): it travels in every
// full handshake, and over SMS 29 bytes less in each direction is one SMS
// less per handshake (TestDTLSHandshakeSMSCount in bearer/sms). pion/dtls
// v3 has no RFC 7250 raw public keys (no client_certificate_type /
// server_certificate_type extensions, no Certificate message of a bare
// SubjectPublicKeyInfo), hence this emulation.
func NewRawKeyCertificate(key crypto.Signer) (tls.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "rpk"},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: raw key certificate: %w", ErrInvalidOption, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// PublicKeyInfo returns the DER SubjectPublicKeyInfo of a public key, the
// form LwM2M Security objects store raw public keys in (RFC 7250 §3).
func PublicKeyInfo(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	return der, nil
}
