package bearer

import (
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Bearer is a datagram transport for whole CoAP messages.
//
// ReadFrom returns exactly one CoAP datagram per call; WriteTo sends exactly
// one. Implementations must be safe for concurrent use, as net.PacketConn is.
// A datagram larger than Params().MaxDatagram is refused by WriteTo with an
// error that wraps ErrTooLarge.
type Bearer interface {
	net.PacketConn
	// Params describes the bearer; it does not change over the bearer's life.
	Params() Params
}

// UnreachableReporter is implemented by a Bearer that can tell when a
// datagram it sent found nothing listening at its destination (an ICMP
// port unreachable, RFC 792 / RFC 4443): udp.Conn. OnUnreachable sets the
// function called with each such destination (it runs on the bearer's
// read or write path and must not block; nil stops the reports) and says
// whether the bearer can report at all.
type UnreachableReporter interface {
	OnUnreachable(fn func(peer net.Addr)) bool
}

// Params describes a bearer: its datagram sizes, its RFC 7252 §4.8
// transmission parameters and a cost hint. The derived values of §4.8.2
// (MAX_TRANSMIT_SPAN, MAX_TRANSMIT_WAIT, EXCHANGE_LIFETIME, NON_LIFETIME) are
// methods, computed from the fields. The zero Params describes no bearer
// (no datagram fits): start from UDPParams or a Bearer's Params.
type Params struct {
	// Name is a short name of the bearer kind: "udp", "dtls+udp", "sms", ...
	Name string
	// MaxDatagram is the largest datagram the bearer carries, in bytes.
	MaxDatagram int
	// PreferredDatagram is the datagram size that costs one unit on the
	// bearer (one SMS segment; the path MTU budget for UDP). Block-wise
	// transfers pick their block size so that a block fits in it.
	PreferredDatagram int

	// BlockDatagram is the message size block-wise transfers aim at: a body
	// whose message fits in it goes whole, a larger one goes in the largest
	// blocks (16..1024 bytes) that fit in it. 0 means PreferredDatagram. It
	// differs from PreferredDatagram where one big datagram costs less than a
	// block exchange per unit: on SMS a concatenated message of 8 segments
	// costs 8 SMS, the same body in 64-byte blocks costs 16 requests and 16
	// responses.
	BlockDatagram int

	// AckTimeout is ACK_TIMEOUT (RFC 7252: 2 s).
	AckTimeout time.Duration
	// AckRandomFactor is ACK_RANDOM_FACTOR (RFC 7252: 1.5); at least 1.
	AckRandomFactor float64
	// MaxRetransmit is MAX_RETRANSMIT (RFC 7252: 4). The LwM2M SMS binding
	// uses 0: no CoAP retransmission.
	MaxRetransmit int
	// NStart is NSTART, outstanding interactions per peer (RFC 7252: 1).
	NStart int
	// MaxLatency is MAX_LATENCY (RFC 7252: 100 s).
	MaxLatency time.Duration
	// ProcessingDelay is PROCESSING_DELAY (RFC 7252: ACK_TIMEOUT).
	ProcessingDelay time.Duration

	// CostPerDatagram is a relative cost hint for sending one preferred-size
	// datagram (0 for free bearers such as UDP, 1 for one SMS segment).
	CostPerDatagram float64

	// QBlock are the RFC 9177 Q-Block parameters (qblock.go); the zero
	// value serves Q-Block requests but sends none.
	QBlock QBlockParams
}

// RFC 7252 §4.8 defaults.
const (
	DefaultAckTimeout      = 2 * time.Second
	DefaultAckRandomFactor = 1.5
	DefaultMaxRetransmit   = 4
	DefaultNStart          = 1
	DefaultMaxLatency      = 100 * time.Second
)

// UDPParams returns the RFC 7252 default parameters for CoAP over UDP with
// the given name. MaxDatagram is the largest UDP payload (65,507 bytes on
// IPv4); PreferredDatagram is 1,152 bytes, the RFC 7252 §4.6 guidance
// (a 1,024-byte block plus header room) for an unknown path MTU.
func UDPParams(name string) Params {
	return Params{
		Name:              name,
		MaxDatagram:       65507,
		PreferredDatagram: 1152,
		AckTimeout:        DefaultAckTimeout,
		AckRandomFactor:   DefaultAckRandomFactor,
		MaxRetransmit:     DefaultMaxRetransmit,
		NStart:            DefaultNStart,
		MaxLatency:        DefaultMaxLatency,
		ProcessingDelay:   DefaultAckTimeout,
	}
}

// ErrInvalidParams is wrapped by Params.Validate errors.
var ErrInvalidParams = errors.New("bearer: invalid params")

// ErrInvalidOption is wrapped by NewEndpoint's error for an option out of
// its range or a nil bearer (the same name in every package of the module).
// The Endpoint's options are CoAP transmission parameters, so it is a kind
// of ErrInvalidParams: errors.Is(err, ErrInvalidParams) holds for it too.
var ErrInvalidOption = cfgcheck.Refines("bearer: invalid option", ErrInvalidParams)

// Validate reports whether p is usable by the message layer.
func (p Params) Validate() error {
	switch {
	case p.MaxDatagram < 16:
		return fmt.Errorf("%w: MaxDatagram %d < 16", ErrInvalidParams, p.MaxDatagram)
	case p.PreferredDatagram <= 0 || p.PreferredDatagram > p.MaxDatagram:
		return fmt.Errorf("%w: PreferredDatagram %d not in (0, MaxDatagram]", ErrInvalidParams, p.PreferredDatagram)
	case p.BlockDatagram < 0 || p.BlockDatagram > p.MaxDatagram:
		return fmt.Errorf("%w: BlockDatagram %d not in [0, MaxDatagram]", ErrInvalidParams, p.BlockDatagram)
	case p.AckTimeout <= 0:
		return fmt.Errorf("%w: AckTimeout %v <= 0", ErrInvalidParams, p.AckTimeout)
	case p.AckRandomFactor < 1 || math.IsNaN(p.AckRandomFactor) || math.IsInf(p.AckRandomFactor, 0):
		return fmt.Errorf("%w: AckRandomFactor %v < 1", ErrInvalidParams, p.AckRandomFactor)
	case p.MaxRetransmit < 0 || p.MaxRetransmit > 20:
		return fmt.Errorf("%w: MaxRetransmit %d not in [0, 20]", ErrInvalidParams, p.MaxRetransmit)
	case p.NStart < 1:
		return fmt.Errorf("%w: NStart %d < 1", ErrInvalidParams, p.NStart)
	case p.MaxLatency < 0 || p.ProcessingDelay < 0:
		return fmt.Errorf("%w: negative MaxLatency or ProcessingDelay", ErrInvalidParams)
	case p.CostPerDatagram < 0:
		return fmt.Errorf("%w: negative CostPerDatagram", ErrInvalidParams)
	}
	return p.QBlock.validate(p)
}

// BlockTarget returns BlockDatagram, or PreferredDatagram when it is 0.
func (p Params) BlockTarget() int {
	if p.BlockDatagram > 0 {
		return p.BlockDatagram
	}
	return p.PreferredDatagram
}

func (p Params) scaled(n int) time.Duration {
	return time.Duration(float64(p.AckTimeout) * float64(n) * p.AckRandomFactor)
}

// MaxTransmitSpan is MAX_TRANSMIT_SPAN: ACK_TIMEOUT × (2^MAX_RETRANSMIT − 1)
// × ACK_RANDOM_FACTOR (45 s with the defaults).
func (p Params) MaxTransmitSpan() time.Duration {
	return p.scaled(1<<p.MaxRetransmit - 1)
}

// MaxTransmitWait is MAX_TRANSMIT_WAIT: ACK_TIMEOUT × (2^(MAX_RETRANSMIT+1)
// − 1) × ACK_RANDOM_FACTOR (93 s with the defaults). It is the longest a
// requester waits for an acknowledgement of a CON message.
func (p Params) MaxTransmitWait() time.Duration {
	return p.scaled(1<<(p.MaxRetransmit+1) - 1)
}

// MaxRTT is MAX_RTT: 2 × MAX_LATENCY + PROCESSING_DELAY (202 s).
func (p Params) MaxRTT() time.Duration {
	return 2*p.MaxLatency + p.ProcessingDelay
}

// ExchangeLifetime is EXCHANGE_LIFETIME: MAX_TRANSMIT_SPAN + 2 × MAX_LATENCY
// + PROCESSING_DELAY (247 s with the defaults): how long a message ID is
// remembered for duplicate detection.
func (p Params) ExchangeLifetime() time.Duration {
	return p.MaxTransmitSpan() + 2*p.MaxLatency + p.ProcessingDelay
}

// NonLifetime is NON_LIFETIME: MAX_TRANSMIT_SPAN + MAX_LATENCY (145 s).
func (p Params) NonLifetime() time.Duration {
	return p.MaxTransmitSpan() + p.MaxLatency
}

// Cost returns the cost hint of sending a datagram of n bytes: the number of
// preferred-size units it occupies times CostPerDatagram.
func (p Params) Cost(n int) float64 {
	if p.CostPerDatagram == 0 || p.PreferredDatagram <= 0 {
		return 0
	}
	units := (n + p.PreferredDatagram - 1) / p.PreferredDatagram
	if units < 1 {
		units = 1
	}
	return float64(units) * p.CostPerDatagram
}

// ErrTooLarge is wrapped by WriteTo errors for datagrams over MaxDatagram.
var ErrTooLarge = errors.New("bearer: datagram too large")

// Identity is the authenticated identity of a peer, set by a security layer
// (bearer/secure) on the addresses it returns. A zero Identity means the peer
// is not authenticated (NoSec).
type Identity struct {
	// Mode is "psk", "rpk", "x509", "oscore" or "" (none).
	Mode string
	// PSKIdentity is the PSK identity the peer presented (mode "psk").
	PSKIdentity []byte
	// PublicKey is the peer's raw public key in DER SubjectPublicKeyInfo
	// form (mode "rpk"; for "x509" the leaf certificate's key).
	PublicKey []byte
	// Certificates is the peer's DER certificate chain, leaf first (mode "x509").
	Certificates [][]byte
	// OSCOREID is the peer's OSCORE Sender ID (our Recipient ID) and
	// OSCOREIDContext the context's ID Context, nil when absent (mode
	// "oscore", bearer/oscore).
	OSCOREID, OSCOREIDContext []byte
}

// IsZero reports whether the identity is empty (unauthenticated peer).
func (id Identity) IsZero() bool { return id.Mode == "" }

// String returns a short printable form, e.g. "psk:device-17".
func (id Identity) String() string {
	switch id.Mode {
	case "":
		return "none"
	case "psk":
		return "psk:" + string(id.PSKIdentity)
	case "oscore":
		if id.OSCOREIDContext != nil {
			return fmt.Sprintf("oscore:%x/%x", id.OSCOREIDContext, id.OSCOREID)
		}
		return fmt.Sprintf("oscore:%x", id.OSCOREID)
	default:
		return fmt.Sprintf("%s:%d-byte key", id.Mode, len(id.PublicKey))
	}
}

// IdentityAddr is implemented by addresses that carry the authenticated
// identity of the peer they name. A security layer returns such addresses
// from ReadFrom; the message layer hands the identity to request handlers.
// Network and String are those of the wrapped transport address, so a peer
// keeps the same key in maps whether or not it is authenticated.
type IdentityAddr interface {
	net.Addr
	PeerIdentity() Identity
}

// PeerIdentity returns the identity carried by addr, or a zero Identity.
func PeerIdentity(addr net.Addr) Identity {
	if ia, ok := addr.(IdentityAddr); ok {
		return ia.PeerIdentity()
	}
	return Identity{}
}

// AddrKey returns a comparable key naming a peer: network and address.
func AddrKey(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	return addr.Network() + "|" + addr.String()
}
