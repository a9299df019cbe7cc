package server

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// ErrForbidden is wrapped by security binding refusals (answered 4.03).
var ErrForbidden = errors.New("lwm2m server: forbidden")

// Security binds security identities to endpoint names (Core 1.1 §7.3,
// issue: a device authenticated as A cannot register or update as B).
type Security interface {
	// IdentityOf returns the identity configured for an endpoint name.
	IdentityOf(endpoint string) (bearer.Identity, bool)
	// EndpointOf returns the endpoint name an identity is bound to.
	EndpointOf(id bearer.Identity) (string, bool)
}

// Authorize applies the binding rules to a client presenting identity id
// for endpoint name ep:
//   - an identity bound to another endpoint name is refused;
//   - an endpoint with a configured identity must present exactly it;
//   - an unauthenticated client is refused when allowNoSec is false.
//
// A nil sec configures nothing (only the NoSec rule applies).
func Authorize(sec Security, allowNoSec bool, ep string, id bearer.Identity) error {
	if sec != nil {
		if !id.IsZero() {
			if bound, ok := sec.EndpointOf(id); ok && bound != ep {
				return fmt.Errorf("%w: identity %s is bound to another endpoint, not %q", ErrForbidden, id, ep)
			}
		}
		if want, ok := sec.IdentityOf(ep); ok && !SameIdentity(want, id) {
			return fmt.Errorf("%w: endpoint %q requires identity %s, got %s", ErrForbidden, ep, want, id)
		}
	}
	if id.IsZero() && !allowNoSec {
		return fmt.Errorf("%w: endpoint %q is not authenticated", ErrForbidden, ep)
	}
	return nil
}

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

// StaticSecurity is a Security held in memory, bounded by the number of
// bindings the operator configures. It is safe for concurrent use.
type StaticSecurity struct {
	mu     sync.RWMutex
	byEP   map[string]bearer.Identity
	byID   map[string]string // identityKey → endpoint
	maxLen int
}

// NewStaticSecurity returns an empty binding table holding at most max
// bindings (0: 1,000,000).
func NewStaticSecurity(max int) *StaticSecurity {
	if max <= 0 {
		max = 1_000_000
	}
	return &StaticSecurity{byEP: map[string]bearer.Identity{}, byID: map[string]string{}, maxLen: max}
}

// ErrTooManyBindings is returned by Bind when the table is full.
var ErrTooManyBindings = errors.New("lwm2m server: too many security bindings")

// Bind binds identity id to endpoint ep, replacing earlier bindings of
// either.
func (s *StaticSecurity) Bind(ep string, id bearer.Identity) error {
	if id.IsZero() || ep == "" {
		return fmt.Errorf("lwm2m server: Bind needs an endpoint and an identity")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byEP[ep]; !ok && len(s.byEP) >= s.maxLen {
		return ErrTooManyBindings
	}
	if old, ok := s.byEP[ep]; ok {
		delete(s.byID, identityKey(old))
	}
	k := identityKey(id)
	if other, ok := s.byID[k]; ok {
		delete(s.byEP, other)
	}
	s.byEP[ep] = id
	s.byID[k] = ep
	return nil
}

// Unbind removes the binding of endpoint ep.
func (s *StaticSecurity) Unbind(ep string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.byEP[ep]; ok {
		delete(s.byID, identityKey(old))
		delete(s.byEP, ep)
	}
}

// IdentityOf implements Security.
func (s *StaticSecurity) IdentityOf(ep string) (bearer.Identity, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.byEP[ep]
	return id, ok
}

// EndpointOf implements Security.
func (s *StaticSecurity) EndpointOf(id bearer.Identity) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ep, ok := s.byID[identityKey(id)]
	return ep, ok
}

// Len returns the number of bindings.
func (s *StaticSecurity) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byEP)
}
