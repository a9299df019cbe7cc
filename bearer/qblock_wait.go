package bearer

import (
	"context"
	"net"
	"time"
)

// PeerActivity is implemented by bearers that see what arrives from a
// peer below whole datagrams, such as the SMS bearer (every segment of a
// concatenated SMS, before the set is complete). LastHeard returns when
// anything from peer last arrived (the zero time: never).
//
// On a bearer without CoAP retransmission (MAX_RETRANSMIT 0: SMS), the
// RFC 9177 client sends a Q-Block2 request again only when the peer was
// heard from since it sent it: its answer is on its way (on SMS a block
// whose segments were partly lost completes from the segments of its
// re-sending) or it is busy sending something else first. A request to a
// peer that sends nothing goes once and ends at MAX_TRANSMIT_WAIT.
type PeerActivity interface {
	LastHeard(peer net.Addr) time.Time
}

// LastHeardOf returns b's LastHeard for peer when b is a
// PeerActivity, the zero time otherwise; security layers that wrap a
// bearer forward it with this.
func LastHeardOf(b net.PacketConn, peer net.Addr) time.Time {
	if pr, ok := b.(PeerActivity); ok {
		return pr.LastHeard(peer)
	}
	return time.Time{}
}

// BacklogOf returns b's Backlog for peer when b is a Backlogger, 0
// otherwise.
func BacklogOf(b net.PacketConn, peer net.Addr) int {
	if bl, ok := b.(Backlogger); ok {
		return bl.Backlog(peer)
	}
	return 0
}

func (e *Endpoint) lastHeard(peer net.Addr) time.Time { return LastHeardOf(e.b, peer) }

// qb2Schedule is when a Q-Block2 request that got no answer yet goes
// again (doQBlock2).
type qb2Schedule struct {
	e        *Endpoint
	deadline time.Time     // MAX_TRANSMIT_WAIT after the first transmission (CON schedule)
	wait     time.Duration // before the next transmission
	tries    int           // transmissions after the first
	partial  bool          // no retransmission: only while the peer is heard from
}

// qb2Schedule returns the schedule of a Q-Block2 request: the bearer's CON
// schedule (ACK_TIMEOUT doubling, MAX_RETRANSMIT times, within
// MAX_TRANSMIT_WAIT); on a bearer without retransmission that is a
// PeerActivity, NON_RECEIVE_TIMEOUT doubling, NON_MAX_RETRANSMIT times,
// each only when the peer was heard from since the last transmission (a
// silent peer: one transmission, MAX_TRANSMIT_WAIT). A request other than
// GET and FETCH goes once.
func (e *Endpoint) qb2Schedule(safe bool) *qb2Schedule {
	s := &qb2Schedule{e: e, deadline: time.Now().Add(e.p.MaxTransmitWait()), wait: e.initialTimeout(), tries: e.p.MaxRetransmit}
	if _, ok := e.b.(PeerActivity); ok && e.p.MaxRetransmit == 0 {
		s.partial, s.wait, s.tries = true, e.p.NonReceiveTimeout(), e.p.NonMaxRetransmit()
	}
	if !safe {
		s.partial, s.tries = false, 0
	}
	return s
}

// await waits for the first answer to transmission n (0: the first) of
// t's request, whose write began at sent. again true: send the request
// again; a nil answer with no error is an RST.
func (s *qb2Schedule) await(ctx context.Context, t *qbTransfer, n int, sent time.Time) (resp *Response, again bool, err error) {
	e := s.e
	if !s.partial {
		d := s.wait
		if n >= s.tries {
			d = time.Until(s.deadline)
		}
		resp, timedOut, err := e.qbAwait(ctx, t, d)
		switch {
		case err != nil || !timedOut:
			return resp, false, err
		case n < s.tries && time.Now().Before(s.deadline):
			s.wait *= 2
			return nil, true, nil
		}
		return nil, false, t.timeout("request")
	}
	mtw := e.p.MaxTransmitWait()
	for {
		heard := e.lastHeard(t.peer).After(sent)
		until := sent.Add(mtw) // a peer that sends nothing: given up at MAX_TRANSMIT_WAIT
		if heard {
			until = sent.Add(s.wait)
		}
		resp, timedOut, err := e.qbAwait(ctx, t, max(time.Until(until), time.Millisecond))
		if err != nil || !timedOut {
			return resp, false, err
		}
		heard = e.lastHeard(t.peer).After(sent)
		since := time.Since(sent)
		switch {
		case !heard && since >= mtw:
			return nil, false, t.timeout("request")
		case heard && since >= s.wait:
			if n >= s.tries {
				return nil, false, t.timeout("request")
			}
			s.wait *= 2
			return nil, true, nil
		}
	}
}
