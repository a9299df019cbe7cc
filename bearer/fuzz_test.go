package bearer

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// captureBearer records what the Endpoint writes; its ReadFrom blocks until
// Close, so datagrams are fed with handleDatagram directly.
type captureBearer struct {
	p      Params
	mu     sync.Mutex
	out    [][]byte
	closed chan struct{}
	once   sync.Once
}

type fuzzAddr string

func (a fuzzAddr) Network() string { return "fuzz" }
func (a fuzzAddr) String() string  { return string(a) }

func newCaptureBearer(p Params) *captureBearer {
	return &captureBearer{p: p, closed: make(chan struct{})}
}

func (c *captureBearer) ReadFrom([]byte) (int, net.Addr, error) {
	<-c.closed
	return 0, nil, net.ErrClosed
}

func (c *captureBearer) WriteTo(b []byte, _ net.Addr) (int, error) {
	if len(b) > c.p.MaxDatagram {
		return 0, ErrTooLarge
	}
	c.mu.Lock()
	c.out = append(c.out, append([]byte(nil), b...))
	c.mu.Unlock()
	return len(b), nil
}

func (c *captureBearer) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.out
	c.out = nil
	return o
}

func (c *captureBearer) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *captureBearer) LocalAddr() net.Addr              { return fuzzAddr("local") }
func (c *captureBearer) SetDeadline(time.Time) error      { return nil }
func (c *captureBearer) SetReadDeadline(time.Time) error  { return nil }
func (c *captureBearer) SetWriteDeadline(time.Time) error { return nil }
func (c *captureBearer) Params() Params                   { return c.p }

func fuzzHandler() Handler {
	big := bytes.Repeat([]byte("0123456789abcdef"), 200)
	mux := NewServeMux()
	mux.HandleFunc("/big", func(w ResponseWriter, r *Request) { _ = w.WriteResponse(codes.Content, big) })
	mux.HandleFunc("/obs", func(w ResponseWriter, r *Request) {
		_, _ = w.Observe()
		_ = w.WriteResponse(codes.Content, []byte("v"))
	})
	mux.HandleFunc("/", func(w ResponseWriter, r *Request) {
		w.SetOption(ContentFormatOption(message.TextPlain))
		_ = w.WriteResponse(codes.Changed, r.Payload)
	})
	return mux
}

func seedMessages() [][]byte {
	enc := func(m message.Message) []byte {
		b, err := encode(&m)
		if err != nil {
			panic(err)
		}
		return b
	}
	path := func(s string) message.Option { return message.Option{ID: message.URIPath, Value: []byte(s)} }
	return [][]byte{
		enc(message.Message{Type: message.Confirmable, Code: codes.GET, MessageID: 1, Token: []byte{1}, Options: message.Options{path("big")}}),
		enc(message.Message{Type: message.Confirmable, Code: codes.GET, MessageID: 2, Token: []byte{1}, Options: message.Options{path("big"), UintOption(message.Block2, 0x12)}}),
		enc(message.Message{Type: message.NonConfirmable, Code: codes.GET, MessageID: 3, Token: []byte{2}, Options: message.Options{UintOption(message.Observe, 0), path("obs")}}),
		enc(message.Message{Type: message.Confirmable, Code: codes.PUT, MessageID: 4, Token: []byte{3}, Options: message.Options{path("x"), UintOption(message.Block1, 0x0a)}, Payload: bytes.Repeat([]byte{1}, 64)}),
		enc(message.Message{Type: message.Confirmable, Code: codes.PUT, MessageID: 5, Token: []byte{3}, Options: message.Options{path("x"), UintOption(message.Block1, 0x12)}, Payload: []byte{2}}),
		enc(message.Message{Type: message.Confirmable, Code: codes.Empty, MessageID: 6}),
		enc(message.Message{Type: message.Reset, Code: codes.Empty, MessageID: 7}),
		enc(message.Message{Type: message.Confirmable, Code: codes.Content, MessageID: 8, Token: []byte{9}}),
		enc(message.Message{Type: message.Confirmable, Code: codes.POST, MessageID: 9, Token: []byte{4}, Options: message.Options{{ID: 9, Value: []byte{1}}}}),
		{0x40, 0x01, 0x00},
		{0x49, 0x01, 0x01, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 9},
		{0x40, 0x01, 0x01, 0x0a, 0xff},
		{0x40, 0x01, 0x01, 0x0b, 0xf1, 0x00},
		{0x40, 0x01, 0x01, 0x0b, 0xd1, 0xff, 0x00},
		{0x60, 0x00, 0x01, 0x0e},
	}
}

