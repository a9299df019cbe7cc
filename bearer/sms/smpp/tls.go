package smpp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// TLSOptions are the operator's SMPP-over-TLS settings, as the daemon's
// configuration names them (tls_server_name, tls_ca_file, tls_cert_file,
// tls_key_file). There is deliberately no option to skip verification: the
// bind carries the account's password, and an SMSC with a private CA or a
// self-signed certificate is trusted by putting that CA (or the certificate
// itself) in CAFile, which pins it. The zero TLSOptions verifies the
// SMSC's certificate for the dialled host against the system's roots.
type TLSOptions struct {
	// ServerName is the name the SMSC's certificate must carry; empty means
	// the host the link dials (a name, or an IP address matched against the
	// certificate's IP SANs).
	ServerName string
	// CAFile is a PEM file of the CAs trusted for the SMSC instead of the
	// system's roots; empty means the system's roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// SMSCs that ask for one (both or neither).
	CertFile, KeyFile string
}

// Config returns the tls.Config for an SMSC at host (TLS 1.2 at least).
// Errors name the file that cannot be used.
func (o TLSOptions) Config(host string) (*tls.Config, error) {
	c := &tls.Config{ServerName: o.ServerName, MinVersion: tls.VersionTLS12}
	if c.ServerName == "" {
		c.ServerName = host
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("smpp: tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("smpp: tls_ca_file %s holds no PEM certificate", o.CAFile)
		}
		c.RootCAs = pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("smpp: tls_cert_file/tls_key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	case o.CertFile != "" || o.KeyFile != "":
		return nil, errors.New("smpp: tls_cert_file and tls_key_file go together")
	}
	return c, nil
}

// ErrTLS wraps a failed TLS session with the SMSC: its certificate not
// trusted or not for the name checked, or the SMSC refusing ours. It is
// retryable (the link binds again with backoff), and its text says which
// option is likely to fix it.
var ErrTLS error = &kindError{"smpp: TLS with the SMSC failed", true}

// tlsError explains err, met on a TLS connection in its handshake or at
// its first read, when it is a TLS failure, and returns it unchanged
// otherwise.
func tlsError(err error, handshake bool) error {
	if handshake && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		return fmt.Errorf("%w: the SMSC closed the connection in the TLS handshake (does it speak TLS on this port?): %w", ErrTLS, err)
	}
	var verr *tls.CertificateVerificationError
	if errors.As(err, &verr) {
		return fmt.Errorf("%w: the SMSC's certificate was not accepted (a private CA or self-signed certificate goes in tls_ca_file; a certificate for another name needs tls_server_name): %w", ErrTLS, err)
	}
	var rerr tls.RecordHeaderError
	if errors.As(err, &rerr) {
		return fmt.Errorf("%w: the SMSC does not speak TLS on this port (is tls: true meant for another port?): %w", ErrTLS, err)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" {
		return fmt.Errorf("%w: the SMSC refused the TLS session (one that asks for a client certificate needs tls_cert_file and tls_key_file): %w", ErrTLS, err)
	}
	return err
}
