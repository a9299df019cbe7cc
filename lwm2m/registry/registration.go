package registry

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unique"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
)

// Version is the LwM2M enabler version a client registered with.
type Version uint8

// Supported LwM2M versions.
const (
	V1_0 Version = iota + 1
	V1_1
	V1_2
)

// String returns "1.0", "1.1", "1.2" or "?".
func (v Version) String() string {
	switch v {
	case V1_0:
		return "1.0"
	case V1_1:
		return "1.1"
	case V1_2:
		return "1.2"
	}
	return "?"
}

// Binding is a set of transports a client can be reached over (Core 1.1
// §5.2.1.1, Transport §6.4): a bit set of U, T, S and N. Queue mode is kept
// apart in Registration.Queue; a 1.0 binding "UQ" is BindingU with Queue set.
type Binding uint8

// Binding bits.
const (
	BindingU Binding = 1 << iota // UDP
	BindingT                     // TCP
	BindingS                     // SMS
	BindingN                     // Non-IP
)

// Has reports whether every bit of x is in b.
func (b Binding) Has(x Binding) bool { return b&x == x && x != 0 }

// String returns the 1.1 letters in canonical order ("U", "US", "UTSN").
func (b Binding) String() string {
	var sb strings.Builder
	for i, c := range "UTSN" {
		if b&(1<<i) != 0 {
			sb.WriteRune(c)
		}
	}
	return sb.String()
}

// BindingMode returns the binding as the client's version writes it: for 1.0
// one of U, UQ, S, SQ, US, UQS (queue mode inside the binding); for 1.1 and
// later the letters only, queue mode being the separate Q parameter.
func BindingMode(v Version, b Binding, queue bool) string {
	if v != V1_0 {
		return b.String()
	}
	var sb strings.Builder
	if b&BindingU != 0 {
		sb.WriteByte('U')
		if queue {
			sb.WriteByte('Q')
		}
	}
	if b&BindingS != 0 {
		sb.WriteByte('S')
		if queue && b&BindingU == 0 {
			sb.WriteByte('Q')
		}
	}
	return sb.String()
}

// Formats is a set of content formats a client announced with the "ct"
// attribute of its root link (Core 1.1 §6.2.1). Only the formats LwM2M
// defines have a bit; other numbers are ignored.
type Formats uint16

// Content-format bits.
const (
	FormatText      Formats = 1 << iota // 0 text/plain
	FormatLink                          // 40 application/link-format
	FormatOpaque                        // 42 application/octet-stream
	FormatCBOR                          // 60 application/cbor
	FormatSenMLJSON                     // 110
	FormatSenMLCBOR                     // 112
	FormatTLV                           // 11542
	FormatJSON                          // 11543 (LwM2M 1.0 JSON)
	FormatLwM2MCBOR                     // 11544
)

// formatNumbers are the formats of the bits above, in bit order.
var formatNumbers = [...]content.Format{content.Text, content.CoreLink, content.Opaque, content.CBOR,
	content.SenMLJSON, content.SenMLCBOR, content.TLV, content.OldJSON, content.LwM2MCBOR}

// FormatOf returns the bit of a CoAP content-format number, or 0.
func FormatOf(ct uint16) Formats {
	for i, n := range formatNumbers {
		if n == content.Format(ct) {
			return 1 << i
		}
	}
	return 0
}

// Has reports whether the CoAP content-format number ct is in f.
func (f Formats) Has(ct uint16) bool { b := FormatOf(ct); return b != 0 && f&b != 0 }

// Numbers returns the CoAP content-format numbers in f, ascending.
func (f Formats) Numbers() []uint16 {
	var out []uint16
	for i, n := range formatNumbers {
		if f&(1<<i) != 0 {
			out = append(out, uint16(n))
		}
	}
	return out
}

// NoInstance marks an ObjectLink that names an object, not an instance.
const NoInstance = 0xFFFF

// ObjectLink is one entry of the client's object list: "</o>" or "</o/i>",
// with the object version of a "ver" attribute (0 when absent, meaning the
// version the client's LwM2M version implies). It is 8 bytes.
//
// The zero ObjectLink is "</0/0>" with no version.
type ObjectLink struct {
	Object   uint16
	Instance uint16 // NoInstance for an object link without instance
	VerMajor uint8
	VerMinor uint8
}

