package smpp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
	"github.com/m2mbearer/m2mbearer/internal/smppwire"
)

// BindMode is how the link binds.
type BindMode int

const (
	// Transceiver: one bind_transceiver session sends and receives (default).
	Transceiver BindMode = iota
	// TransmitterReceiver: a bind_transmitter and a bind_receiver session,
	// for SMSCs that do not offer transceivers.
	TransmitterReceiver
)

// Concat is how concatenated SMS go to the SMSC.
type Concat int

const (
	// ConcatUDH sends each segment with its TS 23.040 UDH in short_message
	// and esm_class UDHI (default; every SMSC accepts it).
	ConcatUDH Concat = iota
	// ConcatSAR sends each segment without the concatenation IE, with the
	// sar_msg_ref_num, sar_total_segments and sar_segment_seqnum TLVs.
	ConcatSAR
	// ConcatPayload sends the whole datagram in one submit_sm's
	// message_payload; the SMSC segments it. Segments are kept durably by
	// the link until the last one arrives.
	ConcatPayload
)

// ParseConcat reads "udh", "sar" or "payload".
func ParseConcat(s string) (Concat, error) {
	switch strings.ToLower(s) {
	case "", "udh":
		return ConcatUDH, nil
	case "sar":
		return ConcatSAR, nil
	case "payload", "message_payload":
		return ConcatPayload, nil
	}
	return 0, fmt.Errorf("smpp: concat %q: want udh, sar or payload", s)
}

func (c Concat) String() string {
	return [...]string{"udh", "sar", "payload"}[c]
}

