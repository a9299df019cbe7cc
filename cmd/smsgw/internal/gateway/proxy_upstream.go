package gateway

import (
	"context"
	"crypto/rand"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// What the proxy learns from the exchanges it relays, beyond moving
// datagrams:
//
//   - each device's registration at the external server (the
//     Location-Path of the 2.01 answering its Register, forgotten when it
//     de-registers), so that a gateway shutdown de-registers every bridged
//     device upstream (deregisterAll): its socket is about to close, and
//     an external server that keeps the registration would send into it
//     until the lifetime runs out;
//   - the requests of the external server (token → path), so that the
//     device's binding reads the same everywhere (bindingView).
//
// Binding: the external server sees a UDP client at the device's socket
// (the Register's b=S became U, see rewriteRegistration). LwM2M 1.1 Core
// §6.2.1 says b= SHOULD equal "Supported Binding and Modes" /3/0/16, and
// the Server object's Binding /1/x/7 is the binding the client uses with
// that server; both are about the link the server sees, which the proxy
// provides. So the proxy shows /1/x/7 and /3/0/16 as the external server's
// link (S→U, with the same rule as the Register) in every answer and
// notification it relays up, and maps a Write of /1/x/7 back (U→S) on its
// way to the device, whose own link stays SMS. The device's data is
// otherwise relayed byte for byte.

const (
	maxTrackedPerSock = 64
	deregisterTimeout = 5 * time.Second
)

// upstreamState is a device socket's view of the exchange with the
// external server. Guarded by mu.
type upstreamState struct {
	mu       sync.Mutex
	location string             // "/rd/5a3f", "" when not registered upstream
	regToken map[string]bool    // tokens of Registers in flight
	reqPaths map[string]reqInfo // tokens of the external server's requests
	reqMIDs  map[uint16]reqInfo // message IDs of its CONs (for empty ACKs, RST)
	ours     map[uint16]chan struct{}
}

type reqInfo struct {
	path path.Path
	at   time.Time
	from *net.UDPAddr // where the request came from: where its answers go
}

func (u *upstreamState) init() {
	u.regToken = map[string]bool{}
	u.reqPaths = map[string]reqInfo{}
	u.reqMIDs = map[uint16]reqInfo{}
	u.ours = map[uint16]chan struct{}{}
}

func decodeCoAP(d []byte) (message.Message, bool) {
	var m message.Message
	m.Options = make(message.Options, 0, 32)
	if _, err := coder.DefaultCoder.Decode(d, &m); err != nil {
		return m, false
	}
	return m, true
}

func encodeCoAP(m message.Message) ([]byte, bool) {
	n, err := coder.DefaultCoder.Size(m)
	if err != nil {
		return nil, false
	}
	b := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(m, b); err != nil {
		return nil, false
	}
	return b, true
}

func isRequest(c codes.Code) bool { return c >= codes.GET && c <= codes.IPATCH }

// fromDevice looks at a datagram the device sends upstream (after the
// Register rewrite) and returns what to send instead (d when unchanged) and
// where: the device's requests go to the external server's address, its
// answers to where the request came from.
func (p *proxy) fromDevice(s *proxySock, d []byte) ([]byte, *net.UDPAddr) {
	m, ok := decodeCoAP(d)
	if !ok {
		return d, p.upstream
	}
	if isRequest(m.Code) {
		pth, _ := m.Options.Path()
		switch {
		case m.Code == codes.POST && pth == "/rd":
			s.up.mu.Lock()
			if len(s.up.regToken) >= maxTrackedPerSock {
				clear(s.up.regToken)
			}
			s.up.regToken[string(m.Token)] = true
			s.up.mu.Unlock()
		case m.Code == codes.DELETE && strings.HasPrefix(pth, "/rd/"):
			s.up.mu.Lock()
			if s.up.location == pth {
				s.up.location = ""
			}
			s.up.mu.Unlock()
		}
		return d, p.upstream
	}
	// A response (or notification, or an empty ACK/RST) to a request of
	// the external server.
	s.up.mu.Lock()
	ri, ok := s.up.reqPaths[string(m.Token)]
	if !ok || len(m.Token) == 0 {
		ri, ok = s.up.reqMIDs[uint16(m.MessageID)]
	}
	s.up.mu.Unlock()
	to := p.upstream
	if ok && ri.from != nil {
		to = ri.from
	}
	if !ok || len(m.Payload) == 0 || m.Code != codes.Content && m.Code != codes.Changed {
		return d, to
	}
	if nd, changed := p.bindingView(m, ri.path, true); changed {
		return nd, to
	}
	return d, to
}

// fromUpstream looks at a datagram of the external server for the device.
// It returns what to relay (d when unchanged) and false when the datagram
// is the answer to the proxy's own De-register and stops here.
func (p *proxy) fromUpstream(s *proxySock, d []byte, from *net.UDPAddr) ([]byte, bool) {
	m, ok := decodeCoAP(d)
	if !ok {
		return d, true
	}
	if m.Type == message.Acknowledgement || m.Type == message.Reset {
		s.up.mu.Lock()
		done, ours := s.up.ours[uint16(m.MessageID)]
		if ours {
			delete(s.up.ours, uint16(m.MessageID))
		}
		s.up.mu.Unlock()
		if ours {
			close(done)
			return nil, false
		}
	}
	if isRequest(m.Code) {
		pth, err := m.Options.Path()
		lp, perr := path.Parse(pth)
		if err == nil && perr == nil {
			ri := reqInfo{path: lp, at: time.Now(), from: from}
			s.up.mu.Lock()
			if len(m.Token) > 0 {
				if len(s.up.reqPaths) >= maxTrackedPerSock {
					evictOldest(s.up.reqPaths)
				}
				s.up.reqPaths[string(m.Token)] = ri
			}
			if m.Type == message.Confirmable {
				if len(s.up.reqMIDs) >= maxTrackedPerSock {
					evictOldest(s.up.reqMIDs)
				}
				s.up.reqMIDs[uint16(m.MessageID)] = ri
			}
			s.up.mu.Unlock()
			if (m.Code == codes.PUT || m.Code == codes.POST) && len(m.Payload) > 0 {
				if nd, changed := p.bindingView(m, lp, false); changed {
					return nd, true
				}
			}
		}
		return d, true
	}
	// A response: the 2.01 of a Register carries the registration's location.
	s.up.mu.Lock()
	if s.up.regToken[string(m.Token)] {
		delete(s.up.regToken, string(m.Token))
		if m.Code == codes.Created {
			if loc := locationOf(m.Options); loc != "" {
				s.up.location = loc
			}
		}
	}
	s.up.mu.Unlock()
	return d, true
}

// locationOf joins the Location-Path options of a 2.01 ("/rd/5a3f").
// Each option is one segment (RFC 7252 §5.10.7); some servers
// (lwm2m-node-lib) send "rd/1" in one option, which go-coap's
// LocationPath refuses, so the segments are joined here as they come.
func locationOf(opts message.Options) string {
	var b strings.Builder
	for _, o := range opts {
		if o.ID == message.LocationPath && len(o.Value) > 0 {
			b.WriteByte('/')
			b.Write(o.Value)
		}
	}
	return b.String()
}

func evictOldest[K comparable](m map[K]reqInfo) {
	var oldest K
	var ot time.Time
	first := true
	for k, v := range m {
		if first || v.at.Before(ot) {
			oldest, ot, first = k, v.at, false
		}
	}
	delete(m, oldest)
}

// bindingView rewrites the binding resources (/1/x/7, /3/x/16) of the
// payload of m, received for base: up (device → external server) S→U,
// down (a Write of the external server) U→S. It returns the re-encoded
// datagram and whether anything changed. A payload it cannot decode (or a
// block of a block-wise transfer) is left alone.
func (p *proxy) bindingView(m message.Message, base path.Path, up bool) ([]byte, bool) {
	if _, err := m.Options.GetUint32(message.Block2); err == nil {
		return nil, false
	}
	if _, err := m.Options.GetUint32(message.Block1); err == nil {
		return nil, false
	}
	cf, err := m.Options.ContentFormat()
	if err != nil {
		cf = message.TextPlain
	}
	f := content.Format(cf)
	recs, err := content.Decode(f, base, m.Payload, p.model)
	if err != nil {
		return nil, false
	}
	changed := false
	for i, r := range recs {
		if r.Path.Len() != path.LevelResource || r.Value.Type() != model.String {
			continue
		}
		if !(r.Path.ObjectID() == 1 && r.Path.ResourceID() == 7) && !(r.Path.ObjectID() == 3 && r.Path.ResourceID() == 16) {
			continue
		}
		if !up && r.Path.ObjectID() != 1 {
			continue
		}
		var nb string
		if up {
			nb = upstreamBinding(r.Value.Str())
		} else {
			nb = deviceBinding(r.Value.Str())
		}
		if nb != r.Value.Str() {
			recs[i].Value = content.NewString(nb)
			changed = true
		}
	}
	if !changed {
		return nil, false
	}
	body, err := content.Encode(f, base, recs)
	if err != nil {
		return nil, false
	}
	m.Payload = body
	out, ok := encodeCoAP(m)
	if !ok {
		return nil, false
	}
	p.bindingRewritten.Add(1)
	return out, true
}

// upstreamBinding is the binding the external server sees for a device
// whose own binding is b (the rule of rewriteRegistration: S becomes U, or
// goes when U is there already; Q stays).
func upstreamBinding(b string) string {
	if !strings.Contains(b, "S") {
		return b
	}
	if strings.Contains(b, "U") {
		return strings.Replace(b, "S", "", 1)
	}
	return strings.Replace(b, "S", "U", 1)
}

// deviceBinding maps a binding the external server writes back to the
// device's link: U becomes S (the device is reached by SMS only).
func deviceBinding(b string) string {
	if strings.Contains(b, "S") || !strings.Contains(b, "U") {
		return b
	}
	return strings.Replace(b, "U", "S", 1)
}

// deregisterAll de-registers every bridged device that is registered at
// the external server (CoAP CON DELETE of its location from its socket,
// retransmitted per RFC 7252 until ACK or ctx ends), all devices at once.
// It returns the number answered.
func (p *proxy) deregisterAll(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, deregisterTimeout)
	defer cancel()
	p.mu.Lock()
	socks := make([]*proxySock, 0, len(p.socks))
	for _, s := range p.socks {
		socks = append(socks, s)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for _, s := range socks {
		s.up.mu.Lock()
		loc := s.up.location
		s.up.mu.Unlock()
		if loc == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p.deregister(ctx, s, loc) {
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return n
}

func (p *proxy) deregister(ctx context.Context, s *proxySock, loc string) bool {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false
	}
	mid := uint16(b[0])<<8 | uint16(b[1])
	m := message.Message{Type: message.Confirmable, Code: codes.DELETE, MessageID: int32(mid), Token: b[2:6]}
	for _, seg := range strings.Split(strings.Trim(loc, "/"), "/") {
		m.Options = m.Options.Add(message.Option{ID: message.URIPath, Value: []byte(seg)})
	}
	d, ok := encodeCoAP(m)
	if !ok {
		return false
	}
	done := make(chan struct{})
	s.up.mu.Lock()
	s.up.ours[mid] = done
	s.up.mu.Unlock()
	defer func() {
		s.up.mu.Lock()
		delete(s.up.ours, mid)
		s.up.mu.Unlock()
	}()
	timeout := 2 * time.Second // ACK_TIMEOUT, doubled each retransmission (RFC 7252 §4.2)
	for {
		if _, err := s.conn.WriteToUDP(d, p.upstream); err != nil {
			p.log.Warn("proxy: upstream De-register", "device", s.dev, "err", err)
			return false
		}
		t := time.NewTimer(timeout)
		select {
		case <-done:
			t.Stop()
			p.deregistered.Add(1)
			s.up.mu.Lock()
			s.up.location = ""
			s.up.mu.Unlock()
			p.log.Info("proxy: device de-registered upstream at shutdown", "device", s.dev, "location", loc)
			return true
		case <-ctx.Done():
			t.Stop()
			p.deregisterFailed.Add(1)
			p.log.Warn("proxy: no answer to the upstream De-register", "device", s.dev, "location", loc)
			return false
		case <-t.C:
			timeout *= 2
		}
	}
}
