package bearer_test

import (
	"bytes"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
)

// lossyLink imitates what the SMS bearer shows of a Q-Block2 answer whose
// every block lost a segment: the client hears the server (segments
// arrive, bearer.PeerActivity) but no block completes.
type lossyLink struct {
	mu    sync.Mutex
	drop  int       // the next this many block-sized datagrams from the server are lost
	heard time.Time // when something from the server last (partly) arrived
	lost  [][]byte  // the datagrams lost
	again int       // lost datagrams sent again byte for byte
}

// lossyServer is the server's bearer: it loses the datagrams lossyLink says.
type lossyServer struct {
	*pipe.Conn
	l *lossyLink
}

func (s lossyServer) WriteTo(p []byte, addr net.Addr) (int, error) {
	s.l.mu.Lock()
	s.l.heard = time.Now()
	lose := len(p) > 512 && s.l.drop > 0
	if lose {
		s.l.drop--
		s.l.lost = append(s.l.lost, append([]byte(nil), p...))
	} else if slices.ContainsFunc(s.l.lost, func(d []byte) bool { return bytes.Equal(d, p) }) {
		s.l.again++
	}
	s.l.mu.Unlock()
	if lose {
		return len(p), nil
	}
	return s.Conn.WriteTo(p, addr)
}

// lossyClient is the client's bearer: a bearer.PeerActivity.
type lossyClient struct {
	*pipe.Conn
	l *lossyLink
}

func (c lossyClient) LastHeard(net.Addr) time.Time {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	return c.l.heard
}

// TestQBlock2NoBlockOfFirstAnswer: the server got the Q-Block2 GET and
// sent its answer, but not one block arrived whole (on SMS: a segment of
// each lost). The client hears the server and asks again after
// NON_RECEIVE_TIMEOUT (RFC 9177 §4.4: a client that got no block re-sends
// the request). That request must reach the handler again: sent as a copy
// with the first message ID it was dropped by the server as a duplicate
// (RFC 7252 §4.5), the server sent nothing more and the GET timed out
// after 2 transmissions. Here it goes with a new message ID and the same
// token, and the server sends the same blocks again (on SMS, byte for
// byte: the segments of both sendings complete the blocks).
func TestQBlock2NoBlockOfFirstAnswer(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		mp   int
	}{
		{"4KiB one set", 4 << 10, 8},
		{"8KiB two sets", 8 << 10, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			big := randomBody(tc.size, 9)
			q := newQBMux(big)
			// ACK_TIMEOUT 1 s: the server's answer must be heard
			// within MAX_TRANSMIT_WAIT (1.5 s) of the request, or the
			// client takes it for a silent peer (with 200 ms, 300 ms:
			// missed under -race on a loaded machine, 1 run in 40).
			params := qbParams(time.Second, tc.mp)
			// As on SMS, a message ID is remembered far longer than
			// NON_RECEIVE_TIMEOUT (NON_LIFETIME = MAX_LATENCY here): a
			// copy of the request is a duplicate to the server.
			params.MaxLatency = 5 * time.Second
			a, b, l, srv := lossyQBServer(t, params, q)
			cmet := new(bearer.Counters)
			cli, err := bearer.NewEndpoint(lossyClient{b, l}, bearer.WithSeed(2), bearer.WithMetrics(cmet))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cli.Close(); _ = srv.Close() })
			ctx := ctxT(t, 30*time.Second)
			peer := a.LocalAddr()
			// The probe teaches both sides (no loss).
			if resp, err := cli.Get(ctx, peer, "/big"); err != nil || !bytes.Equal(resp.Payload, big) {
				t.Fatalf("probe GET: %v", err)
			}
			if ok, known := cli.QBlockSupport(peer); !ok || !known {
				t.Fatalf("client: server support %v known %v", ok, known)
			}
			// Every block of the next answer is lost (the client hears
			// the server all the while).
			l.mu.Lock()
			l.drop = tc.size >> 10
			l.mu.Unlock()
			sent0, gets0 := b.Stats().Sent, q.gets.Load()
			resp, err := cli.Get(ctx, peer, "/big")
			var te *bearer.TimeoutError
			if errors.As(err, &te) {
				t.Fatalf("GET after a first answer lost whole: %v (server handler runs %d)", err, q.gets.Load()-gets0)
			}
			if err != nil || !bytes.Equal(resp.Payload, big) {
				t.Fatalf("GET after a first answer lost whole: %v", err)
			}
			if n := b.Stats().Sent - sent0; n < 2 {
				t.Fatalf("client sent %d datagrams, want the request and its re-sending at least", n)
			}
			if n := cmet.Get(bearer.EventRetransmission); n < 1 {
				t.Fatalf("client re-sent the request %d times", n)
			}
			l.mu.Lock()
			lost, again := len(l.lost), l.again
			l.mu.Unlock()
			if again != lost {
				t.Fatalf("%d of the %d lost blocks were sent again byte for byte", again, lost)
			}
			t.Logf("client sent %d datagrams, handler ran %d times, %d lost blocks sent again byte for byte", b.Stats().Sent-sent0, q.gets.Load()-gets0, again)
		})
	}
}