// HasInstance reports whether the link names an object instance.
func (l ObjectLink) HasInstance() bool { return l.Instance != NoInstance }

// Version returns "major.minor", or "" when the link carried no ver.
func (l ObjectLink) Version() string {
	if l.VerMajor == 0 && l.VerMinor == 0 {
		return ""
	}
	return strconv.Itoa(int(l.VerMajor)) + "." + strconv.Itoa(int(l.VerMinor))
}

// String returns the link in CoRE form, e.g. "</3/0>" or "</1>;ver=1.1".
func (l ObjectLink) String() string {
	s := "</" + strconv.Itoa(int(l.Object))
	if l.HasInstance() {
		s += "/" + strconv.Itoa(int(l.Instance))
	}
	s += ">"
	if v := l.Version(); v != "" {
		s += ";ver=" + v
	}
	return s
}

// Registration is one registered LwM2M client. The store treats a
// Registration as immutable once added: Update produces a new value, so a
// Registration obtained from a store can be read without locks.
//
// The zero Registration names no endpoint, peer or object, and expired at
// the Unix epoch (ExpiresAt).
type Registration struct {
	// ID is the registration's location, "/rd/<ID in base 36>" (Location).
	ID uint64
	// Endpoint is the Endpoint Client Name ("ep").
	Endpoint string
	// Lifetime is "lt" in seconds.
	Lifetime uint32
	// Version is the client's LwM2M version ("lwm2m").
	Version Version
	// Binding is the transports of "b"; Queue is queue mode ("Q" in 1.1+,
	// the "Q" letter of a 1.0 binding).
	Binding Binding
	Queue   bool
	// Formats is the root link's "ct" announcement (1.1+), 0 when absent.
	Formats Formats
	// SMS is the client's MSISDN ("sms"), "" when absent.
	SMS string
	// Objects is the object list of the payload, in the client's order.
	Objects []ObjectLink

	altPath   unique.Handle[string] // zero handle: "/"
	transport unique.Handle[string] // zero handle: ""
	node      unique.Handle[string] // zero handle: ""
	// Addr is the peer address for UDP-like peers (the source address of
	// the last Register or Update); Other holds any other kind (SMS).
	Addr  netip.AddrPort
	Other net.Addr
	// Identity is the security identity the client registered with, in
	// bearer.Identity.String form ("psk:dev-1"), "" for NoSec.
	Identity string

	// Registered and Updated are Unix nanoseconds of the Register and of
	// the last Register or Update.
	Registered int64
	Updated    int64
}

// Location returns the registration's location path, "/rd/<id>".
func (r *Registration) Location() string { return "/rd/" + FormatID(r.ID) }

// FormatID returns the location segment of a registration ID.
func FormatID(id uint64) string { return strconv.FormatUint(id, 36) }

// ParseID parses a location segment produced by FormatID. Only that
// spelling is accepted (no leading zeros, no capitals, no zero ID): one
// location has one name.
func ParseID(s string) (uint64, bool) {
	if s == "" || len(s) > 13 {
		return 0, false
	}
	id, err := strconv.ParseUint(s, 36, 64)
	return id, err == nil && id != 0 && FormatID(id) == s
}

// AltPath returns the alternate root path ("/" when the client sent none).
func (r *Registration) AltPath() string {
	if r.altPath == (unique.Handle[string]{}) {
		return "/"
	}
	return r.altPath.Value()
}

// SetAltPath sets the alternate root path; "" or "/" means none.
func (r *Registration) SetAltPath(p string) {
	if p == "" || p == "/" {
		r.altPath = unique.Handle[string]{}
		return
	}
	r.altPath = unique.Make(p)
}

// Transport returns the name of the server transport (endpoint) the client
// registered or last updated over, e.g. "udp" or "dtls"; "" when unset.
func (r *Registration) Transport() string {
	if r.transport == (unique.Handle[string]{}) {
		return ""
	}
	return r.transport.Value()
}

