package bearer_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

func randomBody(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestBlock2Download(t *testing.T) {
	tests := []struct {
		name   string
		params bearer.Params
		size   int
		faults pipe.Faults
	}{
		{"udp 64KiB", fastParams(50*time.Millisecond, 4), 64 << 10, pipe.Faults{}},
		{"udp 64KiB with loss", fastParams(30*time.Millisecond, 4), 64 << 10, pipe.Faults{Loss: 0.05, Duplicate: 0.05}},
		{"sms 2000 bytes", smsParams(), 2000, pipe.Faults{}},
		{"exactly one block", fastParams(50*time.Millisecond, 4), 1024, pipe.Faults{}},
		{"one byte over", fastParams(50*time.Millisecond, 4), 1025, pipe.Faults{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := randomBody(tc.size, uint64(tc.size))
			var runs atomic.Int64
			h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
				runs.Add(1)
				w.SetOption(bearer.ContentFormatOption(message.AppOctets))
				_ = w.WriteResponse(codes.Content, body)
			})
			p := newPair(t, h, []pipe.Option{pipe.WithParams(tc.params), pipe.WithFaults(tc.faults)})
			resp, err := p.cli.Get(ctxT(t, 60*time.Second), p.sconn.LocalAddr(), "/fw")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(resp.Payload, body) {
				t.Fatalf("body of %d bytes differs from the %d sent", len(resp.Payload), len(body))
			}
			if cf, _ := resp.ContentFormat(); cf != message.AppOctets {
				t.Fatalf("content format %v", cf)
			}
			if runs.Load() != 1 {
				t.Fatalf("handler ran %d times; continuation blocks must come from the kept body", runs.Load())
			}
			bs := p.srv.BlockSize()
			if tc.params.PreferredDatagram == 140 && bs != 64 {
				t.Fatalf("SMS block size %d, want 64", bs)
			}
			if max := p.sconn.Stats().Largest; max > int64(tc.params.PreferredDatagram) {
				t.Fatalf("server sent a %d-byte datagram, preferred %d", max, tc.params.PreferredDatagram)
			}
		})
	}
}

func TestBlock2SmallerSZXRequested(t *testing.T) {
	body := randomBody(5000, 1)
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) { _ = w.WriteResponse(codes.Content, body) })
	p := newPair(t, h, []pipe.Option{pipe.WithParams(fastParams(50*time.Millisecond, 4))})
	// The client asks for 128-byte blocks from the start (RFC 7959 §2.4 early negotiation).
	r := bearer.NewRequest(codes.GET, p.sconn.LocalAddr(), "/big")
	r.SetOption(bearer.UintOption(message.Block2, 3)) // NUM 0, M 0, SZX 3 = 128 bytes
	resp, err := p.cli.Do(ctxT(t, 30*time.Second), r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.Payload, body) {
		t.Fatalf("got %d bytes", len(resp.Payload))
	}
	if got := p.cconn.Stats().Sent - p.cmet.Get(bearer.EventRetransmission); got != (5000+127)/128 {
		t.Fatalf("client sent %d requests, want %d (128-byte blocks)", got, (5000+127)/128)
	}
}

func TestBlock1Upload(t *testing.T) {
	tests := []struct {
		name   string
		params bearer.Params
		size   int
		limits bearer.Limits
		want   codes.Code
	}{
		{"udp 20000", fastParams(2*time.Second, 4), 20000, bearer.Limits{}, codes.Changed},
		{"sms 700", smsParams(), 700, bearer.Limits{}, codes.Changed},
		{"too large 4.13", fastParams(2*time.Second, 4), 5000, bearer.Limits{MaxBodySize: 4096}, codes.RequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := randomBody(tc.size, 3)
			got := make(chan []byte, 1)
			h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
				got <- r.Payload
				_ = w.WriteResponse(codes.Changed, nil)
			})
			a, b, err := pipe.New(pipe.WithParams(tc.params))
			if err != nil {
				t.Fatal(err)
			}
			srv, err := bearer.NewEndpoint(a, bearer.WithHandler(h), bearer.WithLimits(tc.limits))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			cli, err := bearer.NewEndpoint(b) // default limits: the client may send more than the server takes
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			resp, err := cli.Put(ctxT(t, 60*time.Second), a.LocalAddr(), "/5/0/0", message.AppOctets, body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != tc.want {
				t.Fatalf("code %v, want %v", resp.Code, tc.want)
			}
			if tc.want == codes.RequestEntityTooLarge {
				if v, ok := optionUintT(resp.Options, message.Size1); !ok || v != 4096 {
					t.Fatalf("4.13 without Size1 4096: %v %v", v, ok)
				}
				return
			}
			if p := <-got; !bytes.Equal(p, body) {
				t.Fatalf("server reassembled %d bytes, want %d", len(p), len(body))
			}
			if max := b.Stats().Largest; max > int64(tc.params.PreferredDatagram) {
				t.Fatalf("client sent a %d-byte datagram, preferred %d", max, tc.params.PreferredDatagram)
			}
			if n := int(b.Stats().Sent); n != (tc.size+srv.BlockSize()-1)/srv.BlockSize() {
				t.Fatalf("client sent %d datagrams for %d bytes in %d-byte blocks", n, tc.size, srv.BlockSize())
			}
		})
	}
}

