package server

import (
	"net"
	"net/netip"
	"sync"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// SendEvent is data a client sent with the LwM2M 1.1 Send operation
// (Core 1.1 §6.4.5: POST /dp with a SenML or LwM2M CBOR payload).
//
// The zero SendEvent carries an empty payload, which Records refuses.
type SendEvent struct {
	Endpoint     string
	Registration *registry.Registration
	Content      Content
}

type sendReceiver struct {
	mu sync.Mutex // serialises the Send callback
}

// sendFormats are the payload formats Send accepts: SenML JSON, SenML CBOR
// and (1.2) LwM2M CBOR.
func sendFormatOK(cf message.MediaType) bool {
	return cf == FormatSenMLJSON || cf == FormatSenMLCBOR || cf == FormatLwM2MCBOR
}

func (s *Server) receiveSend(w bearer.ResponseWriter, r *bearer.Request) {
	reg, ok := s.registrationOf(r)
	if !ok {
		s.reject(w, r, codes.NotFound, "Send from a client that is not registered")
		return
	}
	if reg.Version == registry.V1_0 {
		s.reject(w, r, codes.MethodNotAllowed, "Send is LwM2M 1.1 and later")
		return
	}
	cf, err := r.Options.ContentFormat()
	if err != nil || !sendFormatOK(cf) {
		s.reject(w, r, codes.UnsupportedMediaType, "Send payload must be SenML JSON, SenML CBOR or LwM2M CBOR")
		return
	}
	if len(r.Payload) == 0 {
		s.reject(w, r, codes.BadRequest, "empty Send payload")
		return
	}
	ev := SendEvent{Endpoint: reg.Endpoint, Registration: reg, Content: Content{Format: cf, Payload: r.Payload}}
	s.stats.Sends.Add(1)
	_ = w.WriteResponse(codes.Changed, nil)
	s.remember(reg.Endpoint, "send", path.Root, ev.Content, s.resolver())
	if f := s.cfg.sendHandler; f != nil {
		s.dp.mu.Lock()
		f(ev)
		s.dp.mu.Unlock()
	}
	s.events.publish(Event{Kind: Sent, Registration: reg, Send: &ev})
}

// addrIndex maps peer addresses to registration IDs, for requests that
// identify their client only by address (Send, NoSec). UDP addresses are
// kept as netip.AddrPort keys (no allocation per device).
type addrIndex struct {
	mu    sync.RWMutex
	udp   map[netip.AddrPort]uint64
	other map[string]uint64
}

func (x *addrIndex) init() {
	x.udp = map[netip.AddrPort]uint64{}
	x.other = map[string]uint64{}
}

func (x *addrIndex) set(r *registry.Registration) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if r.Other != nil {
		x.other[bearer.AddrKey(r.Other)] = r.ID
	} else if r.Addr.IsValid() {
		x.udp[r.Addr] = r.ID
	}
}

// del forgets r's address if it still points at r.
func (x *addrIndex) del(r *registry.Registration) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if r.Other != nil {
		k := bearer.AddrKey(r.Other)
		if x.other[k] == r.ID {
			delete(x.other, k)
		}
	} else if r.Addr.IsValid() && x.udp[r.Addr] == r.ID {
		delete(x.udp, r.Addr)
	}
}

func (x *addrIndex) lookup(a net.Addr) (uint64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if ap, ok := registry.AddrPortOf(a); ok {
		id, ok := x.udp[ap]
		return id, ok
	}
	id, ok := x.other[bearer.AddrKey(a)]
	return id, ok
}
