package bearer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
)

// qbParams imitates the SMS bearer with Q-Block: one 140-byte segment,
// concatenated datagrams of up to 9 segments (1 KiB blocks), no CoAP
// retransmission, short timeouts.
func qbParams(ack time.Duration, maxPayloads int) bearer.Params {
	p := fastParams(ack, 0)
	p.Name = "sms"
	p.MaxDatagram = 134 * 255
	p.PreferredDatagram = 140
	p.BlockDatagram = 9 * 134
	p.CostPerDatagram = 1
	p.QBlock = bearer.QBlockParams{Enabled: true, MaxPayloads: maxPayloads}
	return p
}

// getAsking is a GET its caller asks again, up to 3 times, when it timed
// out: on a bearer without CoAP retransmission (these pipes imitate SMS)
// a lost request, or an answer lost whole, is not asked for again by the
// message layer on a bearer that cannot tell it heard the peer
// (bearer.PeerActivity: the SMS bearer can), its caller decides.
func getAsking(ctx context.Context, ep *bearer.Endpoint, to net.Addr, path string) (*bearer.Response, error) {
	for n := 1; ; n++ {
		resp, err := ep.Get(ctx, to, path)
		var te *bearer.TimeoutError
		if err == nil || n == 3 || !errors.As(err, &te) {
			return resp, err
		}
	}
}

// qbMux serves /small (a few bytes), /big (GET: body; PUT/POST: stores
// the body and answers 2.04) and counts the handler's runs.
type qbMux struct {
	mux      *bearer.ServeMux
	big      []byte
	mu       sync.Mutex
	uploads  [][]byte
	gets     atomic.Int64
	putsRuns atomic.Int64
}

func newQBMux(big []byte) *qbMux {
	q := &qbMux{mux: bearer.NewServeMux(), big: big}
	q.mux.HandleFunc("/small", func(w bearer.ResponseWriter, r *bearer.Request) {
		_ = w.WriteResponse(codes.Content, []byte("m2mbearer"))
	})
	q.mux.HandleFunc("/big", func(w bearer.ResponseWriter, r *bearer.Request) {
		switch r.Code {
		case codes.GET:
			q.gets.Add(1)
			w.SetOption(bearer.ContentFormatOption(message.AppOctets))
			_ = w.WriteResponse(codes.Content, q.big)
		default:
			q.putsRuns.Add(1)
			q.mu.Lock()
			q.uploads = append(q.uploads, append([]byte(nil), r.Payload...))
			q.mu.Unlock()
			_ = w.WriteResponse(codes.Changed, nil)
		}
	})
	return q
}

func (q *qbMux) lastUpload() []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.uploads) == 0 {
		return nil
	}
	return q.uploads[len(q.uploads)-1]
}

