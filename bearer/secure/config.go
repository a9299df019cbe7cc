package secure

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/elliptic"
)

// CipherSuiteID is pion/dtls's cipher suite identifier (the IANA number).
type CipherSuiteID = dtls.CipherSuiteID

// Cipher suites of RFC 7925 (the IoT TLS/DTLS profile used by LwM2M). They
// are the defaults; any other pion/dtls suite is opt-in via Config.CipherSuites.
const (
	TLS_PSK_WITH_AES_128_CCM_8         = dtls.TLS_PSK_WITH_AES_128_CCM_8         //nolint:revive,staticcheck // RFC name
	TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 = dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 //nolint:revive,staticcheck // RFC name
)

// Defaults applied to zero Config fields.
const (
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultIdleTimeout      = 10 * time.Minute
	DefaultMaxSessions      = 10000
	DefaultMaxHandshakes    = 256
	DefaultQueueLen         = 32
	DefaultCIDLength        = 6
	DefaultFlightInterval   = time.Second
)

// Sentinel errors callers branch on.
var (
	// ErrInvalidOption is wrapped by errors about an unusable Config or
	// option (the same name in every package of the module): credentials
	// missing or contradicting each other, a negative duration or size.
	// The error names the field.
	ErrInvalidOption = errors.New("secure: invalid option")
	// ErrConfig is the old name of ErrInvalidOption.
	//
	// Deprecated: use ErrInvalidOption.
	ErrConfig = ErrInvalidOption
	// ErrNoSession is wrapped by WriteTo errors when the destination has no
	// established DTLS session.
	ErrNoSession = errors.New("secure: no established DTLS session with peer")
	// ErrHandshake is wrapped by errors of a failed or timed-out handshake.
	ErrHandshake = errors.New("secure: DTLS handshake failed")
	// ErrPeerNotTrusted is wrapped when a peer's raw public key or
	// certificate is not accepted.
	ErrPeerNotTrusted = errors.New("secure: peer key not trusted")
	// ErrClosed is returned by operations on a closed Server or Conn; it
	// wraps net.ErrClosed.
	ErrClosed = fmt.Errorf("secure: closed: %w", netErrClosed)
	// ErrNotCreated is returned by a zero Server or Conn (not made by
	// NewServer or Dial), which behaves as a closed one: it wraps
	// ErrClosed.
	ErrNotCreated = fmt.Errorf("%w (zero value, not made by NewServer or Dial)", ErrClosed)
)

