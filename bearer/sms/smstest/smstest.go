package smstest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
)

// Faults are applied to every segment the network carries.
type Faults struct {
	Loss, Duplicate, Reorder float64 // probabilities in [0, 1]
	// Latency delays every delivery (Reorder holds a segment back by up
	// another Latency + 5 ms).
	Latency time.Duration
	// ReportStatus is the TP-ST of status reports (0 = delivered).
	ReportStatus byte
}

// Network is an in-memory SMSC. Its goroutines stop with Close.
type Network struct {
	mu     sync.Mutex
	sims   map[string]*SIM
	faults Faults
	rng    *rand.Rand
	wg     sync.WaitGroup
	done   chan struct{}
	closed bool

	Submitted, Delivered, Lost, Duplicated atomic.Uint64
}

// NewNetwork returns a network whose fault decisions come from seed.
func NewNetwork(seed uint64, f Faults) *Network {
	return &Network{sims: map[string]*SIM{}, faults: f, rng: rand.New(rand.NewPCG(seed, 7)), done: make(chan struct{})}
}

// SetFaults changes the faults from now on.
func (n *Network) SetFaults(f Faults) { n.mu.Lock(); n.faults = f; n.mu.Unlock() }

// SIM is one subscriber: an sms.Transport.
type SIM struct {
	MSISDN string
	net    *Network
	in     chan sms.Inbound
	mr     atomic.Uint32
	// FailNext makes the next N sends fail with SendErr.
	failNext atomic.Int32
	sendErr  error

	Acked, Rejected atomic.Uint64
}

// AddSIM attaches a SIM with the given MSISDN ("+..." form).
func (n *Network) AddSIM(msisdn string) *SIM {
	s := &SIM{MSISDN: msisdn, net: n, in: make(chan sms.Inbound, 4096)}
	n.mu.Lock()
	n.sims[msisdn] = s
	n.mu.Unlock()
	return s
}

// Close stops pending deliveries.
func (n *Network) Close() {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.done)
	}
	n.mu.Unlock()
	n.wg.Wait()
}

// FailNext makes the next count sends from this SIM fail with err.
func (s *SIM) FailNext(count int, err error) { s.sendErr = err; s.failNext.Store(int32(count)) }

// Inbound implements sms.Transport.
func (s *SIM) Inbound() <-chan sms.Inbound { return s.in }

// Inject delivers a raw TPDU to this SIM as if the network had.
func (s *SIM) Inject(tpdu []byte) {
	s.in <- sms.Inbound{SIM: s.MSISDN, TPDU: tpdu, Ack: s.ackFn(), Reject: s.rejectFn()}
}

func (s *SIM) ackFn() func(context.Context) error {
	return func(context.Context) error { s.Acked.Add(1); return nil }
}
func (s *SIM) rejectFn() func(context.Context) error {
	return func(context.Context) error { s.Rejected.Add(1); return nil }
}

// ErrNoRoute is returned for a destination with no SIM when reports are off.
var ErrNoRoute = errors.New("smstest: no such subscriber")

// SendTPDU implements sms.Transport: the SMSC takes the SMS-SUBMIT and
// delivers the SMS-DELIVER it becomes, subject to the faults.
func (s *SIM) SendTPDU(ctx context.Context, from, to string, tpdu []byte) (string, uint8, error) {
	if from != "" && from != s.MSISDN {
		return "", 0, fmt.Errorf("smstest: SIM %s asked to send as %s", s.MSISDN, from)
	}
	if s.failNext.Load() > 0 {
		s.failNext.Add(-1)
		return "", 0, s.sendErr
	}
	sub, err := pdu.ParseSubmit(tpdu)
	if err != nil {
		return "", 0, fmt.Errorf("smstest: bad SMS-SUBMIT: %w", err)
	}
	mr := uint8(s.mr.Add(1))
	n := s.net
	n.Submitted.Add(1)
	orig, _ := pdu.NumberAddress(s.MSISDN)
	deliver, err := pdu.DeliverOf(sub, orig, time.Now()).Marshal()
	if err != nil {
		return "", 0, err
	}
	n.mu.Lock()
	dst := n.sims[to]
	f := n.faults
	lost := n.rng.Float64() < f.Loss
	dup := n.rng.Float64() < f.Duplicate
	late := n.rng.Float64() < f.Reorder
	n.mu.Unlock()
	if dst == nil {
		return "", 0, fmt.Errorf("%w: %s", ErrNoRoute, to)
	}
	copies := 1
	if lost {
		copies = 0
		n.Lost.Add(1)
	} else if dup {
		copies = 2
		n.Duplicated.Add(1)
	}
	delay := f.Latency
	if late {
		delay += f.Latency + 5*time.Millisecond
	}
	for i := 0; i < copies; i++ {
		n.later(delay, func() {
			n.Delivered.Add(1)
			n.push(dst.in, sms.Inbound{SIM: dst.MSISDN, TPDU: deliver, Ack: dst.ackFn(), Reject: dst.rejectFn()})
		})
	}
	if sub.StatusReport {
		ra, _ := pdu.NumberAddress(to)
		st := f.ReportStatus
		if lost && st == 0 {
			st = 0x41 // incompatible destination: no delivery
		}
		rep := &pdu.StatusReport{MR: mr, Recipient: ra, SCTS: time.Now(), Discharge: time.Now(), Status: st}
		b, err := rep.Marshal()
		if err == nil {
			n.later(delay, func() { n.push(s.in, sms.Inbound{SIM: s.MSISDN, TPDU: b, Ack: s.ackFn(), Reject: s.rejectFn()}) })
		}
	}
	return s.MSISDN, mr, nil
}

func (n *Network) later(d time.Duration, fn func()) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		if d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-n.done:
				return
			}
		}
		select {
		case <-n.done:
		default:
			fn()
		}
	}()
}

func (n *Network) push(ch chan sms.Inbound, in sms.Inbound) {
	select {
	case ch <- in:
	case <-n.done:
	}
}
