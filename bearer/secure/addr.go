package secure

import (
	"net"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// Addr is the address of an authenticated DTLS peer, as ReadFrom returns it.
// Network and String are those of the inner bearer's address, so a peer has
// the same bearer.AddrKey whether or not it came through this layer; WriteTo
// accepts either form. It implements bearer.IdentityAddr. The zero Addr
// has no inner address: its Network and String are "".
type Addr struct {
	// Inner is the peer's address on the inner bearer.
	Inner net.Addr
	// Identity is what the DTLS handshake authenticated.
	Identity bearer.Identity
}

var _ bearer.IdentityAddr = (*Addr)(nil)

// Network returns the inner address's network ("" for a zero Addr).
func (a *Addr) Network() string {
	if a.Inner == nil {
		return ""
	}
	return a.Inner.Network()
}

// String returns the inner address's string ("" for a zero Addr).
func (a *Addr) String() string {
	if a.Inner == nil {
		return ""
	}
	return a.Inner.String()
}

// PeerIdentity returns the authenticated identity.
func (a *Addr) PeerIdentity() bearer.Identity { return a.Identity }

// unwrapAddr returns the inner-bearer address of addr.
func unwrapAddr(addr net.Addr) net.Addr {
	if a, ok := addr.(*Addr); ok {
		return a.Inner
	}
	return addr
}