func optionUintT(opts message.Options, id message.OptionID) (uint32, bool) {
	v, err := opts.GetUint32(id)
	return v, err == nil
}

func TestBlock1GapGets408(t *testing.T) {
	raw, _ := newRaw(t, echoHandler(), fastParams(time.Second, 4))
	blk := func(mid int32, num uint32, more bool) message.Message {
		v := num<<4 | 2 // SZX 2: 64 bytes
		if more {
			v |= 8
		}
		return message.Message{Type: message.Confirmable, Code: codes.PUT, MessageID: mid, Token: []byte{7},
			Options: message.Options{{ID: message.URIPath, Value: []byte("x")}, bearer.UintOption(message.Block1, v)},
			Payload: bytes.Repeat([]byte{'a'}, 64)}
	}
	raw.sendMsg(blk(1, 0, true))
	if m := raw.recv(5 * time.Second); m == nil || m.Code != codes.Continue {
		t.Fatalf("block 0: %v", m)
	}
	raw.sendMsg(blk(2, 2, true)) // block 1 missing
	if m := raw.recv(5 * time.Second); m == nil || m.Code != codes.RequestEntityIncomplete {
		t.Fatalf("gap: %v, want 4.08", m)
	}
	raw.sendMsg(blk(3, 1, false)) // the buffer is gone now
	if m := raw.recv(5 * time.Second); m == nil || m.Code != codes.RequestEntityIncomplete {
		t.Fatalf("after gap: %v, want 4.08", m)
	}
}

func TestBlockLimitsPerEndpoint(t *testing.T) {
	params := fastParams(50*time.Millisecond, 4)
	body := randomBody(3000, 9)
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) { _ = w.WriteResponse(codes.Content, body) })
	a, b, err := pipe.New(pipe.WithParams(params))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := bearer.NewEndpoint(a, bearer.WithHandler(h))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := bearer.NewEndpoint(b, bearer.WithLimits(bearer.Limits{MaxBodySize: 2048}))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	_, err = cli.Get(ctxT(t, 30*time.Second), a.LocalAddr(), "/big")
	if !errors.Is(err, bearer.ErrBodyTooLarge) {
		t.Fatalf("err %v, want ErrBodyTooLarge", err)
	}
}

// TestBlock2ETagChangeRejected: a server whose body changes between blocks
// (different ETag) makes the download fail instead of mixing two bodies.
func TestBlock2ETagChangeRejected(t *testing.T) {
	a, b, err := pipe.New(pipe.WithParams(fastParams(time.Second, 4)))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := bearer.NewEndpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	raw := &rawPeer{t: t, conn: a, to: b.LocalAddr()}
	errc := make(chan error, 1)
	go func() {
		_, err := cli.Get(context.Background(), a.LocalAddr(), "/x")
		errc <- err
	}()
	for i, etag := range []byte{1, 2} {
		req := raw.recv(5 * time.Second)
		if req == nil {
			t.Fatalf("request %d missing", i)
		}
		raw.sendMsg(message.Message{Type: message.Acknowledgement, Code: codes.Content, MessageID: req.MessageID, Token: req.Token,
			Options: message.Options{{ID: message.ETag, Value: []byte{etag}}, bearer.UintOption(message.Block2, uint32(i)<<4|8)},
			Payload: bytes.Repeat([]byte{etag}, 16)})
	}
	if err := <-errc; !errors.Is(err, bearer.ErrBadResponse) {
		t.Fatalf("err %v, want ErrBadResponse", err)
	}
}