// FuzzEndpointDatagram feeds arbitrary datagrams to a server Endpoint: it
// must never panic, and everything it sends back must be a valid CoAP
// message; a reply to a CON is an ACK or RST with the same message ID.
func FuzzEndpointDatagram(f *testing.F) {
	for _, s := range seedMessages() {
		f.Add(s)
	}
	p := UDPParams("fuzz")
	p.PreferredDatagram = 140
	// Nobody answers our CON messages: keep their wait short.
	p.AckTimeout, p.MaxRetransmit = 5*time.Millisecond, 0
	cb := newCaptureBearer(p)
	e, err := NewEndpoint(cb, WithHandler(fuzzHandler()), WithSeed(1), WithLimits(Limits{SeparateAfter: time.Minute, MaxDedup: 64, MaxBlockBuffers: 4, MaxBlockMemory: 8192, MaxBodySize: 4096}))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = e.Close() })
	peer := fuzzAddr("peer")
	f.Fuzz(func(t *testing.T, data []byte) {
		e.handleDatagram(data, peer)
		<-e.hwg.idle()
		for _, out := range cb.take() {
			var m message.Message
			m.Options = make(message.Options, 0, 32)
			if _, err := coder.DefaultCoder.Decode(out, &m); err != nil {
				t.Fatalf("invalid reply % x to % x: %v", out, data, err)
			}
			if len(out) > p.MaxDatagram {
				t.Fatalf("reply of %d bytes", len(out))
			}
			if m.Code>>5 == 0 && m.Code != codes.Empty {
				t.Fatalf("endpoint answered with a request code %v", m.Code)
			}
			if (m.Type == message.Acknowledgement || m.Type == message.Reset) && len(data) >= 4 {
				// ACK only for CON; RST for CON or NON (RFC 7252 §4.3).
				if typ := data[0] >> 4 & 3; typ != byte(message.Confirmable) && (m.Type == message.Acknowledgement || typ != byte(message.NonConfirmable)) {
					t.Fatalf("%v sent for type %d: % x", m.Type, typ, data)
				}
				if uint16(m.MessageID) != binary.BigEndian.Uint16(data[2:4]) {
					t.Fatalf("%v with MID %d for MID %d", m.Type, m.MessageID, binary.BigEndian.Uint16(data[2:4]))
				}
			}
		}
	})
}

// FuzzBlockReassembly feeds arbitrary Block1 sequences to the reassembly
// store and checks its bounds and that a completed body is exactly the
// blocks received in order.
func FuzzBlockReassembly(f *testing.F) {
	f.Add([]byte{0x0a, 64, 0x1a, 64, 0x22, 10})
	f.Add([]byte{0x0a, 64, 0x2a, 64})
	f.Add([]byte{0x0e, 255, 0x1e, 255, 0x2e, 255, 0x36, 3})
	f.Add([]byte{0x0b, 128, 0x12, 64, 0x2a, 64, 0x32, 1})
	f.Add([]byte{0x07, 1, 0x0f, 0, 0x08, 16, 0x10, 16})
	f.Fuzz(func(t *testing.T, ops []byte) {
		l := Limits{MaxBlockBuffers: 3, MaxBlockBuffersPerPeer: 2, MaxBlockMemory: 4096, MaxBodySize: 1500}.withDefaults(UDPParams("x"))
		var s blockStore
		s.init(l)
		var m Counters
		model := map[string][]byte{}
		now := time.Unix(0, 0)
		for i := 0; i+1 < len(ops); i += 2 {
			v := uint32(ops[i])
			key := string(rune('a' + ops[i+1]%3))
			n := int(ops[i+1])
			if v&7 != 7 {
				if sz := 16 << (v & 7); v&8 != 0 && n%3 != 0 {
					n = sz // mostly well-formed non-final blocks
				}
			}
			payload := bytes.Repeat([]byte{byte(i)}, n)
			num, _, szx := parseBlock(v)
			res := s.block1(block1Part{peer: "peer", key: "peer|" + key, v: v, payload: payload}, 6, now, &m)
			now = now.Add(time.Millisecond)
			if s.memory > l.MaxBlockMemory || len(s.bufs) > l.MaxBlockBuffers {
				t.Fatalf("bounds broken: %d bytes, %d buffers", s.memory, len(s.bufs))
			}
			total := 0
			for _, b := range s.bufs {
				total += cap(b.data)
			}
			if total != s.memory {
				t.Fatalf("memory accounting %d, real %d", s.memory, total)
			}
			if num == 0 && res.code != codes.BadRequest { // a malformed block changes nothing
				model[key] = nil
			}
			switch {
			case res.done:
				want := append(model[key], payload...)
				if !bytes.Equal(res.body, want) || len(res.body) > l.MaxBodySize {
					t.Fatalf("op %d: body of %d bytes, want %d", i, len(res.body), len(want))
				}
				delete(model, key)
			case res.code == codes.Continue:
				if len(model[key]) != int(num)*(16<<szx) {
					t.Fatalf("op %d: continue at offset %d, model has %d", i, int(num)*(16<<szx), len(model[key]))
				}
				model[key] = append(model[key], payload...)
			}
			// Evictions (of this key or others) invalidate the model too.
			for k := range model {
				if _, ok := s.bufs["peer|"+k]; !ok {
					delete(model, k)
				}
			}
			if s.perPeer["peer"] != len(s.bufs) || len(s.bufs) > l.MaxBlockBuffersPerPeer {
				t.Fatalf("per-peer count %d for %d buffers", s.perPeer["peer"], len(s.bufs))
			}
		}
	})
}
