package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
)

// proxy bridges SMS-only devices to an external LwM2M server over UDP: each
// device gets its own UDP socket, so the external server sees one UDP peer
// per device and answers and sends requests to it as to any UDP client;
// what arrives on that socket goes to the device by SMS, and what the
// device sends by SMS leaves on its socket. CoAP datagrams are relayed
// whole (the external server and the device run the CoAP exchange end to
// end), with three exceptions. A Register whose endpoint name is not the
// one configured for the sending number is answered 4.03 by the proxy and
// not relayed (over NoSec SMS the number is the device's only identity).
// Register and Update are rewritten so the
// external server sees a UDP client (binding S becomes U, sms= is dropped:
// see rewriteRegistration). And, to save SMS, a retransmitted CON from the
// external server (same message ID within dupWindow) is not sent again over
// SMS, since the SMS network stores and forwards the first copy (the LwM2M
// SMS binding has no CoAP retransmission).
type proxy struct {
	smsConn  net.PacketConn
	upstream *net.UDPAddr
	bind     string
	allowed  map[string]string // bridged device MSISDN → its endpoint name
	log      *slog.Logger
	model    model.Resolver // types the payloads bindingView decodes

	mu     sync.Mutex
	socks  map[string]*proxySock
	closed bool
	wg     sync.WaitGroup

	up, down, dupDropped, refused, rewritten atomic.Uint64
	// deregistered and deregisterFailed count the upstream De-registers
	// at shutdown; bindingRewritten the payloads bindingView changed.
	deregistered, deregisterFailed, bindingRewritten atomic.Uint64
}

type proxySock struct {
	conn *net.UDPConn
	dev  sms.Addr
	mu   sync.Mutex
	seen map[uint16]time.Time // CON message IDs recently relayed down
	up   upstreamState        // see proxy_upstream.go
}

const (
	dupWindow      = 2 * time.Minute
	maxSeenPerSock = 64
)

// newProxy bridges devices (MSISDN → endpoint name) to upstream.
func newProxy(smsConn net.PacketConn, upstream, bind string, devices map[string]string, log *slog.Logger) (*proxy, error) {
	ua, err := net.ResolveUDPAddr("udp", upstream)
	if err != nil {
		return nil, fmt.Errorf("proxy upstream %q: %w", upstream, err)
	}
	p := &proxy{smsConn: smsConn, upstream: ua, bind: bind, allowed: map[string]string{}, socks: map[string]*proxySock{}, log: log,
		model: model.DefaultRegistry()}
	for number, ep := range devices {
		a, err := sms.ParseMSISDN(number)
		if err != nil {
			return nil, err
		}
		p.allowed[a.String()] = ep
	}
	p.wg.Add(1)
	go p.readSMS()
	return p, nil
}

// readSMS relays device datagrams upstream until the SMS conn closes.
func (p *proxy) readSMS() {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := p.smsConn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.isClosed() {
				return
			}
			p.log.Warn("proxy: sms read", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		a, ok := addr.(sms.Addr)
		want, bridged := "", false
		if ok {
			want, bridged = p.allowed[a.String()]
		}
		if !bridged {
			p.refused.Add(1)
			p.log.Warn("proxy: datagram from a device that is not bridged", "from", addr)
			continue
		}
		if ep, isReg := registerEndpoint(buf[:n]); isReg && ep != want {
			// Over NoSec SMS the number is the device's only identity: it
			// registers under its configured name or not at all.
			p.refused.Add(1)
			p.log.Warn("proxy: Register refused: endpoint name is not the one configured for the number",
				"from", a, "ep", ep, "configured", want)
			if resp, err := forbidden(buf[:n], fmt.Sprintf("endpoint %q is not the one configured for this number", ep)); err == nil {
				if _, err := p.smsConn.WriteTo(resp, a); err != nil {
					p.log.Warn("proxy: sms write", "device", a, "err", err)
				}
			}
			continue
		}
		s, err := p.sock(a)
		if err != nil {
			p.log.Warn("proxy: socket", "device", a, "err", err)
			continue
		}
		d := buf[:n]
		if rd, changed := rewriteRegistration(d); changed {
			d = rd
			p.rewritten.Add(1)
		}
		d, to := p.fromDevice(s, d)
		if _, err := s.conn.WriteToUDP(d, to); err != nil {
			p.log.Warn("proxy: upstream write", "device", a, "err", err)
			continue
		}
		p.up.Add(1)
	}
}

