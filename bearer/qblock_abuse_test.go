package bearer

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// TestQBlockServerAbuse: every malformed or hostile Q-Block request gets
// RFC 9177's answer (or the RFC 7252 one), is counted, and leaves the
// reassembly within its bounds; none reaches the handler.
func TestQBlockServerAbuse(t *testing.T) {
	path := message.Option{ID: message.URIPath, Value: []byte("fw")}
	tag := message.Option{ID: message.RequestTag, Value: []byte{1}}
	qb1 := func(num uint32, more bool, szx uint32) message.Option {
		return UintOption(message.QBlock1, blockValue(num, more, szx))
	}
	qb2 := func(num uint32, more bool) message.Option {
		return UintOption(message.QBlock2, blockValue(num, more, 6))
	}
	size1 := func(n uint32) message.Option { return UintOption(message.Size1, n) }
	tests := []struct {
		name    string
		typ     message.Type
		opts    message.Options
		payload []byte
		want    codes.Code
		opt     message.OptionID // an option the answer must carry (0: none)
	}{
		{"Q-Block1 without Request-Tag", message.Confirmable, message.Options{path, qb1(0, true, 0), size1(64)}, make([]byte, 16), codes.BadRequest, 0},
		{"Q-Block1 without Size1", message.Confirmable, message.Options{path, qb1(0, true, 0), tag}, make([]byte, 16), codes.BadRequest, 0},
		{"Q-Block1 with a short non-final block", message.Confirmable, message.Options{path, qb1(0, true, 1), size1(100), tag}, make([]byte, 20), codes.BadRequest, 0},
		{"Q-Block1 beyond Size1", message.Confirmable, message.Options{path, qb1(9, false, 0), size1(32), tag}, make([]byte, 16), codes.BadRequest, 0},
		{"Q-Block1 with M on the last block", message.Confirmable, message.Options{path, qb1(1, true, 0), size1(32), tag}, make([]byte, 16), codes.BadRequest, 0},
		{"Q-Block1 SZX 7 (BERT)", message.Confirmable, message.Options{path, qb1(0, true, 7), size1(2048), tag}, make([]byte, 1024), codes.BadRequest, 0},
		{"Size1 over the body limit", message.Confirmable, message.Options{path, qb1(0, true, 0), size1(1 << 30), tag}, make([]byte, 16), codes.RequestEntityTooLarge, message.Size1},
		{"Q-Block1 twice", message.Confirmable, message.Options{path, qb1(0, true, 0), qb1(1, true, 0), size1(64), tag}, make([]byte, 16), codes.BadOption, 0},
		{"Q-Block1 with Block1", message.Confirmable, message.Options{path, qb1(0, true, 0), UintOption(message.Block1, 0x08), size1(64), tag}, make([]byte, 16), codes.BadOption, 0},
		{"Q-Block2 with Block2", message.Confirmable, message.Options{path, UintOption(message.Block2, 0x16), qb2(1, false)}, nil, codes.BadOption, 0},
		{"Q-Block2 of 4 bytes", message.Confirmable, message.Options{path, {ID: message.QBlock2, Value: []byte{1, 2, 3, 4}}}, nil, codes.BadOption, 0},
		{"Q-Block2 not ascending", message.Confirmable, message.Options{path, qb2(3, false), qb2(1, false)}, nil, codes.BadRequest, 0},
		{"Q-Block2 repeated block", message.Confirmable, message.Options{path, qb2(2, false), qb2(2, false)}, nil, codes.BadRequest, 0},
		{"missing blocks of a POST whose body is gone", message.Confirmable, message.Options{path, qb2(3, false)}, nil, codes.RequestEntityIncomplete, 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ran := false
			h := HandlerFunc(func(w ResponseWriter, r *Request) { ran = true; _ = w.WriteResponse(codes.Changed, nil) })
			cb := newCaptureBearer(UDPParams("capture"))
			met := new(Counters)
			e, err := NewEndpoint(cb, WithHandler(h), WithMetrics(met), WithLimits(Limits{MaxBodySize: 4096}))
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			code := codes.PUT
			if tc.want == codes.RequestEntityIncomplete {
				code = codes.POST
			}
			m := message.Message{Type: tc.typ, Code: code, MessageID: int32(100 + i), Token: []byte{7}, Options: tc.opts, Payload: tc.payload}
			data, err := encode(&m)
			if err != nil {
				t.Fatal(err)
			}
			e.handleDatagram(data, fuzzAddr("peer"))
			out := waitOut(t, cb, 1)
			var r message.Message
			r.Options = make(message.Options, 0, 8)
			if _, err := coder.DefaultCoder.Decode(out[0], &r); err != nil {
				t.Fatal(err)
			}
			if r.Code != tc.want {
				t.Fatalf("answered %v, want %v", r.Code, tc.want)
			}
			if tc.opt != 0 {
				if _, ok := optionBytes(r.Options, tc.opt); !ok {
					t.Fatalf("answer without option %d", tc.opt)
				}
			}
			if ran {
				t.Fatal("the handler ran")
			}
			if met.Get(EventBlockError)+met.Get(EventBadOption) == 0 {
				t.Fatalf("not counted: %v", met.Snapshot())
			}
		})
	}
}