// SetTransport sets the transport name (interned).
func (r *Registration) SetTransport(name string) {
	if name == "" {
		r.transport = unique.Handle[string]{}
		return
	}
	r.transport = unique.Make(name)
}

// MaxNodeLen bounds a node name (Registration.SetNode).
const MaxNodeLen = 255

// Node returns the name of the gateway node that holds the client's
// session (the node its last Register or Update arrived at; requests to
// the client go out through that node), "" in a single-node deployment.
func (r *Registration) Node() string {
	if r.node == (unique.Handle[string]{}) {
		return ""
	}
	return r.node.Value()
}

// SetNode sets the node name (interned; at most MaxNodeLen bytes, longer
// names are cut).
func (r *Registration) SetNode(name string) {
	if name == "" {
		r.node = unique.Handle[string]{}
		return
	}
	if len(name) > MaxNodeLen {
		name = name[:MaxNodeLen]
	}
	r.node = unique.Make(name)
}

// PeerAddr returns the address requests to the client go to.
func (r *Registration) PeerAddr() net.Addr {
	if r.Other != nil {
		return r.Other
	}
	if !r.Addr.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(r.Addr)
}

// SetPeerAddr records addr, inline for a *net.UDPAddr.
func (r *Registration) SetPeerAddr(addr net.Addr) {
	r.Addr, r.Other = netip.AddrPort{}, nil
	if ap, ok := AddrPortOf(addr); ok {
		r.Addr = ap
		return
	}
	r.Other = addr
}

// AddrPortOf returns the UDP address behind addr (IPv4-mapped IPv6
// addresses unmapped), looking through wrappers such as secure.Addr whose
// Network and String are the UDP address's; ok is false for other kinds of
// address.
func AddrPortOf(addr net.Addr) (ap netip.AddrPort, ok bool) {
	a := udpAddrOf(addr)
	if a == nil {
		return netip.AddrPort{}, false
	}
	ap = a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// udpAddrOf returns the *net.UDPAddr behind addr: addr itself, or, for a
// wrapper whose Network and String are those of a UDP address (as
// bearer.IdentityAddr implementations are), the parsed address.
func udpAddrOf(addr net.Addr) *net.UDPAddr {
	switch a := addr.(type) {
	case nil:
		return nil
	case *net.UDPAddr:
		return a
	}
	switch addr.Network() {
	case "udp", "udp4", "udp6":
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return nil
		}
		return net.UDPAddrFromAddrPort(ap)
	}
	return nil
}

// ExpiresAt returns when the registration expires: Updated + Lifetime.
func (r *Registration) ExpiresAt() time.Time {
	return time.Unix(0, r.Updated).Add(time.Duration(r.Lifetime) * time.Second)
}

// expiry returns ExpiresAt in Unix nanoseconds.
func (r *Registration) expiry() int64 {
	return r.Updated + int64(r.Lifetime)*int64(time.Second)
}

// Clone returns a copy that shares no mutable slices with r.
func (r *Registration) Clone() *Registration {
	c := *r
	c.Objects = append([]ObjectLink(nil), r.Objects...)
	return &c
}

// HasObject reports whether the client announced object o (with or without
// instances).
func (r *Registration) HasObject(o uint16) bool {
	for _, l := range r.Objects {
		if l.Object == o {
			return true
		}
	}
	return false
}

// ObjectVersion returns the "ver" the client announced for object o, or ""
// (the default version for the client's LwM2M version).
func (r *Registration) ObjectVersion(o uint16) string {
	for _, l := range r.Objects {
		if l.Object == o {
			if v := l.Version(); v != "" {
				return v
			}
		}
	}
	return ""
}

// Links returns the object list in CoRE link-format, as a Discover-like
// summary (with the alternate path link first when there is one).
func (r *Registration) Links() string {
	var sb strings.Builder
	if ap := r.AltPath(); ap != "/" {
		sb.WriteString("<" + ap + ">;rt=\"oma.lwm2m\"")
	}
	for _, l := range r.Objects {
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(l.String())
	}
	return sb.String()
}