// lateClient is lossyClient whose next write, once armed, returns only
// after the server has written something (its answer): a client
// goroutine descheduled between its write and what follows, while the
// server already answers (a loaded machine does that).
type lateClient struct {
	lossyClient
	armed atomic.Bool
}

func (c *lateClient) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.armed.CompareAndSwap(true, false) {
		return c.lossyClient.WriteTo(p, addr)
	}
	start := time.Now()
	n, err := c.lossyClient.WriteTo(p, addr)
	for deadline := start.Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if c.LastHeard(addr).After(start) {
			break
		}
	}
	return n, err
}

// TestQBlock2AnswerHeardBeforeWriteReturns: the server's answer (every
// block lost) is heard before the client's write of the request returns.
// The client must still count it as heard after its request and ask
// again: it took the time after the write as the request's time, so the
// answer looked older than the request, the server silent, and the GET
// timed out at MAX_TRANSMIT_WAIT after 1 transmission
// (TestQBlock2NoBlockOfFirstAnswer failed that way under load).
func TestQBlock2AnswerHeardBeforeWriteReturns(t *testing.T) {
	big := randomBody(4<<10, 9)
	q := newQBMux(big)
	params := qbParams(time.Second, 8)
	params.MaxLatency = 5 * time.Second
	a, b, l, srv := lossyQBServer(t, params, q)
	cb := &lateClient{lossyClient: lossyClient{b, l}}
	cli, err := bearer.NewEndpoint(cb, bearer.WithSeed(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close(); _ = srv.Close() })
	ctx := ctxT(t, 30*time.Second)
	peer := a.LocalAddr()
	if resp, err := cli.Get(ctx, peer, "/big"); err != nil || !bytes.Equal(resp.Payload, big) {
		t.Fatalf("probe GET: %v", err)
	}
	l.mu.Lock()
	l.drop = 4
	l.mu.Unlock()
	cb.armed.Store(true)
	gets0 := q.gets.Load()
	resp, err := cli.Get(ctx, peer, "/big")
	if err != nil || !bytes.Equal(resp.Payload, big) {
		t.Fatalf("GET whose lost answer was heard before the write returned: %v (server handler runs %d)", err, q.gets.Load()-gets0)
	}
}

// lossyQBServer makes a pipe with params and serves q on its first side
// through a lossyServer; the caller makes the client on b with l.
func lossyQBServer(t *testing.T, params bearer.Params, q *qbMux) (a, b *pipe.Conn, l *lossyLink, srv *bearer.Endpoint) {
	t.Helper()
	a, b, err := pipe.New(pipe.WithParams(params), pipe.WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	l = &lossyLink{}
	srv, err = bearer.NewEndpoint(lossyServer{a, l}, bearer.WithHandler(q.mux), bearer.WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	return a, b, l, srv
}