// Config configures a Server or a client Conn. The zero value of every knob
// means its default; a negative one (IdleTimeout aside: negative disables
// the expiry) makes NewServer and Dial fail with an error wrapping
// ErrInvalidOption that names it. Credentials must be set. A Config is not modified by
// this package and may be shared.
//
// Credentials, by security mode:
//   - PSK (RFC 7925 §3): the client sets PSKIdentity and PSKKey; the server
//     sets PSKLookup, called with the identity a client presents.
//   - X.509: Certificate is this side's chain and key; RootCAs verifies the
//     peer's chain. A server with RootCAs requires and verifies client
//     certificates; a client also checks ServerName when it is set.
//   - Raw public key: Certificate holds a self-signed certificate made by
//     NewRawKeyCertificate; VerifyRawKey decides whether the peer's
//     SubjectPublicKeyInfo is trusted (see TrustKeys). This is an emulation,
//     not RFC 7250 on the wire: see the package documentation.
//
// A server may enable PSK and certificates together; the client's offered
// cipher suites pick the mode.
type Config struct {
	// PSKIdentity and PSKKey are the client's PSK credentials.
	PSKIdentity []byte
	PSKKey      []byte
	// PSKLookup returns the key of a PSK identity on the server; an error
	// (or a nil key) fails the handshake. Keep it fast: it runs in the
	// handshake of that peer.
	PSKLookup func(identity []byte) ([]byte, error)

	// Certificate is this side's certificate chain and private key (X.509
	// or raw-public-key emulation).
	Certificate *tls.Certificate
	// RootCAs verifies the peer's X.509 chain.
	RootCAs *x509.CertPool
	// ServerName, on a client, is checked against the server certificate
	// (X.509 mode) and sent as SNI.
	ServerName string
	// VerifyRawKey, when set, accepts peers by the DER SubjectPublicKeyInfo
	// of their (self-signed) leaf certificate: nil error means trusted. A
	// peer whose chain verifies against RootCAs is accepted as X.509 first.
	VerifyRawKey func(spki []byte) error

	// CipherSuites overrides the suites offered or accepted. Default:
	// TLS_PSK_WITH_AES_128_CCM_8 when PSK is configured and
	// TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 when a certificate is.
	CipherSuites []CipherSuiteID

	// CIDLength sets RFC 9146 connection IDs; negative is refused
	// (ErrInvalidOption), more than 255 too.
	//
	// nil (the default): a server issues DefaultCIDLength-byte CIDs; a
	// client asks for no CID of its own but sends the CID a server
	// issues (so a NATed device keeps its session).
	//
	// new(0): no connection IDs at all. A server issues none; a client
	// offers no connection_id extension, so its records never carry the
	// CID+1 bytes (what DTLS over SMS wants: an SMS does not change
	// address).
	//
	// new(n), n > 0: a server issues n-byte CIDs; a client also asks the
	// server to send it records with an n-byte CID of its own (not when
	// it offers a session for resumption: see Sessions).
	CIDLength *int

	// HandshakeTimeout bounds each handshake (default 30 s).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a server session with no traffic in either
	// direction for that long (default 10 min; negative disables).
	IdleTimeout time.Duration
	// MaxSessions bounds the server's sessions, handshaking or
	// established (default 10,000). ClientHellos over it are dropped and
	// counted in Stats.Refused.
	MaxSessions int
	// MaxHandshakes bounds concurrent server handshakes (default 256).
	MaxHandshakes int
	// QueueLen bounds each peer's inbound queue of undecrypted datagrams
	// (default 32); overflow is dropped and counted.
	QueueLen int
	// FlightInterval is the initial handshake retransmission timeout
	// (default 1 s, doubled on each retransmission as RFC 6347 §4.2.4 says).
	FlightInterval time.Duration
	// MTU is the largest datagram a handshake flight is packed into
	// (default: min(inner MaxDatagram, 1200)); handshake messages are
	// fragmented to fit. For SMS, SMSHandshakeMTU packs each flight into
	// one concatenated SMS (140 kept each handshake datagram in one SMS
	// segment, at 25 bytes of record and fragment headers per 115 bytes of
	// a certificate). A single record that cannot be fragmented (a
	// ClientHello of 125 bytes or more) may still exceed a very small MTU.
	MTU int

	// Sessions, when set, keeps sessions for resumption (RFC 5246 §7.3
	// abbreviated handshake; see SessionCache): a server stores the
	// sessions it makes and resumes those a client offers; a client
	// offers the session it has for the server's address. Nil: every
	// handshake is a full one.
	Sessions *SessionCache
	// SessionKey, on a client, is the key its session is kept under in
	// Sessions instead of the server's address: give the same key (the
	// LwM2M server's URI, say) to the clients a device runs over UDP and
	// over SMS, and the session one made is offered by the other, so a
	// device that moves from one bearer to the other resumes instead of
	// paying a full handshake (the servers must share their Sessions).
	SessionKey string

	// SkipHelloVerify, on a server, answers a ClientHello at once instead
	// of with a HelloVerifyRequest cookie first (RFC 6347 §4.2.1 lets a
	// server skip the cookie exchange where amplification is not a
	// problem). The cookie proves that the client receives at its source
	// address; on SMS, where the mobile network vouches for the
	// originating number and the SMS bearer takes datagrams only from
	// configured numbers, it proves nothing and costs two SMS per
	// handshake. Never set it on UDP.
	SkipHelloVerify bool
	// QuietClose ends sessions without a close_notify alert when this
	// side ends them itself: a server's idle expiry and Close, a client
	// Conn's Close. On SMS each alert is an SMS, to a device that may be
	// asleep or to a server that forgets the session when it expires
	// anyway. A session replaced by a new handshake from the same peer
	// always ends quietly (the peer has abandoned it), and
	// Server.CloseSession always sends the alert.
	QuietClose bool

	// Logger receives debug and warning logs (default: none, a discard
	// logger).
	Logger *slog.Logger
}

// issuedCIDLen is the length of the CIDs a server issues: 0 for none.
func (c *Config) issuedCIDLen() int {
	if c.CIDLength == nil {
		return DefaultCIDLength
	}
	return *c.CIDLength
}

