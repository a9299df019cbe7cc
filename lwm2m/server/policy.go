package server

import (
	"fmt"
	"net"
	"strings"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/internal/msisdn"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// The registration security policy. Every Register, Update and De-register
// passes through policy.authorize, in this order:
//
//  1. An authenticated identity (DTLS PSK, raw public key, X.509) bound to
//     another endpoint name is refused; so is an SMS number bound to
//     another endpoint name.
//  2. An endpoint name with a Binding registers only through what the
//     binding names: its Identity (over DTLS, on any bearer), its MSISDN
//     (over SMS, from that number; with SMSSecured only together with its
//     Identity), or, when the binding says NoSec and the NoSec rule allows
//     the name, without authentication over IP.
//  3. A name without a Binding registers with any identity nobody bound,
//     or unauthenticated (UDP, or SMS from a number the SMS bearer knows)
//     when the NoSec rule allows the name.
//  4. Update and De-register must come with the identity the client
//     registered with; a NoSec registration also from the source address
//     it was made from (or over SMS from the endpoint's bound number).
//     Another source gets 4.04, as a location that does not exist: a
//     client whose address changed (NAT) registers again, as Core §6.2.2
//     has it do on 4.04.
//  5. The PeerCheck, if set, runs last.
//
// Refusals of 1–3 and 5 are 4.03 Forbidden and counted in
// Stats.Forbidden; the limits (limits.go) answer 4.29, 4.13, 4.00 and
// 5.03. SECURITY.md at the repository root is the operator's view.

// Binding is what the operator's configuration says about one endpoint
// name: the identities it may register, update and de-register through.
// A field left zero grants nothing.
type Binding struct {
	// Identity is the security identity (PSK identity, raw public key or
	// certificate) the endpoint authenticates with, over DTLS on any
	// bearer. Zero: none.
	Identity bearer.Identity
	// MSISDN is the device's own SMS number (any form
	// bearer/sms.ParseMSISDN takes). Over SMS the endpoint registers only from it, and the
	// server sends SMS to the endpoint (wake-ups, queued requests) only
	// to it, never to the "sms=" number of a registration. "": none.
	MSISDN string
	// NoSec lets the endpoint also register over IP without a security
	// identity, where the server's NoSec rule allows its name.
	NoSec bool
	// PSK is the pre-shared key of a "psk" Identity, for the DTLS layer
	// (PSKLookup); nil when keys are kept elsewhere. It grants nothing by
	// itself.
	PSK []byte
	// SMSSecured says the endpoint's SMS security mode is DTLS or OSCORE
	// (LwM2M's SMS Security Mode): over SMS it registers only with its
	// Identity, never with its MSISDN alone. It grants nothing by itself.
	// False keeps the number as the SMS credential (NoSec on SMS).
	SMSSecured bool
}

// IsZero reports whether b grants nothing.
func (b Binding) IsZero() bool { return b.Identity.IsZero() && b.MSISDN == "" && !b.NoSec }

// Bindings is the operator's table of endpoint names bound to identities
// and SMS numbers. StaticSecurity implements it; a provisioning database
// can too. Implementations are safe for concurrent use and fast (they run
// on every registration request).
type Bindings interface {
	// Binding returns the binding of an endpoint name.
	Binding(endpoint string) (Binding, bool)
	// EndpointOf returns the endpoint name an identity is bound to.
	EndpointOf(id bearer.Identity) (string, bool)
	// EndpointOfNumber returns the endpoint name an SMS number (E.164
	// with "+") is bound to.
	EndpointOfNumber(msisdn string) (string, bool)
}

// BindingStore is a Bindings that can be changed while the server runs
// (a provisioning system adding devices): StaticSecurity in memory, filled
// from the configuration (the default), or redisstore's, shared by the
// gateway nodes of a cluster so a device provisioned through one is bound
// on all. Reads stay fast and error-free (a store keeps a copy in memory).
type BindingStore interface {
	Bindings
	// Set replaces the binding of ep (a zero b removes it); b's identity
	// and number are taken from any other endpoint they were bound to, in
	// one step.
	Set(ep string, b Binding) error
	// Len returns the number of bindings.
	Len() int
}

var _ BindingStore = (*StaticSecurity)(nil)

// IdentityKey is the compact form of an identity that bindings and
// registrations are indexed by: "psk:<identity>", "rpk:<key bytes>",
// "x509:<leaf bytes>", the OSCORE sender ID and context, or "".
func IdentityKey(id bearer.Identity) string { return identityKey(id) }

// PSKLookup returns a DTLS PSK callback (secure.Config.PSKLookup) that
// finds an identity's key in b: the Binding bound to the "psk" identity
// carries it (Binding.PSK).
func PSKLookup(b Bindings) func(identity []byte) ([]byte, error) {
	return func(identity []byte) ([]byte, error) {
		id := bearer.Identity{Mode: "psk", PSKIdentity: identity}
		if ep, ok := b.EndpointOf(id); ok {
			if bd, ok := b.Binding(ep); ok && len(bd.PSK) > 0 {
				return bd.PSK, nil
			}
		}
		return nil, fmt.Errorf("unknown PSK identity %q", identity)
	}
}

// securityBindings adapts an IdentityBinding that is not a Bindings: identities
// only.
type securityBindings struct{ IdentityBinding }

func (s securityBindings) Binding(ep string) (Binding, bool) {
	id, ok := s.IdentityOf(ep)
	return Binding{Identity: id}, ok
}

func (securityBindings) EndpointOfNumber(string) (string, bool) { return "", false }

func bindingsOf(s IdentityBinding) Bindings {
	switch b := s.(type) {
	case nil:
		return nil
	case Bindings:
		return b
	default:
		return securityBindings{s}
	}
}

// NoSecRule says which endpoint names may register without a security
// identity: over plain UDP, or over SMS without DTLS. The zero NoSecRule
// allows none. Over SMS the SMS bearer's peer table and a Binding's MSISDN
// still apply; the rule adds nothing there for a bound name.
type NoSecRule struct {
	all      bool
	names    map[string]bool
	prefixes []string
}

// NoSecAll allows every name.
func NoSecAll() NoSecRule { return NoSecRule{all: true} }

// NoSecNone allows no name (the zero NoSecRule).
func NoSecNone() NoSecRule { return NoSecRule{} }

// NoSecNames allows the listed names; an entry ending in "*" is a prefix
// ("light-udp-*"). A "*" alone allows every name. An empty entry, or a "*"
// anywhere but at the end, is an error.
func NoSecNames(patterns ...string) (NoSecRule, error) {
	r := NoSecRule{names: map[string]bool{}}
	for _, p := range patterns {
		switch {
		case p == "":
			return NoSecRule{}, fmt.Errorf("lwm2m server: empty NoSec name")
		case p == "*":
			r.all = true
		case strings.Contains(strings.TrimSuffix(p, "*"), "*"):
			return NoSecRule{}, fmt.Errorf("lwm2m server: NoSec pattern %q: '*' only at the end (a prefix)", p)
		case strings.HasSuffix(p, "*"):
			r.prefixes = append(r.prefixes, strings.TrimSuffix(p, "*"))
		default:
			r.names[p] = true
		}
	}
	return r, nil
}

// Allows reports whether the endpoint name ep may register without a
// security identity.
func (r NoSecRule) Allows(ep string) bool {
	if r.all || r.names[ep] {
		return true
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(ep, p) {
			return true
		}
	}
	return false
}

// String describes the rule: "all", "none" or the names and prefixes.
func (r NoSecRule) String() string {
	if r.all {
		return "all"
	}
	var parts []string
	for n := range r.names {
		parts = append(parts, n)
	}
	for _, p := range r.prefixes {
		parts = append(parts, p+"*")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// WithNoSecRule sets which endpoint names may register without a security
// identity (default NoSecAll(), the library's historical default; a
// deployment on an open network sets NoSecNone() or a list of names).
// A name with a Binding needs its Binding's NoSec as well.
func WithNoSecRule(r NoSecRule) Option { return func(c *config) error { c.nosec = r; return nil } }

// policy is the server's registration security policy (see the comment at
// the top of this file).
type policy struct {
	bindings  Bindings
	nosec     NoSecRule
	peerCheck PeerCheck
}

// isSMS reports whether peer is an SMS address (plain, or under DTLS).
func isSMS(peer net.Addr) bool { return peer != nil && peer.Network() == msisdn.Network }

// sameNumber compares two numbers in any form bearer/sms.ParseMSISDN
// takes.
func sameNumber(a, b string) bool { return msisdn.Same(a, b) }

func forbidden(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrForbidden, fmt.Sprintf(format, args...))
}

// authorize applies rules 1–3 and 5 to a client at peer (over transport)
// presenting id for endpoint name ep.
func (p *policy) authorize(ep, transport string, peer net.Addr, id bearer.Identity) error {
	if err := p.bound(ep, peer, id); err != nil {
		return err
	}
	if p.peerCheck != nil {
		if err := p.peerCheck(ep, transport, peer, id); err != nil {
			if errForbidden(err) {
				return err
			}
			return fmt.Errorf("%w: %w", ErrForbidden, err)
		}
	}
	return nil
}

func (p *policy) bound(ep string, peer net.Addr, id bearer.Identity) error {
	viaSMS := isSMS(peer)
	var number string
	if viaSMS {
		if n, err := msisdn.Normalize(peer.String()); err == nil {
			number = n
		} else {
			return forbidden("SMS peer %q is not a number", peer.String())
		}
	}
	var b Binding
	var isBound bool
	if p.bindings != nil {
		if !id.IsZero() {
			if other, ok := p.bindings.EndpointOf(id); ok && other != ep {
				return forbidden("identity %s is bound to another endpoint, not %q", id, ep)
			}
		}
		if viaSMS {
			if other, ok := p.bindings.EndpointOfNumber(number); ok && other != ep {
				return forbidden("SMS number %s is bound to another endpoint, not %q", number, ep)
			}
		}
		b, isBound = p.bindings.Binding(ep)
	}
	if !isBound {
		if !id.IsZero() || p.nosec.Allows(ep) {
			return nil
		}
		return forbidden("endpoint %q is not authenticated, and NoSec is not allowed for this name", ep)
	}
	if !b.Identity.IsZero() && !id.IsZero() && !SameIdentity(b.Identity, id) {
		return forbidden("endpoint %q requires identity %s, got %s", ep, b.Identity, id)
	}
	if viaSMS {
		switch {
		case b.SMSSecured && (id.IsZero() || b.Identity.IsZero()):
			return forbidden("endpoint %q registers over SMS only with its security identity %s, not without", ep, b.Identity)
		case b.MSISDN != "" && sameNumber(b.MSISDN, number):
			return nil
		case b.MSISDN != "":
			return forbidden("endpoint %q registers over SMS only from its configured number, not %s", ep, number)
		case !b.Identity.IsZero() && !id.IsZero():
			return nil // DTLS over SMS with its identity
		}
		return forbidden("endpoint %q has no SMS number configured", ep)
	}
	switch {
	case !b.Identity.IsZero() && !id.IsZero():
		return nil // checked above: the same identity
	case b.NoSec && p.nosec.Allows(ep):
		return nil
	case !b.Identity.IsZero():
		return forbidden("endpoint %q requires identity %s, got %s", ep, b.Identity, id)
	case b.MSISDN != "":
		return forbidden("endpoint %q is bound to SMS number %s and registers only over SMS", ep, b.MSISDN)
	}
	return forbidden("endpoint %q may not register over IP without a security identity", ep)
}

// sameSource applies rule 4's address part to a NoSec registration: the
// request comes from the registration's source address, or over SMS from
// the endpoint's bound number.
func (p *policy) sameSource(reg *registry.Registration, peer net.Addr) bool {
	if ap, ok := registry.AddrPortOf(peer); ok {
		return reg.Other == nil && reg.Addr == ap
	}
	if reg.Other != nil && peer != nil && bearer.AddrKey(reg.Other) == bearer.AddrKey(peer) {
		return true
	}
	if isSMS(peer) && p.bindings != nil {
		if b, ok := p.bindings.Binding(reg.Endpoint); ok && b.MSISDN != "" && sameNumber(b.MSISDN, peer.String()) {
			return true
		}
	}
	return false
}

// msisdn returns the SMS number configured for ep, "" when none.
func (p *policy) msisdn(ep string) string {
	if p.bindings == nil {
		return ""
	}
	if b, ok := p.bindings.Binding(ep); ok {
		return b.MSISDN
	}
	return ""
}