func TestQBlockProbeAndTransfers(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		mp     int
		faults pipe.Faults
		seed   int64
	}{
		{"4KiB no loss", 4 << 10, 8, pipe.Faults{}, 1},
		{"16KiB no loss, 3 sets", 16 << 10, 6, pipe.Faults{}, 2},
		{"32KiB no loss", 32 << 10, 32, pipe.Faults{}, 3},
		{"8KiB 20% loss", 8 << 10, 4, pipe.Faults{Loss: 0.2}, 4},
		{"16KiB 20% loss, dup, reorder", 16 << 10, 4, pipe.Faults{Loss: 0.2, Duplicate: 0.1, Reorder: 0.2}, 5},
		{"4100 bytes 30% loss", 4100, 2, pipe.Faults{Loss: 0.3}, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			big := randomBody(tc.size, uint64(tc.seed))
			q := newQBMux(big)
			p := newPair(t, q.mux, []pipe.Option{pipe.WithParams(qbParams(40*time.Millisecond, tc.mp)), pipe.WithSeed(tc.seed)})
			peer := p.sconn.LocalAddr()
			ctx := ctxT(t, 60*time.Second)
			// The probe: a CON GET with Q-Block2 tells both sides. With
			// a 40 ms ACK timeout and no retransmission, a loaded machine
			// (-race, other tests) can miss one round trip: a timed-out
			// probe is asked again as a new exchange, a few times.
			var resp *bearer.Response
			var err error
			for try := 0; try < 5; try++ {
				if resp, err = p.cli.Get(ctx, peer, "/small"); !errors.Is(err, bearer.ErrTimeout) || ctx.Err() != nil {
					break
				}
			}
			if err != nil || string(resp.Payload) != "m2mbearer" {
				t.Fatalf("probe GET: %v %v", resp, err)
			}
			if ok, known := p.cli.QBlockSupport(peer); !ok || !known {
				t.Fatalf("client: server support %v known %v", ok, known)
			}
			if ok, known := p.srv.QBlockSupport(p.cconn.LocalAddr()); !ok || !known {
				t.Fatalf("server: client support %v known %v", ok, known)
			}
			p.cconn.SetFaults(tc.faults)
			p.sconn.SetFaults(tc.faults)
			resp, err = getAsking(ctx, p.cli, peer, "/big")
			if err != nil {
				t.Fatalf("Q-Block2 GET: %v", err)
			}
			if !bytes.Equal(resp.Payload, big) {
				t.Fatalf("Q-Block2 body: %d bytes, want %d", len(resp.Payload), len(big))
			}
			if cf, _ := resp.ContentFormat(); cf != message.AppOctets {
				t.Fatalf("content format %v", cf)
			}
			up := randomBody(tc.size, uint64(tc.seed)+100)
			resp, err = p.cli.Put(ctx, peer, "/big", message.AppOctets, up)
			if err != nil {
				t.Fatalf("Q-Block1 PUT: %v", err)
			}
			if resp.Code != codes.Changed {
				t.Fatalf("Q-Block1 PUT answered %v", resp.Code)
			}
			if !bytes.Equal(q.lastUpload(), up) {
				t.Fatalf("server got %d bytes, want %d", len(q.lastUpload()), len(up))
			}
			if n := q.putsRuns.Load(); n != 1 {
				t.Fatalf("PUT handler ran %d times", n)
			}
			// The server counts a Q-Block2 body after its last block
			// left, which may be after the client has it all: wait.
			for end := time.Now().Add(5 * time.Second); p.smet.Get(bearer.EventQBlockTransfer) < 2 && time.Now().Before(end); {
				time.Sleep(time.Millisecond)
			}
			if p.cmet.Get(bearer.EventQBlockTransfer) < 2 || p.smet.Get(bearer.EventQBlockTransfer) < 2 {
				t.Fatalf("Q-Block transfers: client %d server %d", p.cmet.Get(bearer.EventQBlockTransfer), p.smet.Get(bearer.EventQBlockTransfer))
			}
			if p.cmet.Get(bearer.EventBlockTransfer) != 0 {
				t.Fatalf("RFC 7959 transfers: %d", p.cmet.Get(bearer.EventBlockTransfer))
			}
			t.Logf("client sent %d datagrams, server %d; missing asks client %d server %d",
				p.cconn.Stats().Sent, p.sconn.Stats().Sent, p.cmet.Get(bearer.EventQBlockMissing), p.smet.Get(bearer.EventQBlockMissing))
		})
	}
}

// TestQBlockDatagramCounts checks that a transfer of N blocks costs N
// datagrams plus one: the request of a GET, the answer of a PUT.
func TestQBlockDatagramCounts(t *testing.T) {
	for _, size := range []int{4 << 10, 8 << 10, 16 << 10, 32 << 10} {
		t.Run(fmt.Sprintf("%dKiB", size>>10), func(t *testing.T) {
			big := randomBody(size, 9)
			q := newQBMux(big)
			p := newPair(t, q.mux, []pipe.Option{pipe.WithParams(qbParams(200*time.Millisecond, 32))})
			peer := p.sconn.LocalAddr()
			ctx := ctxT(t, 30*time.Second)
			p.cli.SetQBlockSupport(peer, true)
			n := size / 1024
			c0, s0 := p.cconn.Stats().Sent, p.sconn.Stats().Sent
			if resp, err := p.cli.Get(ctx, peer, "/big"); err != nil || !bytes.Equal(resp.Payload, big) {
				t.Fatalf("GET: %v", err)
			}
			if c, s := p.cconn.Stats().Sent-c0, p.sconn.Stats().Sent-s0; c != 1 || s != int64(n) {
				t.Fatalf("GET of %d blocks: client sent %d datagrams, server %d; want 1 and %d", n, c, s, n)
			}
			c0, s0 = p.cconn.Stats().Sent, p.sconn.Stats().Sent
			if resp, err := p.cli.Put(ctx, peer, "/big", message.AppOctets, big); err != nil || resp.Code != codes.Changed {
				t.Fatalf("PUT: %v %v", resp, err)
			}
			if c, s := p.cconn.Stats().Sent-c0, p.sconn.Stats().Sent-s0; c != int64(n) || s != 1 {
				t.Fatalf("PUT of %d blocks: client sent %d datagrams, server %d; want %d and 1", n, c, s, n)
			}
		})
	}
}