// ownCIDLen is the length of the CID a client asks for itself: 0 for none.
func (c *Config) ownCIDLen() int {
	if c.CIDLength == nil {
		return 0
	}
	return *c.CIDLength
}

func (c *Config) hasPSKClient() bool { return len(c.PSKIdentity) > 0 || len(c.PSKKey) > 0 }

// withDefaults returns a copy of c with defaults filled in.
func (c *Config) withDefaults() Config {
	d := *c
	if d.HandshakeTimeout == 0 {
		d.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if d.IdleTimeout == 0 {
		d.IdleTimeout = DefaultIdleTimeout
	}
	if d.MaxSessions == 0 {
		d.MaxSessions = DefaultMaxSessions
	}
	if d.MaxHandshakes == 0 {
		d.MaxHandshakes = DefaultMaxHandshakes
	}
	if d.QueueLen == 0 {
		d.QueueLen = DefaultQueueLen
	}
	if d.FlightInterval == 0 {
		d.FlightInterval = DefaultFlightInterval
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}

// suites returns the cipher suites for this config.
func (c *Config) suites(server bool) []dtls.CipherSuiteID {
	if len(c.CipherSuites) > 0 {
		return c.CipherSuites
	}
	var s []dtls.CipherSuiteID
	if (server && c.PSKLookup != nil) || (!server && c.hasPSKClient()) {
		s = append(s, TLS_PSK_WITH_AES_128_CCM_8)
	}
	if c.Certificate != nil {
		s = append(s, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8)
	}
	return s
}

// recordOverhead returns the worst-case bytes a DTLS record adds to an
// application datagram with the configured suites: the 13-byte header plus
// the suite's explicit nonce/IV, tag/MAC and padding, plus the CID and the
// one-byte inner content type of RFC 9146 records when cidLen > 0.
func recordOverhead(suites []dtls.CipherSuiteID, cidLen int) int {
	if len(suites) == 0 {
		suites = []dtls.CipherSuiteID{TLS_PSK_WITH_AES_128_CCM_8}
	}
	worst := 0
	for _, id := range suites {
		o := suiteOverhead(id)
		if o > worst {
			worst = o
		}
	}
	o := recordHeaderLen + worst
	if cidLen > 0 {
		o += cidLen + 1
	}
	return o
}

// suiteOverhead is the per-record expansion of a cipher suite, excluding
// the record header.
func suiteOverhead(id dtls.CipherSuiteID) int {
	switch dtls.CipherSuiteName(id) {
	case "TLS_PSK_WITH_AES_128_CCM_8", "TLS_PSK_WITH_AES_256_CCM_8", "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8":
		return ccm8ExplicitNonce + ccm8Tag // RFC 6655: 8-byte nonce_explicit, 8-byte tag
	case "TLS_PSK_WITH_AES_128_CCM", "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
		"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"TLS_PSK_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384":
		return 8 + 16 // 8-byte explicit nonce, 16-byte tag
	case "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
		"TLS_PSK_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256":
		return 16 // implicit nonce (RFC 7905), 16-byte tag
	default:
		// CBC suites: 16-byte IV, up to 16 bytes of padding, SHA-256 MAC (32).
		return 16 + 16 + 32
	}
}

// handshakeFragmentOverhead is the record header (13) plus handshake
// message header (12, RFC 6347 §4.2.2) around a handshake fragment;
// minFragment is the smallest fragment size this package asks pion for.
const (
	handshakeFragmentOverhead = recordHeaderLen + 12
	minFragment               = 32
)

// validate reports config errors common to both sides: every field that
// cannot work, named in one error wrapping ErrInvalidOption.
func (c *Config) validate(server bool) error {
	if c == nil {
		return fmt.Errorf("%w: nil config", ErrInvalidOption)
	}
	var f cfgcheck.Fields
	if server {
		if c.PSKLookup == nil && c.Certificate == nil {
			f.Badf("server needs PSKLookup or Certificate")
		}
	} else {
		if c.hasPSKClient() && (len(c.PSKIdentity) == 0 || len(c.PSKKey) == 0) {
			f.Badf("PSK needs both PSKIdentity and PSKKey")
		}
		if !c.hasPSKClient() && c.Certificate == nil {
			f.Badf("client needs PSK or Certificate")
		}
		if c.Certificate != nil && c.RootCAs == nil && c.VerifyRawKey == nil {
			f.Badf("certificate mode needs RootCAs or VerifyRawKey to authenticate the server")
		}
	}
	if c.Certificate != nil && len(c.Certificate.Certificate) == 0 {
		f.Badf("empty certificate chain")
	}
	if server && c.Certificate != nil && c.PSKLookup == nil && c.RootCAs == nil && c.VerifyRawKey == nil {
		f.Badf("certificate mode needs RootCAs or VerifyRawKey to authenticate clients")
	}
	if c.SessionKey != "" && c.Sessions == nil {
		f.Badf("SessionKey without Sessions")
	}
	if n := c.CIDLength; n != nil && (*n < 0 || *n > 255) {
		f.Badf("CIDLength %d: want nil (default), 0 (no connection IDs) or 1..255", *n)
	}
	cfgcheck.NonNegative(&f, "HandshakeTimeout", c.HandshakeTimeout)
	cfgcheck.NonNegative(&f, "MaxSessions", c.MaxSessions)
	cfgcheck.NonNegative(&f, "MaxHandshakes", c.MaxHandshakes)
	cfgcheck.NonNegative(&f, "QueueLen", c.QueueLen)
	cfgcheck.NonNegative(&f, "FlightInterval", c.FlightInterval)
	cfgcheck.NonNegative(&f, "MTU", c.MTU)
	return f.Err(ErrInvalidOption, "Config")
}

// peerVerifier checks a peer's certificate chain: X.509 against RootCAs,
// else raw public key through VerifyRawKey. It records the mode it accepted.
type peerVerifier struct {
	roots      *x509.CertPool
	serverName string // checked only by clients, only in X.509 mode
	rawKey     func([]byte) error
	mode       string // "x509" or "rpk" once verified

	mu  sync.Mutex
	err error // the last verification failure
}

// failure returns the last verification error, if any: a clearer cause
// than the alert pion reports afterwards.
func (v *peerVerifier) failure() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

func (v *peerVerifier) verify(rawCerts [][]byte, chains [][]*x509.Certificate) error {
	err := v.check(rawCerts)
	if err != nil {
		v.mu.Lock()
		v.err = err
		v.mu.Unlock()
	}
	return err
}

func (v *peerVerifier) check(rawCerts [][]byte) error {
	if len(rawCerts) == 0 {
		return fmt.Errorf("%w: no certificate", ErrPeerNotTrusted)
	}
	certs := make([]*x509.Certificate, 0, len(rawCerts))
	for _, raw := range rawCerts {
		cert, err := x509.ParseCertificate(raw)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrPeerNotTrusted, err)
		}
		certs = append(certs, cert)
	}
	var x509Err error
	if v.roots != nil {
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, x509Err = certs[0].Verify(x509.VerifyOptions{
			Roots:         v.roots,
			Intermediates: inter,
			DNSName:       v.serverName,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if x509Err == nil {
			v.mode = "x509"
			return nil
		}
	}
	if v.rawKey != nil {
		if err := v.rawKey(certs[0].RawSubjectPublicKeyInfo); err != nil {
			return fmt.Errorf("%w: %w", ErrPeerNotTrusted, err)
		}
		v.mode = "rpk"
		return nil
	}
	if x509Err != nil {
		return fmt.Errorf("%w: %w", ErrPeerNotTrusted, x509Err)
	}
	return fmt.Errorf("%w: no trust anchor configured", ErrPeerNotTrusted)
}

// TrustKeys returns a VerifyRawKey function that accepts exactly the given
// DER SubjectPublicKeyInfo values (compared by SHA-256).
func TrustKeys(spkis ...[]byte) func(spki []byte) error {
	set := make(map[[32]byte]bool, len(spkis))
	for _, k := range spkis {
		set[sha256.Sum256(k)] = true
	}
	return func(spki []byte) error {
		if set[sha256.Sum256(spki)] {
			return nil
		}
		return fmt.Errorf("%w: public key %x… not in trusted set", ErrPeerNotTrusted, prefix(spki))
	}
}

func prefix(b []byte) []byte {
	h := sha256.Sum256(b)
	return bytes.Clone(h[:6])
}

// pionOptions returns the pion/dtls options shared by both sides; v is the
// certificate verifier of this connection (nil in pure PSK mode).
func (c *Config) pionOptions(server bool, mtu int, v *peerVerifier) []dtls.Option {
	opts := []dtls.Option{
		dtls.WithCipherSuites(c.suites(server)...),
		dtls.WithFlightInterval(c.FlightInterval),
		dtls.WithMTU(pionMTU(mtu, c.Certificate != nil)),
		// RFC 7925 §4.4: secp256r1 is mandatory (offered and accepted);
		// X25519 is preferred: its key share is 32 bytes instead of 65,
		// 33 bytes less in the ServerKeyExchange and the ClientKeyExchange
		// of a certificate handshake (over SMS one SMS of the device's
		// flight, TestDTLSHandshakeSMSCount in bearer/sms).
		dtls.WithEllipticCurves(elliptic.X25519, elliptic.P256),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithLoggerFactory(slogLoggerFactory{c.Logger}),
	}
	if c.Certificate != nil {
		opts = append(opts, dtls.WithCertificates(*c.Certificate))
	}
	if c.Sessions != nil {
		var st dtls.SessionStore = c.Sessions
		if !server && c.SessionKey != "" {
			st = keyedSessions{c.Sessions, []byte(c.SessionKey)}
		}
		opts = append(opts, dtls.WithSessionStore(st))
	}
	if v != nil {
		// Verification is ours (peerVerifier) so that X.509 and pinned raw
		// keys are handled alike; pion's own chain check is skipped.
		opts = append(opts, dtls.WithVerifyPeerCertificate(v.verify))
		if !server {
			opts = append(opts, dtls.WithInsecureSkipVerify(true))
		}
	}
	return opts
}

// SMSHandshakeMTU is the handshake datagram size for DTLS over SMS: 8
// segments of a concatenated 8-bit SMS (134 bytes each after the 6-byte
// concatenation header). A flight goes as one datagram, split by the SMS
// bearer into as many segments as its bytes need, instead of one datagram
// per 140-byte SMS with a 13-byte record header and a 12-byte fragment
// header in each: a raw-public-key handshake takes 11 SMS instead of 15,
// X.509 with short certificates 11 instead of 15 (TestDTLSHandshakeSMSCount
// in bearer/sms; a PSK handshake stays 4). Losing a segment loses the
// whole datagram, but DTLS 1.2 retransmits whole flights anyway (RFC 6347
// §4.2.4), so a lost segment costs the same flight either way.
const SMSHandshakeMTU = 8 * 134

// pionMTU is the value given to pion's WithMTU for datagrams of at most
// mtu bytes. pion uses it twice: as the largest handshake fragment (which
// travels with a 12-byte handshake header in a 13-byte record header) and
// as the bound below which it packs a flight's records into one datagram.
// With certificates (messages of hundreds of bytes) the fragments must fit
// mtu, so it is mtu−25, and records are packed only below that. A PSK
// handshake has no message over mtu−25 bytes short of a 100-byte PSK
// identity, so there the packing bound counts: mtu+1 packs records up to
// mtu bytes (pion packs while the total stays below its MTU), and the
// ServerHello and ServerHelloDone of a full handshake go in one SMS
// instead of two.
func pionMTU(mtu int, certificates bool) int {
	if certificates {
		return max(mtu-handshakeFragmentOverhead, minFragment)
	}
	return mtu + 1
}

// checkSuitesKnown rejects unknown cipher suite IDs early.
func checkSuitesKnown(ids []dtls.CipherSuiteID) error {
	for _, id := range ids {
		if name := dtls.CipherSuiteName(id); len(name) > 2 && name[:2] == "0x" {
			return fmt.Errorf("%w: unknown cipher suite %s", ErrInvalidOption, name)
		}
	}
	return nil
}

// identityFromState builds the bearer.Identity of an authenticated peer.
func identityFromState(st dtls.State, mode string, server bool) bearer.Identity {
	if len(st.PeerCertificates) > 0 {
		id := bearer.Identity{Mode: mode, Certificates: st.PeerCertificates}
		if cert, err := x509.ParseCertificate(st.PeerCertificates[0]); err == nil {
			id.PublicKey = cert.RawSubjectPublicKeyInfo
		}
		if mode == "rpk" {
			id.Certificates = nil
		}
		return id
	}
	if server && st.IdentityHint != nil {
		return bearer.Identity{Mode: "psk", PSKIdentity: bytes.Clone(st.IdentityHint)}
	}
	return bearer.Identity{Mode: "psk"}
}