// TestQBlockServerFlood: a peer opening more Q-Block1 bodies than the
// limits allow gets 5.03 or has its oldest evicted, counted; memory stays
// bounded.
func TestQBlockServerFlood(t *testing.T) {
	cb := newCaptureBearer(UDPParams("capture"))
	met := new(Counters)
	lim := Limits{MaxBlockBuffers: 4, MaxBlockBuffersPerPeer: 2, MaxBlockMemory: 8192, MaxBodySize: 4096}
	e, err := NewEndpoint(cb, WithHandler(NotFoundHandler()), WithMetrics(met), WithLimits(lim))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i := range 50 {
		m := message.Message{Type: message.NonConfirmable, Code: codes.PUT, MessageID: int32(i), Token: []byte{byte(i)},
			Options: message.Options{{ID: message.URIPath, Value: []byte("fw")}, UintOption(message.QBlock1, blockValue(0, true, 6)),
				UintOption(message.Size1, 4000), {ID: message.RequestTag, Value: []byte{byte(i)}}},
			Payload: make([]byte, 1024)}
		data, _ := encode(&m)
		e.handleDatagram(data, fuzzAddr("peer"+string(rune('a'+i%5))))
		e.blocks.mu.Lock()
		if e.blocks.memory > lim.MaxBlockMemory || len(e.blocks.bufs) > lim.MaxBlockBuffers {
			e.blocks.mu.Unlock()
			t.Fatalf("bounds broken: %d bytes, %d buffers", e.blocks.memory, len(e.blocks.bufs))
		}
		e.blocks.mu.Unlock()
	}
	if met.Get(EventBlockError) == 0 {
		t.Fatalf("evictions not counted: %v", met.Snapshot())
	}
}

// rawPeer answers a client Endpoint from a script: each request it gets
// is answered with the messages answer returns.
func rawPeer(t *testing.T, conn net.PacketConn, answer func(req *message.Message) []message.Message) {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { _ = conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			var req message.Message
			req.Options = make(message.Options, 0, 16)
			if _, err := coder.DefaultCoder.Decode(buf[:n], &req); err != nil || req.Code>>5 != 0 || req.Code == codes.Empty {
				continue
			}
			for _, a := range answer(&req) {
				out, err := encode(&a)
				if err == nil {
					_, _ = conn.WriteTo(out, from)
				}
			}
		}
	}()
}