// TestQBlockFallback: a peer that does not know Q-Block answers the probe
// with 4.02; the request goes again without it and later transfers use
// RFC 7959.
func TestQBlockFallback(t *testing.T) {
	big := randomBody(5000, 3)
	q := newQBMux(big)
	cp := qbParams(40*time.Millisecond, 8)
	sp := cp
	sp.QBlock = bearer.QBlockParams{}
	a, b, err := pipe.New(pipe.WithParams(cp))
	if err != nil {
		t.Fatal(err)
	}
	// The server side imitates a peer without RFC 9177: Q-Block options
	// are unknown critical options to it.
	srv, err := bearer.NewEndpoint(a, bearer.WithHandler(rejectQBlock(q.mux)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	met := new(bearer.Counters)
	cli, err := bearer.NewEndpoint(b, bearer.WithMetrics(met))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := ctxT(t, 20*time.Second)
	resp, err := cli.Get(ctx, a.LocalAddr(), "/small")
	if err != nil || string(resp.Payload) != "m2mbearer" {
		t.Fatalf("GET after 4.02: %v %v", resp, err)
	}
	if ok, known := cli.QBlockSupport(a.LocalAddr()); ok || !known {
		t.Fatalf("support %v known %v, want false true", ok, known)
	}
	if met.Get(bearer.EventQBlockFallback) != 1 {
		t.Fatalf("fallbacks %d", met.Get(bearer.EventQBlockFallback))
	}
	// Our server Endpoint learnt from the probe that the client supports
	// Q-Block and would answer it so; the server imitated here knows
	// nothing of it.
	srv.SetQBlockSupport(b.LocalAddr(), false)
	if resp, err = cli.Get(ctx, a.LocalAddr(), "/big"); err != nil || !bytes.Equal(resp.Payload, big) {
		t.Fatalf("RFC 7959 GET: %v", err)
	}
	if resp, err = cli.Put(ctx, a.LocalAddr(), "/big", message.AppOctets, big); err != nil || resp.Code != codes.Changed {
		t.Fatalf("RFC 7959 PUT: %v %v", resp, err)
	}
	if !bytes.Equal(q.lastUpload(), big) {
		t.Fatalf("RFC 7959 PUT: server got %d bytes", len(q.lastUpload()))
	}
	if met.Get(bearer.EventBlockTransfer) != 1 || met.Get(bearer.EventQBlockTransfer) != 0 {
		t.Fatalf("block transfers %d, Q-Block %d", met.Get(bearer.EventBlockTransfer), met.Get(bearer.EventQBlockTransfer))
	}
}

// rejectQBlock answers requests with a Q-Block option 4.02, as an
// RFC 7252 server that does not know options 19 and 31 does.
func rejectQBlock(h bearer.Handler) bearer.Handler {
	return bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		for _, o := range r.Options {
			if o.ID == message.QBlock1 || o.ID == message.QBlock2 {
				_ = w.WriteResponse(codes.BadOption, nil)
				return
			}
		}
		h.ServeCoAP(w, r)
	})
}

// TestQBlockLossSeeds runs Q-Block transfers under 20 % loss in both
// directions with many seeds: every one completes, with the right body,
// and the upload's handler runs once.
func TestQBlockLossSeeds(t *testing.T) {
	seeds := 30
	if testing.Short() {
		seeds = 8
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			size := 2000 + int(seed)*977
			big := randomBody(size, uint64(seed))
			q := newQBMux(big)
			f := pipe.Faults{Loss: 0.2, Duplicate: 0.05, Reorder: 0.1}
			p := newPair(t, q.mux, []pipe.Option{pipe.WithParams(qbParams(30*time.Millisecond, 3)), pipe.WithSeed(seed), pipe.WithFaults(f)})
			peer := p.sconn.LocalAddr()
			p.cli.SetQBlockSupport(peer, true)
			ctx := ctxT(t, 60*time.Second)
			resp, err := getAsking(ctx, p.cli, peer, "/big")
			if err != nil || !bytes.Equal(resp.Payload, big) {
				t.Fatalf("GET: %v", err)
			}
			resp, err = p.cli.Put(ctx, peer, "/big", message.AppOctets, big)
			if err != nil || resp.Code != codes.Changed {
				t.Fatalf("PUT: %v %v; client %v; server %v", resp, err, p.cmet.Snapshot(), p.smet.Snapshot())
			}
			if !bytes.Equal(q.lastUpload(), big) || q.putsRuns.Load() != 1 {
				t.Fatalf("upload: %d bytes, handler ran %d times", len(q.lastUpload()), q.putsRuns.Load())
			}
		})
	}
}
