package server

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/internal/msisdn"
)

// ErrForbidden is wrapped by security binding refusals (answered 4.03).
var ErrForbidden = errors.New("lwm2m server: forbidden")

// IdentityBinding binds security identities to endpoint names (Core 1.1 §7.3,
// issue: a device authenticated as A cannot register or update as B).
type IdentityBinding interface {
	// IdentityOf returns the identity configured for an endpoint name.
	IdentityOf(endpoint string) (bearer.Identity, bool)
	// EndpointOf returns the endpoint name an identity is bound to.
	EndpointOf(id bearer.Identity) (string, bool)
}

// Authorize applies the binding rules of the server's policy to a client
// presenting identity id for endpoint name ep over IP (see policy.go):
//   - an identity bound to another endpoint name is refused;
//   - an endpoint with a configured identity must present exactly it;
//   - an unauthenticated client is refused when allowNoSec is false, and
//     for a name with a Binding unless the Binding allows NoSec.
//
// A nil sec configures nothing (only the NoSec rule applies).
func Authorize(sec IdentityBinding, allowNoSec bool, ep string, id bearer.Identity) error {
	p := policy{bindings: bindingsOf(sec), nosec: NoSecNone()}
	if allowNoSec {
		p.nosec = NoSecAll()
	}
	return p.bound(ep, nil, id)
}

func errForbidden(err error) bool { return errors.Is(err, ErrForbidden) }

// SameIdentity reports whether a and b name the same credentials: same
// mode and PSK identity, raw public key, leaf certificate, or OSCORE
// Sender ID and ID Context.
func SameIdentity(a, b bearer.Identity) bool {
	if a.Mode != b.Mode {
		return false
	}
	switch a.Mode {
	case "":
		return true
	case "psk":
		return bytes.Equal(a.PSKIdentity, b.PSKIdentity)
	case "rpk":
		return bytes.Equal(a.PublicKey, b.PublicKey)
	case "oscore":
		return bytes.Equal(a.OSCOREID, b.OSCOREID) && bytes.Equal(a.OSCOREIDContext, b.OSCOREIDContext) &&
			(a.OSCOREIDContext == nil) == (b.OSCOREIDContext == nil)
	default:
		if len(a.Certificates) > 0 && len(b.Certificates) > 0 {
			return bytes.Equal(a.Certificates[0], b.Certificates[0])
		}
		return len(a.PublicKey) > 0 && bytes.Equal(a.PublicKey, b.PublicKey)
	}
}

// identityKey is the compact form of an identity kept in a registration:
// "psk:<identity>", "rpk:<key bytes>", "x509:<leaf bytes>" or "".
func identityKey(id bearer.Identity) string {
	switch id.Mode {
	case "":
		return ""
	case "psk":
		return "psk:" + string(id.PSKIdentity)
	case "rpk":
		return "rpk:" + string(id.PublicKey)
	case "oscore":
		// The OSCORE identity is the peer's Sender ID within its ID Context
		// (bearer/oscore); one context authenticates one device.
		return id.String()
	default:
		if len(id.Certificates) > 0 {
			return id.Mode + ":" + string(id.Certificates[0])
		}
		return id.Mode + ":" + string(id.PublicKey)
	}
}

// StaticSecurity is an IdentityBinding and Bindings held in memory, bounded by
// the number of bindings the operator configures. It is safe for
// concurrent use; the zero value is an empty table holding at most
// 1,000,000 bindings.
type StaticSecurity struct {
	mu       sync.RWMutex
	byEP     map[string]Binding
	byID     map[string]string // identityKey → endpoint
	byNumber map[string]string // "+<digits>" → endpoint
	maxLen   int
}

var (
	_ IdentityBinding = (*StaticSecurity)(nil)
	_ Bindings        = (*StaticSecurity)(nil)
)

// NewStaticSecurity returns an empty binding table holding at most max
// bindings (0: 1,000,000).
func NewStaticSecurity(max int) *StaticSecurity {
	return &StaticSecurity{maxLen: max}
}

// ErrTooManyBindings is returned by Bind and Set when the table is full.
var ErrTooManyBindings = errors.New("lwm2m server: too many security bindings")

// init makes the zero value usable; s.mu is held.
func (s *StaticSecurity) init() {
	if s.byEP == nil {
		s.byEP, s.byID, s.byNumber = map[string]Binding{}, map[string]string{}, map[string]string{}
	}
	if s.maxLen <= 0 {
		s.maxLen = 1_000_000
	}
}

