package gateway

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

// endpointLink is an sms.Transport over a modem/sim Endpoint: the SIM of a
// simulated device, which needs no AT modem (the server side uses real
// driver code over ptys; thousands of devices would not).
type endpointLink struct {
	msisdn string
	ep     *sim.Endpoint
	in     chan sms.Inbound

	mu     sync.Mutex
	closed bool
}

func newEndpointLink(n *sim.Network, msisdn string) (*endpointLink, error) {
	l := &endpointLink{msisdn: msisdn, in: make(chan sms.Inbound, 64)}
	ep, err := n.AddEndpoint(msisdn, l.deliver)
	if err != nil {
		return nil, err
	}
	l.ep = ep
	return l, nil
}

// deliver runs on the network's timer goroutine; a full channel refuses the
// message, and the simulated SMSC retries later, as for a full phone.
func (l *endpointLink) deliver(m sim.EndpointMessage) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	select {
	case l.in <- sms.Inbound{SIM: l.msisdn, TPDU: m.TPDU}:
		return true
	default:
		return false
	}
}

func (l *endpointLink) SendTPDU(ctx context.Context, _, _ string, tpdu []byte) (string, uint8, error) {
	mr, err := l.ep.Send(ctx, tpdu)
	return l.msisdn, mr, err
}

func (l *endpointLink) Inbound() <-chan sms.Inbound { return l.in }

func (l *endpointLink) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		l.ep.SetAttached(false)
		close(l.in)
	}
}

// sleepyBearer models the radio of a queue-mode device on UDP: it listens
// only for window after it last sent something, as a real device in queue
// mode does (LwM2M Core §6.5); datagrams arriving while it sleeps are lost
// and counted.
type sleepyBearer struct {
	bearer.Bearer
	window     time.Duration
	awakeUntil atomic.Int64
	dropped    atomic.Uint64
}

func (s *sleepyBearer) WriteTo(p []byte, addr net.Addr) (int, error) {
	s.awakeUntil.Store(time.Now().Add(s.window).UnixNano())
	return s.Bearer.WriteTo(p, addr)
}

func (s *sleepyBearer) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := s.Bearer.ReadFrom(p)
		if err != nil || time.Now().UnixNano() <= s.awakeUntil.Load() {
			return n, addr, err
		}
		s.dropped.Add(1)
	}
}

func (s *sleepyBearer) Awake() bool { return time.Now().UnixNano() <= s.awakeUntil.Load() }
