// Package modemlink connects the SMS bearer to real (or simulated) AT modems:
// it adapts a modem.Pool to sms.Transport. It is the only package that knows
// both sides, so neither modem nor bearer/sms depends on the other.
package modemlink

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/modem"
)

// Link is an sms.Transport over a modem.Pool. Close stops its forwarding
// goroutine; the pool stays open (its owner closes it).
type Link struct {
	pool *modem.Pool
	in   chan sms.Inbound
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// New starts forwarding what the pool receives. buffer bounds the inbound
// channel (default 64); a full channel holds the pool back, and the modems
// keep what they have not been able to hand over.
func New(p *modem.Pool, buffer int) *Link {
	if buffer <= 0 {
		buffer = 64
	}
	l := &Link{pool: p, in: make(chan sms.Inbound, buffer), stop: make(chan struct{})}
	l.wg.Add(1)
	go l.forward()
	return l
}

func (l *Link) forward() {
	defer l.wg.Done()
	defer close(l.in)
	rx := l.pool.Received()
	for {
		select {
		case <-l.stop:
			return
		case r, ok := <-rx:
			if !ok {
				return
			}
			msg := sms.Inbound{SIM: r.Modem, TPDU: r.TPDU, Ack: r.Ack, Reject: r.Reject}
			select {
			case l.in <- msg:
			case <-l.stop:
				// Not handed on: leave it with the modem for the next sweep.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				r.Reject(ctx)
				cancel()
				return
			}
		}
	}
}

// SendTPDU implements sms.Transport. The pool picks among all its SIMs when
// from is empty.
func (l *Link) SendTPDU(ctx context.Context, from, to string, tpdu []byte) (string, uint8, error) {
	rc, err := l.pool.SendTPDU(ctx, from, tpdu)
	if err != nil {
		return "", 0, fmt.Errorf("modemlink: send to %s: %w", to, err)
	}
	return rc.From, uint8(rc.MR), nil
}

// Inbound implements sms.Transport.
func (l *Link) Inbound() <-chan sms.Inbound { return l.in }

// Close stops forwarding. It does not close the pool.
func (l *Link) Close() error {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	return nil
}

var _ sms.Transport = (*Link)(nil)
