package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// Handler returns the bearer.Handler serving the registration interface
// and Send for the transport called name ("udp", "dtls", "sms"). Give it to
// bearer.NewEndpoint with bearer.WithHandler, then Attach the Endpoint
// under the same name so the server can reach the devices registered on it.
func (s *Server) Handler(name string) bearer.Handler { return &transportHandler{s: s, name: name} }

type transportHandler struct {
	s    *Server
	name string
}

// ServeCoAP routes /rd, /rd/<id> and /dp.
func (h *transportHandler) ServeCoAP(w bearer.ResponseWriter, r *bearer.Request) {
	s := h.s
	if s.store == nil { // the handler of a zero Server
		_ = w.WriteResponse(codes.ServiceUnavailable, []byte("server not created"))
		return
	}
	segs := uriPath(r.Options)
	if len(segs) > 0 && segs[0] == "rd" && !s.takeSource(w, r) {
		return
	}
	switch {
	case len(segs) == 1 && segs[0] == "rd":
		if r.Code != codes.POST {
			s.reject(w, r, codes.MethodNotAllowed, "only POST on /rd")
			return
		}
		s.register(w, r, h.name)
	case len(segs) == 2 && segs[0] == "rd":
		id, ok := registry.ParseID(segs[1])
		if !ok {
			s.reject(w, r, codes.NotFound, "no such registration")
			return
		}
		switch r.Code {
		case codes.POST:
			s.update(w, r, h.name, id)
		case codes.DELETE:
			s.deregister(w, r, h.name, id)
		default:
			s.reject(w, r, codes.MethodNotAllowed, "only POST and DELETE on a registration")
		}
	case len(segs) == 1 && segs[0] == "dp":
		if r.Code != codes.POST {
			s.reject(w, r, codes.MethodNotAllowed, "only POST on /dp")
			return
		}
		s.receiveSend(w, r)
		if reg, ok := s.registrationOf(r); ok {
			s.queueSeen(reg, h.name)
		}
	default:
		s.reject(w, r, codes.NotFound, "no such resource")
	}
}

func uriPath(opts message.Options) []string {
	var segs []string
	for _, o := range opts {
		if o.ID == message.URIPath {
			segs = append(segs, string(o.Value))
		}
	}
	return segs
}

// takeSource applies the per-source rate of the registration interface;
// over it the request is answered 4.29 Too Many Requests with Max-Age
// (RFC 8516) and false is returned.
func (s *Server) takeSource(w bearer.ResponseWriter, r *bearer.Request) bool {
	ok, wait := s.sources.take(sourceKey(r.Peer), s.cfg.now())
	if ok {
		return true
	}
	w.SetOption(bearer.UintOption(message.MaxAge, maxAgeSeconds(wait)))
	s.reject(w, r, codes.TooManyRequests, "too many registration requests from this source")
	return false
}

// reject answers with an error code and a diagnostic payload (RFC 7252
// §5.5.2) and counts and logs the refusal. The log lines are limited
// (anyone can make the server refuse): the first ones of every 10 s, then
// one saying how many were held back; Stats count them all.
func (s *Server) reject(w bearer.ResponseWriter, r *bearer.Request, code codes.Code, reason string) {
	s.stats.Rejected.Add(1)
	switch code {
	case codes.Forbidden:
		s.stats.Forbidden.Add(1)
	case codes.TooManyRequests:
		s.stats.RateLimited.Add(1)
	case codes.RequestEntityTooLarge:
		s.stats.TooLarge.Add(1)
	case codes.ServiceUnavailable:
		if strings.HasPrefix(reason, reasonUnavailable) {
			s.stats.Unavailable.Add(1)
		} else {
			s.stats.Full.Add(1)
		}
	}
	lim := &s.refusedLog
	if !r.Identity.IsZero() {
		lim = &s.refusedAuthLog
	}
	if ok, held := lim.Allow(); ok {
		s.log.Info("lwm2m request refused", "code", code.String(), "method", r.Code.String(),
			"path", r.Path(), "peer", addrString(r.Peer), "identity", r.Identity.String(), "reason", reason,
			"suppressed", held)
	} else {
		s.stats.LogSuppressed.Add(1)
	}
	_ = w.WriteResponse(code, []byte(reason))
}

