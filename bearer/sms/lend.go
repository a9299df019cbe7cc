package sms

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// Lend returns b lent to one session of a layer that owns and closes its
// bearer, such as a DTLS client (secure.Dial closes its bearer when the
// handshake fails or the session ends): closing what Lend returns ends
// its reads (a read deadline wakes the reader, which then sees it closed)
// and leaves b open, so a device dials a new session on the same SMS
// bearer. Only one lent bearer of b should read at a time; Lend clears the
// read deadline the last one left. Its other methods are b's (accounting,
// PurposeHinter, Backlogger, PeerActivity).
func (b *Bearer) Lend() bearer.Bearer {
	if b != nil && b.ob != nil {
		_ = b.SetReadDeadline(time.Time{})
	}
	return &lent{Bearer: b}
}

type lent struct {
	*Bearer
	closed atomic.Bool
}

// ReadFrom is the Bearer's until Close, then net.ErrClosed.
func (l *lent) ReadFrom(p []byte) (int, net.Addr, error) {
	if l.closed.Load() || l.Bearer == nil {
		return 0, nil, net.ErrClosed
	}
	n, a, err := l.Bearer.ReadFrom(p)
	if err != nil && l.closed.Load() {
		return 0, nil, net.ErrClosed
	}
	return n, a, err
}

// Close ends the Lent's reads; the Bearer stays open.
func (l *lent) Close() error {
	if !l.closed.Swap(true) && l.Bearer != nil && l.Bearer.ob != nil {
		_ = l.Bearer.SetReadDeadline(time.Now())
	}
	return nil
}