// TestBlock2ContinuationAfterExpiry: when the kept body has expired, a
// continuation request runs the handler again and is served from its
// new output.
func TestBlock2ContinuationAfterExpiry(t *testing.T) {
	body := randomBody(100, 4)
	var runs atomic.Int64
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		runs.Add(1)
		_ = w.WriteResponse(codes.Content, body)
	})
	raw, _ := newRaw(t, h, fastParams(time.Second, 4), bearer.WithLimits(bearer.Limits{BlockExpiry: time.Millisecond}))
	get := func(mid int32, num uint32) *message.Message {
		raw.sendMsg(message.Message{Type: message.Confirmable, Code: codes.GET, MessageID: mid, Token: []byte{byte(mid)},
			Options: message.Options{{ID: message.URIPath, Value: []byte("b")}, bearer.UintOption(message.Block2, num<<4|1)}})
		return raw.recv(5 * time.Second)
	}
	if m := get(1, 0); m == nil || !bytes.Equal(m.Payload, body[:32]) {
		t.Fatalf("block 0: %v", m)
	}
	time.Sleep(5 * time.Millisecond) // let the kept body expire
	m := get(2, 3)
	if m == nil || !bytes.Equal(m.Payload, body[96:]) {
		t.Fatalf("block 3: %v", m)
	}
	if v, err := m.Options.GetUint32(message.Block2); err != nil || v != 3<<4|1 {
		t.Fatalf("block 3 option %v %v", v, err)
	}
	if runs.Load() != 2 {
		t.Fatalf("handler ran %d times, want 2", runs.Load())
	}
}

func TestBlock1SizeShrinksForLongOptions(t *testing.T) {
	got := make(chan int, 1)
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		got <- len(r.Payload)
		_ = w.WriteResponse(codes.Created, nil)
	})
	p := newPair(t, h, []pipe.Option{pipe.WithParams(smsParams())})
	// An LwM2M-style registration with a long query: 64-byte blocks plus
	// these options would not fit one 140-byte SMS.
	r := bearer.NewRequest(codes.POST, p.sconn.LocalAddr(), "/rd?ep=urn:imei:356938035643809&lt=86400&lwm2m=1.1&b=UQS")
	r.Payload = randomBody(500, 2)
	resp, err := p.cli.Do(ctxT(t, 30*time.Second), r)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Created || <-got != 500 {
		t.Fatalf("code %v", resp.Code)
	}
	if l := p.cconn.Stats().Largest; l > 140 {
		t.Fatalf("client sent a %d-byte datagram over SMS", l)
	}
}

// TestBlock2BodyKeptWhileFetched: the kept Block2 body expires when it is
// idle for BlockExpiry, not BlockExpiry after its first block. Here the
// whole transfer (32 blocks, 10 ms each way) takes several times
// BlockExpiry while no gap between two blocks comes near it; the handler
// must run once.
func TestBlock2BodyKeptWhileFetched(t *testing.T) {
	const expiry = 150 * time.Millisecond
	body := randomBody(32<<10, 7)
	var runs atomic.Int64
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		runs.Add(1)
		_ = w.WriteResponse(codes.Content, body)
	})
	p := newPair(t, h, []pipe.Option{pipe.WithParams(fastParams(time.Second, 4)), pipe.WithFaults(pipe.Faults{Delay: 10 * time.Millisecond})},
		bearer.WithLimits(bearer.Limits{BlockExpiry: expiry}))
	start := time.Now()
	resp, err := p.cli.Get(ctxT(t, 30*time.Second), p.sconn.LocalAddr(), "/fw")
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if !bytes.Equal(resp.Payload, body) {
		t.Fatalf("body of %d bytes differs from the %d sent", len(resp.Payload), len(body))
	}
	if took < 2*expiry {
		t.Fatalf("transfer took %v, not longer than 2 × BlockExpiry (%v): the test proves nothing", took, expiry)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times over a %v transfer; a body being fetched is not idle", n, took)
	}
}