func addrString(a interface{ String() string }) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// reasonUnavailable starts the diagnostic of a 5.03 for a store out of
// reach.
const reasonUnavailable = "registration store unavailable"

// Unavailable reports whether err says a store is out of reach for now
// (an error with an Unavailable() bool method that returns true, as
// redisstore's do): the request should be refused with 5.03 (CoAP) or 503
// (HTTP) and retried later.
func Unavailable(err error) bool {
	var u interface{ Unavailable() bool }
	return errors.As(err, &u) && u.Unavailable()
}

// refuseStore answers a store failure: 5.03 with Max-Age 5 when the store
// is out of reach, else the code of the error.
func (s *Server) refuseStore(w bearer.ResponseWriter, r *bearer.Request, err error, what string) {
	if Unavailable(err) {
		w.SetOption(bearer.UintOption(message.MaxAge, 5))
		s.reject(w, r, codes.ServiceUnavailable, reasonUnavailable+", try again later: "+what)
		return
	}
	s.reject(w, r, codeFor(err), what)
}

// codeFor maps registration errors to CoAP codes.
func codeFor(err error) codes.Code {
	switch {
	case Unavailable(err):
		return codes.ServiceUnavailable
	case errors.Is(err, registry.ErrUnsupportedVersion):
		return codes.PreconditionFailed
	case errors.Is(err, registry.ErrUnsupportedFormat):
		return codes.UnsupportedMediaType
	case errors.Is(err, registry.ErrTooLarge):
		return codes.RequestEntityTooLarge
	case errors.Is(err, registry.ErrBadRequest):
		return codes.BadRequest
	case errors.Is(err, ErrForbidden):
		return codes.Forbidden
	case errors.Is(err, registry.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, registry.ErrFull):
		return codes.ServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return codes.ServiceUnavailable
	}
	return codes.InternalServerError
}

// checkLinkFormat refuses a payload announced in a format other than
// application/link-format (4.15).
func checkLinkFormat(r *bearer.Request) error {
	if len(r.Payload) == 0 {
		return nil
	}
	if cf, err := r.Options.ContentFormat(); err == nil && cf != message.AppLinkFormat {
		return &registry.ParamError{Param: "Content-Format", Reason: "object list must be application/link-format (40), not " + cf.String(), Err: registry.ErrUnsupportedFormat}
	}
	return nil
}

// checkLifetime enforces the lifetime bounds of the limits.
func (s *Server) checkLifetime(lt uint32) error {
	if l := s.cfg.limits; lt < l.MinLifetime || lt > l.MaxLifetime {
		s.stats.BadLifetime.Add(1)
		return &registry.ParamError{Param: "lt",
			Reason: fmt.Sprintf("lifetime %d s outside the server's bounds %d..%d s", lt, l.MinLifetime, l.MaxLifetime),
			Err:    registry.ErrBadRequest}
	}
	return nil
}

func (s *Server) endpointName(id bearer.Identity) (string, bool) {
	if s.cfg.nameFromID != nil {
		return s.cfg.nameFromID(id)
	}
	if id.IsZero() {
		return "", false
	}
	if s.cfg.security != nil {
		if ep, ok := s.cfg.security.EndpointOf(id); ok {
			return ep, true
		}
	}
	if id.Mode == "psk" && len(id.PSKIdentity) > 0 {
		return string(id.PSKIdentity), true
	}
	return "", false
}