// TestQBlockClientAbuse: a server answering Q-Block requests against RFC
// 9177 gets a clear error or its answer ignored, never a panic or a body
// beyond the limit.
func TestQBlockClientAbuse(t *testing.T) {
	qb2 := func(num uint32, more bool) message.Option {
		return UintOption(message.QBlock2, blockValue(num, more, 6))
	}
	block := func(req *message.Message, num uint32, more bool, size2 uint32, etag byte, n int) message.Message {
		return message.Message{Type: message.NonConfirmable, Code: codes.Content, MessageID: int32(num) + 500, Token: req.Token,
			Options: message.Options{{ID: message.ETag, Value: []byte{etag}}, UintOption(message.Size2, size2), qb2(num, more)}, Payload: make([]byte, n)}
	}
	etags := byte(0)
	tests := []struct {
		name   string
		answer func(req *message.Message) []message.Message
		want   error
	}{
		{"Size2 over the body limit", func(req *message.Message) []message.Message {
			return []message.Message{block(req, 0, true, 1<<30, 1, 1024)}
		}, ErrBodyTooLarge},
		{"a block of the wrong length", func(req *message.Message) []message.Message {
			return []message.Message{block(req, 0, true, 3000, 1, 1000)}
		}, ErrBadResponse},
		{"M set on the last block", func(req *message.Message) []message.Message {
			return []message.Message{block(req, 0, true, 3000, 1, 1024), block(req, 2, true, 3000, 1, 952)}
		}, ErrBadResponse},
		{"Q-Block2 without Size2", func(req *message.Message) []message.Message {
			b := block(req, 1, true, 3000, 1, 1024)
			b.Options = b.Options.Remove(message.Size2)
			return []message.Message{b}
		}, ErrBadResponse},
		{"the ETag changes with every block", func(req *message.Message) []message.Message {
			etags++
			return []message.Message{block(req, 1, true, 3000, etags, 1024)}
		}, ErrBadResponse},
		{"no answer to the blocks asked for", func(req *message.Message) []message.Message {
			if len(qbOpts(req)) == 1 && qbOpts(req)[0].num == 0 && qbOpts(req)[0].more {
				return []message.Message{block(req, 0, true, 3000, 1, 1024)}
			}
			return nil
		}, ErrTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := rawParams()
			p.QBlock = QBlockParams{Enabled: true, NonMaxRetransmit: 2}
			a, b := pipeConns(p)
			rawPeer(t, b, tc.answer)
			e, ctx := rawClient(t, a, b, WithLimits(Limits{MaxBodySize: 8192}))
			_, err := e.Get(ctx, b.LocalAddr(), "/fw")
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// testUDPBearer is a loopback UDP socket as a Bearer with params p.
type testUDPBearer struct {
	net.PacketConn
	p Params
}

func (u testUDPBearer) Params() Params { return u.p }

// pipeConns returns a Bearer and a raw socket on loopback UDP.
func pipeConns(p Params) (Bearer, net.PacketConn) {
	a, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	b, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	return testUDPBearer{a, p}, b
}

// rawClient is an Endpoint on a, a client of the rawPeer on b (known to
// support Q-Block), and a context for its requests.
func rawClient(t *testing.T, a Bearer, b net.PacketConn, opts ...EndpointOption) (*Endpoint, context.Context) {
	t.Helper()
	e, err := NewEndpoint(a, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	e.SetQBlockSupport(b.LocalAddr(), true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return e, ctx
}

// rawParams are fast UDP-like params for a client of rawPeer.
func rawParams() Params {
	p := UDPParams("raw")
	p.AckTimeout, p.MaxRetransmit, p.MaxLatency, p.ProcessingDelay = 20*time.Millisecond, DefaultMaxRetransmit, 20*time.Millisecond, 20*time.Millisecond
	return p
}

func qbOpts(m *message.Message) []qbBlock {
	b, _ := qbOptions(m.Options, message.QBlock2)
	return b
}

// TestQBlockClientBadMissingList: a 4.08 whose missing-blocks payload is
// not ascending CBOR is dropped (RFC 9177 §5) and counted; the upload
// goes on and completes when the server answers properly.
func TestQBlockClientBadMissingList(t *testing.T) {
	p := rawParams()
	p.QBlock = QBlockParams{Enabled: true}
	a, b := pipeConns(p)
	var mu sync.Mutex
	var got [][]byte
	rawPeer(t, b, func(req *message.Message) []message.Message {
		q1, _ := qbOptions(req.Options, message.QBlock1)
		if len(q1) != 1 {
			return nil
		}
		mu.Lock()
		got = append(got, append([]byte(nil), req.Payload...))
		mu.Unlock()
		if q1[0].more {
			return nil
		}
		bad := message.Message{Type: message.NonConfirmable, Code: codes.RequestEntityIncomplete, MessageID: 900, Token: req.Token,
			Options: message.Options{ContentFormatOption(message.AppMissingBlocksCBORSeq)}, Payload: []byte{0x03, 0x01}}
		ok := message.Message{Type: message.NonConfirmable, Code: codes.Changed, MessageID: 901, Token: req.Token}
		return []message.Message{bad, ok}
	})
	met := new(Counters)
	e, ctx := rawClient(t, a, b, WithMetrics(met))
	body := bytes.Repeat([]byte("0123456789abcdef"), 200)
	resp, err := e.Put(ctx, b.LocalAddr(), "/fw", message.AppOctets, body)
	if err != nil || resp.Code != codes.Changed {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	if met.Get(EventDropMalformed) != 1 {
		t.Fatalf("bad missing list not counted: %v", met.Snapshot())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 4 {
		t.Fatalf("server got %d blocks, want 4", len(got))
	}
}