// Bind binds identity id to endpoint ep, replacing ep's earlier identity
// and taking id from the endpoint it was bound to before; ep's SMS number
// and NoSec stay.
func (s *StaticSecurity) Bind(ep string, id bearer.Identity) error {
	if id.IsZero() || ep == "" {
		return fmt.Errorf("lwm2m server: Bind needs an endpoint and an identity")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	b := s.byEP[ep]
	b.Identity = id
	return s.setLocked(ep, b)
}

// Set replaces the binding of endpoint ep by b (a zero b removes it). The
// identity and the SMS number of b are taken from any other endpoint they
// were bound to. b.MSISDN must parse with bearer/sms.ParseMSISDN.
func (s *StaticSecurity) Set(ep string, b Binding) error {
	if ep == "" {
		return fmt.Errorf("lwm2m server: Set needs an endpoint")
	}
	if b.MSISDN != "" {
		n, err := msisdn.Normalize(b.MSISDN)
		if err != nil {
			return fmt.Errorf("lwm2m server: binding of %q: %w", ep, err)
		}
		b.MSISDN = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if b.IsZero() {
		s.removeLocked(ep)
		return nil
	}
	return s.setLocked(ep, b)
}

func (s *StaticSecurity) setLocked(ep string, b Binding) error {
	if _, ok := s.byEP[ep]; !ok && len(s.byEP) >= s.maxLen {
		return ErrTooManyBindings
	}
	s.removeLocked(ep)
	if !b.Identity.IsZero() {
		k := identityKey(b.Identity)
		if other, ok := s.byID[k]; ok {
			ob := s.byEP[other]
			ob.Identity, ob.PSK = bearer.Identity{}, nil
			s.removeLocked(other)
			if !ob.IsZero() {
				s.putLocked(other, ob)
			}
		}
	}
	if b.MSISDN != "" {
		if other, ok := s.byNumber[b.MSISDN]; ok {
			ob := s.byEP[other]
			ob.MSISDN = ""
			s.removeLocked(other)
			if !ob.IsZero() {
				s.putLocked(other, ob)
			}
		}
	}
	s.putLocked(ep, b)
	return nil
}

func (s *StaticSecurity) putLocked(ep string, b Binding) {
	s.byEP[ep] = b
	if !b.Identity.IsZero() {
		s.byID[identityKey(b.Identity)] = ep
	}
	if b.MSISDN != "" {
		s.byNumber[b.MSISDN] = ep
	}
}

func (s *StaticSecurity) removeLocked(ep string) {
	old, ok := s.byEP[ep]
	if !ok {
		return
	}
	if !old.Identity.IsZero() && s.byID[identityKey(old.Identity)] == ep {
		delete(s.byID, identityKey(old.Identity))
	}
	if old.MSISDN != "" && s.byNumber[old.MSISDN] == ep {
		delete(s.byNumber, old.MSISDN)
	}
	delete(s.byEP, ep)
}

// Unbind removes the binding of endpoint ep.
func (s *StaticSecurity) Unbind(ep string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.removeLocked(ep)
}

// IdentityOf implements IdentityBinding.
func (s *StaticSecurity) IdentityOf(ep string) (bearer.Identity, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.byEP[ep]
	return b.Identity, ok && !b.Identity.IsZero()
}

// EndpointOf implements IdentityBinding and Bindings.
func (s *StaticSecurity) EndpointOf(id bearer.Identity) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ep, ok := s.byID[identityKey(id)]
	return ep, ok
}

// Binding implements Bindings.
func (s *StaticSecurity) Binding(ep string) (Binding, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.byEP[ep]
	return b, ok
}

// EndpointOfNumber implements Bindings.
func (s *StaticSecurity) EndpointOfNumber(number string) (string, bool) {
	n, err := msisdn.Normalize(number)
	if err != nil {
		return "", false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ep, ok := s.byNumber[n]
	return ep, ok
}

// Range calls fn with each binding until fn returns false; fn must not
// call s.
func (s *StaticSecurity) Range(fn func(ep string, b Binding) bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for ep, b := range s.byEP {
		if !fn(ep, b) {
			return
		}
	}
}

// Len returns the number of bindings.
func (s *StaticSecurity) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byEP)
}