func (s *Server) register(w bearer.ResponseWriter, r *bearer.Request, transport string) {
	if err := checkLinkFormat(r); err != nil {
		s.reject(w, r, codeFor(err), err.Error())
		return
	}
	p, err := registry.ParseRegisterWith(s.parseOptions(), r.Queries(), r.Payload)
	if err == nil && p.LenientBinding {
		s.stats.LenientBinding.Add(1)
	}
	if err == nil {
		err = s.checkLifetime(p.Lifetime)
	}
	if err != nil {
		s.reject(w, r, codeFor(err), err.Error())
		return
	}
	ep := p.Endpoint
	if ep == "" {
		name, ok := s.endpointName(r.Identity)
		if !ok {
			s.reject(w, r, codes.BadRequest, "missing Endpoint Client Name and none derivable from the security identity")
			return
		}
		ep = name
	}
	if err := s.policy.authorize(ep, transport, r.Peer, r.Identity); err != nil {
		s.reject(w, r, codes.Forbidden, err.Error())
		return
	}
	now := s.cfg.now().UnixNano()
	reg := &registry.Registration{
		Endpoint: ep, Lifetime: p.Lifetime, Version: p.Version, Binding: p.Binding, Queue: p.Queue,
		Formats: p.Formats, SMS: p.SMS, Objects: p.Objects, Identity: identityKey(r.Identity),
		Registered: now, Updated: now,
	}
	reg.SetAltPath(p.AltPath)
	reg.SetPeerAddr(r.Peer)
	reg.SetTransport(transport)
	reg.SetNode(s.cfg.node)
	prev, err := s.store.Add(r.Context(), reg)
	if err != nil {
		if errors.Is(err, registry.ErrFull) {
			w.SetOption(bearer.UintOption(message.MaxAge, 60))
			s.reject(w, r, codes.ServiceUnavailable, "registry full, try again later")
			return
		}
		s.stats.StoreErrors.Add(1)
		s.refuseStore(w, r, err, "registration not stored")
		return
	}
	s.stats.Registered.Add(1)
	if len(p.Ignored) > 0 {
		s.log.Debug("lwm2m register: ignored parameters", "ep", ep, "params", p.Ignored)
	}
	if prev != nil {
		s.addrs.del(prev)
		s.obs.dropEndpoint(ep)
	}
	s.addrs.set(reg)
	w.AddOption(message.Option{ID: message.LocationPath, Value: []byte("rd")})
	w.AddOption(message.Option{ID: message.LocationPath, Value: []byte(registry.FormatID(reg.ID))})
	_ = w.WriteResponse(codes.Created, nil)
	s.events.publish(Event{Kind: Registered, Registration: reg, Previous: prev})
	s.pokeIfEarlier(reg)
	s.queueRegistered(reg, transport, true)
}

// pokeIfEarlier wakes the expiry loop only when reg expires before what the
// loop waits for, so a burst of registrations does not wake it each time.
func (s *Server) pokeIfEarlier(reg *registry.Registration) {
	if next, ok := s.store.NextExpiry(); ok && !next.Before(reg.ExpiresAt()) {
		s.poke()
	}
}

// errWrongSource: an Update or De-register of a NoSec registration from
// another source than the registration's (answered 4.04).
var errWrongSource = errors.New("lwm2m server: not the registration's source")

// sameClient applies the security rules of Update and De-register (rule 4
// of policy.go): the request comes with the identity the client
// registered with, passes the policy from where it comes now, and for a
// NoSec registration comes from its source address (errWrongSource).
func (s *Server) sameClient(reg *registry.Registration, transport string, r *bearer.Request) error {
	if identityKey(r.Identity) != reg.Identity {
		return forbidden("identity %s does not match the registration", r.Identity)
	}
	if err := s.policy.authorize(reg.Endpoint, transport, r.Peer, r.Identity); err != nil {
		return err
	}
	if reg.Identity == "" && !s.policy.sameSource(reg, r.Peer) {
		return errWrongSource
	}
	return nil
}

// refuseClient answers a sameClient error: 4.04 for another source (as
// for a location that does not exist: the client registers again), 4.03
// otherwise.
func (s *Server) refuseClient(w bearer.ResponseWriter, r *bearer.Request, err error) {
	if errors.Is(err, errWrongSource) {
		s.stats.WrongSource.Add(1)
		s.reject(w, r, codes.NotFound, "no such registration for this source; register again")
		return
	}
	s.reject(w, r, codes.Forbidden, "identity does not match the registration")
}