func (p *proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// sock returns the device's UDP socket, opening it on first use. The
// number of sockets is bounded by the configured devices.
func (p *proxy) sock(dev sms.Addr) (*proxySock, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, net.ErrClosed
	}
	if s, ok := p.socks[dev.String()]; ok {
		return s, nil
	}
	var laddr *net.UDPAddr
	if p.bind != "" {
		laddr = &net.UDPAddr{IP: net.ParseIP(p.bind)}
	}
	// Not connected: a server may answer and send its requests from
	// another port of its host than the one the device registered with
	// (lwm2m-node-lib sends through a CoAP proxy agent); the answers go
	// back to where each request came from (proxy_upstream.go).
	if laddr == nil {
		laddr = &net.UDPAddr{}
	}
	c, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, err
	}
	s := &proxySock{conn: c, dev: dev, seen: map[uint16]time.Time{}}
	s.up.init()
	p.socks[dev.String()] = s
	p.wg.Add(1)
	go p.readUDP(s)
	p.log.Info("proxy: device bridged", "device", dev, "local", c.LocalAddr(), "upstream", p.upstream)
	return s, nil
}

// readUDP relays the external server's datagrams to the device by SMS.
func (p *proxy) readUDP(s *proxySock) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.isClosed() {
				return
			}
			continue // ICMP port unreachable and the like
		}
		if !from.IP.Equal(p.upstream.IP) {
			// Only the external server's host talks to a device socket.
			p.refused.Add(1)
			continue
		}
		d, relay := p.fromUpstream(s, buf[:n], from)
		if !relay {
			continue
		}
		if s.duplicate(d) {
			p.dupDropped.Add(1)
			continue
		}
		if _, err := p.smsConn.WriteTo(d, s.dev); err != nil {
			p.log.Warn("proxy: sms write", "device", s.dev, "err", err)
			continue
		}
		p.down.Add(1)
	}
}

// duplicate reports a CON already relayed with the same message ID within
// dupWindow (RFC 7252 §3: type in bits 4-5 of byte 0, message ID in bytes
// 2-3). The table is bounded; the oldest entries go first.
func (s *proxySock) duplicate(d []byte) bool {
	if len(d) < 4 || d[0]>>6 != 1 || (d[0]>>4)&3 != 0 {
		return false
	}
	mid := uint16(d[2])<<8 | uint16(d[3])
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.seen[mid]; ok && now.Sub(t) < dupWindow {
		return true
	}
	if len(s.seen) >= maxSeenPerSock {
		var oldest uint16
		var ot time.Time
		for k, t := range s.seen {
			if ot.IsZero() || t.Before(ot) {
				oldest, ot = k, t
			}
		}
		delete(s.seen, oldest)
	}
	s.seen[mid] = now
	return false
}

// Close closes the device sockets; the SMS conn is closed by its owner,
// then wait returns once the relay goroutines are gone.
func (p *proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for _, s := range p.socks {
		s.conn.Close()
	}
	p.mu.Unlock()
}

func (p *proxy) wait() { p.wg.Wait() }

// ProxyStats are the relay counters.
type ProxyStats struct {
	Devices                       int
	Up, Down, DupDropped, Refused uint64
	// Rewritten counts registrations whose binding was changed to U.
	Rewritten uint64
	// Deregistered and DeregisterFailed count the upstream De-registers
	// of bridged devices at shutdown, answered or not.
	Deregistered, DeregisterFailed uint64
	// BindingRewritten counts payloads whose /1/x/7 or /3/x/16 were shown
	// as the external server's link (or a Write mapped back).
	BindingRewritten uint64
	// Registered is the number of devices registered upstream now.
	Registered int
}

func (p *proxy) stats() ProxyStats {
	p.mu.Lock()
	n := len(p.socks)
	reg := 0
	for _, s := range p.socks {
		s.up.mu.Lock()
		if s.up.location != "" {
			reg++
		}
		s.up.mu.Unlock()
	}
	p.mu.Unlock()
	return ProxyStats{Devices: n, Up: p.up.Load(), Down: p.down.Load(), DupDropped: p.dupDropped.Load(), Refused: p.refused.Load(), Rewritten: p.rewritten.Load(),
		Deregistered: p.deregistered.Load(), DeregisterFailed: p.deregisterFailed.Load(), BindingRewritten: p.bindingRewritten.Load(), Registered: reg}
}