// Config configures a Link. The zero value of every optional field is a
// working default; a negative size, rate or duration, or a maximum below
// its minimum, makes Dial fail with an error wrapping ErrInvalidOption that
// names the field.
type Config struct {
	// Name identifies the link in logs, metrics and its state file.
	Name string
	// Addr is the SMSC's host:port. Required.
	Addr string
	// TLS, when non-nil, wraps the connection (SMPP over TLS).
	TLS *tls.Config
	// SystemID, Password and SystemType are the bind credentials
	// (at most 15, 8 and 12 characters).
	SystemID, Password, SystemType string
	// Bind is the bind mode.
	Bind BindMode
	// Sources are the numbers this link may send from, in any form; the
	// first is used when a send names none. Required.
	Sources []string
	// SourceTON and SourceNPI override the source address TON/NPI that
	// the number's form implies (see SourceAddress); nil keeps the rule.
	SourceTON, SourceNPI *byte
	// Window bounds submit_sm outstanding per bind (default 10).
	Window int
	// Rate limits submit_sm per second (0: no limit); Burst is the bucket
	// size (default 1).
	Rate  float64
	Burst int
	// Concat is how concatenated SMS are submitted.
	Concat Concat
	// StateDir holds the link's durable correlation state
	// (smpp-<Name>.db). Required unless State is set.
	StateDir string
	// State, when set, is the correlation state the link shares with the
	// other links bound to the same SMSC account (see State); its owner
	// closes it after the links.
	State *State
	// EnquireLink is the keep-alive interval (default 30 s).
	EnquireLink time.Duration
	// ResponseTimeout bounds the wait for any response (default 10 s).
	ResponseTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the re-bind backoff (defaults 1 s
	// and 60 s, or ReconnectMin if longer); ThrottleMin and ThrottleMax the pause after
	// ESME_RTHROTTLED / ESME_RMSGQFUL (defaults 200 ms and 30 s).
	ReconnectMin, ReconnectMax time.Duration
	ThrottleMin, ThrottleMax   time.Duration
	// ReceiptMaxAge is how long a correlation waits for its receipt
	// (default 72 h, past any SMSC validity period).
	ReceiptMaxAge time.Duration
	// ReceiptHold bounds how long a receipt whose message_id is not stored
	// yet is held while submits are in flight (it overtook the
	// submit_sm_resp or the store of its correlation); default
	// ResponseTimeout. It is released as soon as those submits ended.
	ReceiptHold time.Duration
	// PayloadSetMaxAge is how long ConcatPayload keeps the segments of a
	// set whose other segments never came (the outbox entry expired or
	// failed midway); default 72 h. It must exceed the outbox's entry
	// lifetime (24 h by default), or a set still being sent could go.
	PayloadSetMaxAge time.Duration
	// MaxPayloadSets bounds the incomplete ConcatPayload sets kept (default
	// 4096); a new set beyond it evicts the oldest. The outbox sends one
	// entry per destination at a time, so the sets being sent number at
	// most its sends in flight: beyond them only leftovers of entries that
	// ended midway are held.
	MaxPayloadSets int
	// PruneInterval is how often correlations past ReceiptMaxAge and sets
	// past PayloadSetMaxAge are removed (default 1 h; also at Dial).
	PruneInterval time.Duration
	// InboundBuffer bounds the Inbound channel (default 256).
	InboundBuffer int
	// Logger receives the link's logs (default: none, a discard logger).
	Logger *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// ErrInvalidOption is wrapped by Dial's error for a Config that cannot work:
// a required field missing, a negative size, rate or duration, or bounds
// that contradict each other (ReconnectMax below ReconnectMin). The error
// names every such field.
var ErrInvalidOption = errors.New("smpp: invalid option")

func (c *Config) defaults() error {
	var f cfgcheck.Fields
	if c.Addr == "" {
		f.Badf("Addr is required")
	}
	if c.StateDir == "" && c.State == nil {
		f.Badf("StateDir or State is required (receipt correlation is durable)")
	}
	if len(c.Sources) == 0 {
		f.Badf("Sources needs at least one number")
	}
	if c.Name == "" {
		c.Name = c.Addr
	}
	cfgcheck.Default(&f, "Window", &c.Window, 10)
	cfgcheck.Default(&f, "Burst", &c.Burst, 1)
	cfgcheck.NonNegative(&f, "Rate", c.Rate)
	if c.Concat < ConcatUDH || c.Concat > ConcatPayload {
		f.Badf("Concat %d is not ConcatUDH, ConcatSAR or ConcatPayload", int(c.Concat))
	}
	if c.Bind < Transceiver || c.Bind > TransmitterReceiver {
		f.Badf("Bind %d is not Transceiver or TransmitterReceiver", int(c.Bind))
	}
	cfgcheck.Default(&f, "EnquireLink", &c.EnquireLink, 30*time.Second)
	cfgcheck.Default(&f, "ResponseTimeout", &c.ResponseTimeout, 10*time.Second)
	cfgcheck.Default(&f, "ReconnectMin", &c.ReconnectMin, time.Second)
	cfgcheck.Default(&f, "ReconnectMax", &c.ReconnectMax, max(60*time.Second, c.ReconnectMin))
	cfgcheck.Default(&f, "ThrottleMin", &c.ThrottleMin, 200*time.Millisecond)
	cfgcheck.Default(&f, "ThrottleMax", &c.ThrottleMax, max(30*time.Second, c.ThrottleMin))
	cfgcheck.Default(&f, "ReceiptMaxAge", &c.ReceiptMaxAge, 72*time.Hour)
	cfgcheck.Default(&f, "ReceiptHold", &c.ReceiptHold, c.ResponseTimeout)
	cfgcheck.Default(&f, "PayloadSetMaxAge", &c.PayloadSetMaxAge, 72*time.Hour)
	cfgcheck.Default(&f, "PruneInterval", &c.PruneInterval, time.Hour)
	cfgcheck.Default(&f, "MaxPayloadSets", &c.MaxPayloadSets, 4096)
	cfgcheck.Default(&f, "InboundBuffer", &c.InboundBuffer, 256)
	if c.ReconnectMax > 0 && c.ReconnectMax < c.ReconnectMin {
		f.Badf("ReconnectMax %v is below ReconnectMin %v", c.ReconnectMax, c.ReconnectMin)
	}
	if c.ThrottleMax > 0 && c.ThrottleMax < c.ThrottleMin {
		f.Badf("ThrottleMax %v is below ThrottleMin %v", c.ThrottleMax, c.ThrottleMin)
	}
	for _, b := range []struct {
		name string
		bind smppwire.Bind
	}{{"SystemID", smppwire.Bind{SystemID: c.SystemID}}, {"Password", smppwire.Bind{Password: c.Password}},
		{"SystemType", smppwire.Bind{SystemType: c.SystemType}}} {
		if _, err := b.bind.Marshal(); err != nil {
			f.Badf("%s: %v", b.name, err)
		}
	}
	if err := f.Err(ErrInvalidOption, "Config"); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Address is an SMPP address with its TON and NPI.
type Address struct {
	TON, NPI byte
	Addr     string
}

// SourceAddress applies the source address rules to a configured number:
// "+" and digits is international E.164 (TON 1, NPI 1, digits without
// "+"); digits alone are national (TON 2, NPI 1) unless they are a short
// code of at most 8 digits (TON 3 network-specific, NPI 0); anything else
// is alphanumeric (TON 5, NPI 0, at most 11 characters, GSM 03.38). An
// alphanumeric sender cannot be replied to, so devices never learn one as
// their server number; it is accepted for completeness and logged.
func SourceAddress(n string) (Address, error) {
	n = strings.TrimSpace(n)
	switch {
	case n == "":
		return Address{}, errors.New("smpp: empty source number")
	case n[0] == '+' && allDigits(n[1:]) && len(n) > 1 && len(n) <= 16:
		return Address{TON: smppwire.TONInternational, NPI: smppwire.NPIISDN, Addr: n[1:]}, nil
	case allDigits(n) && len(n) <= 8:
		return Address{TON: 3, NPI: smppwire.NPIUnknown, Addr: n}, nil
	case allDigits(n) && len(n) <= 20:
		return Address{TON: smppwire.TONNational, NPI: smppwire.NPIISDN, Addr: n}, nil
	case len(n) <= 11 && printableGSM(n):
		return Address{TON: smppwire.TONAlphanumeric, NPI: smppwire.NPIUnknown, Addr: n}, nil
	}
	return Address{}, fmt.Errorf("smpp: source %q is neither a number nor an alphanumeric sender of at most 11 characters", n)
}

// DestAddress is the destination of an E.164 number "+digits" (TON 1,
// NPI 1); other forms are national (TON 2, NPI 1) or unknown.
func DestAddress(n string) Address {
	if strings.HasPrefix(n, "+") {
		return Address{TON: smppwire.TONInternational, NPI: smppwire.NPIISDN, Addr: n[1:]}
	}
	return Address{TON: smppwire.TONUnknown, NPI: smppwire.NPIISDN, Addr: n}
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func printableGSM(s string) bool {
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return false
		}
	}
	return true
}

// normalise returns the key a source or SIM is known by: "+digits" for
// international numbers, the text otherwise.
func normalise(n string) string {
	n = strings.TrimSpace(n)
	if strings.HasPrefix(n, "+") {
		var b strings.Builder
		b.WriteByte('+')
		for i := 1; i < len(n); i++ {
			if n[i] >= '0' && n[i] <= '9' {
				b.WriteByte(n[i])
			}
		}
		return b.String()
	}
	return n
}