func (s *Server) update(w bearer.ResponseWriter, r *bearer.Request, transport string, id uint64) {
	old, ok := s.store.Get(id)
	if !ok {
		s.reject(w, r, codes.NotFound, "no such registration")
		return
	}
	if err := s.sameClient(old, transport, r); err != nil {
		s.refuseClient(w, r, err)
		return
	}
	if err := checkLinkFormat(r); err != nil {
		s.reject(w, r, codeFor(err), err.Error())
		return
	}
	u, err := registry.ParseUpdateWith(s.parseOptions(), old.Version, r.Queries(), r.Payload)
	if err == nil && u.LenientBinding {
		s.stats.LenientBinding.Add(1)
	}
	if err == nil && u.Lifetime != nil {
		err = s.checkLifetime(*u.Lifetime)
	}
	if err != nil {
		s.reject(w, r, codeFor(err), err.Error())
		return
	}
	now := s.cfg.now().UnixNano()
	prev, cur, err := s.store.Update(r.Context(), id, func(o *registry.Registration) (*registry.Registration, error) {
		if o.Identity != old.Identity {
			return nil, ErrForbidden
		}
		n := *o
		applyUpdate(&n, u)
		n.Updated = now
		n.SetPeerAddr(r.Peer) // the source address of the Update is current (NAT rebinding, 1.1 queue mode)
		n.SetTransport(transport)
		n.SetNode(s.cfg.node)
		return &n, nil
	})
	if err != nil {
		if !errors.Is(err, registry.ErrNotFound) && !errors.Is(err, ErrForbidden) {
			s.stats.StoreErrors.Add(1)
		}
		s.refuseStore(w, r, err, "update refused")
		return
	}
	s.stats.Updated.Add(1)
	if prev.Addr != cur.Addr || bearer.AddrKey(prev.Other) != bearer.AddrKey(cur.Other) {
		s.addrs.del(prev)
		s.addrs.set(cur)
	}
	_ = w.WriteResponse(codes.Changed, nil)
	s.events.publish(Event{Kind: Updated, Registration: cur, Previous: prev})
	s.pokeIfEarlier(cur)
	s.queueRegistered(cur, transport, false)
}

func applyUpdate(n *registry.Registration, u *registry.UpdateParams) {
	if u.Lifetime != nil {
		n.Lifetime = *u.Lifetime
	}
	if u.Binding != nil {
		n.Binding = *u.Binding
	}
	if u.Queue != nil {
		n.Queue = *u.Queue
	}
	if u.SMS != nil {
		n.SMS = *u.SMS
	}
	if u.Objects != nil {
		n.Objects = u.Objects
		n.SetAltPath(u.AltPath)
		if u.Formats != 0 {
			n.Formats = u.Formats
		}
	}
}

func (s *Server) deregister(w bearer.ResponseWriter, r *bearer.Request, transport string, id uint64) {
	old, ok := s.store.Get(id)
	if !ok {
		s.reject(w, r, codes.NotFound, "no such registration")
		return
	}
	if err := s.sameClient(old, transport, r); err != nil {
		s.refuseClient(w, r, err)
		return
	}
	gone, err := s.store.Remove(r.Context(), id)
	if err != nil {
		if !errors.Is(err, registry.ErrNotFound) {
			s.stats.StoreErrors.Add(1)
		}
		s.refuseStore(w, r, err, "de-register refused")
		return
	}
	s.stats.Deregistered.Add(1)
	s.addrs.del(gone)
	_ = w.WriteResponse(codes.Deleted, nil)
	s.obs.dropEndpoint(gone.Endpoint)
	s.events.publish(Event{Kind: Deregistered, Registration: gone})
	s.queueGone(gone.Endpoint)
}

// registrationOf finds the registration a request (Send, notification)
// comes from: by security identity when authenticated, by source address
// otherwise.
func (s *Server) registrationOf(r *bearer.Request) (*registry.Registration, bool) {
	if !r.Identity.IsZero() {
		if name, ok := s.endpointName(r.Identity); ok {
			if reg, ok := s.store.ByEndpoint(name); ok && reg.Identity == identityKey(r.Identity) {
				return reg, true
			}
		}
	}
	id, ok := s.addrs.lookup(r.Peer)
	if !ok {
		return nil, false
	}
	reg, ok := s.store.Get(id)
	if !ok || reg.Identity != identityKey(r.Identity) {
		return nil, false
	}
	return reg, true
}
