package bearer

import (
	"slices"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// FuzzMissingBlocks decodes arbitrary missing-blocks payloads (the body of
// an RFC 9177 4.08 from the network): never a panic; what decodes is
// ascending, within 20 bits, bounded in count, and encodes back to a
// payload that decodes to the same numbers.
func FuzzMissingBlocks(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0x09})
	f.Add([]byte{0x18, 0x18, 0x19, 0x01, 0x00})
	f.Add([]byte{0x1a, 0x00, 0x0f, 0xff, 0xff})
	f.Add([]byte{0x05, 0x03})                   // descending: refused
	f.Add([]byte{0x1b, 0, 0, 0, 0, 0, 0, 0, 1}) // 8-byte integer
	f.Add([]byte{0x20})                         // negative integer: refused
	f.Add([]byte{0x19, 0x01})                   // truncated
	f.Fuzz(func(t *testing.T, p []byte) {
		nums, err := decodeMissingBlocks(p, 64)
		if err != nil {
			return
		}
		if len(nums) == 0 || len(nums) > 64 {
			t.Fatalf("%d numbers", len(nums))
		}
		for i, n := range nums {
			if n > maxBlockNum || i > 0 && n <= nums[i-1] {
				t.Fatalf("numbers %v", nums)
			}
		}
		again, err := decodeMissingBlocks(encodeMissingBlocks(nums), 64)
		if err != nil || !slices.Equal(again, nums) {
			t.Fatalf("re-encoded %v decodes to %v (%v)", nums, again, err)
		}
	})
}

// qbFuzzContent is byte i of body tag's content: blocks of a body agree.
func qbFuzzContent(tag byte, i int) byte { return byte(i*7) ^ tag }

// FuzzQBlockReassembly feeds arbitrary sequences of RFC 9177 Q-Block1
// blocks (any order, duplicates, wrong sizes, changing Size1 or block
// size, CON and NON) to the reassembly of a server Endpoint and checks its
// bounds, the memory accounting, that an answer listing missing blocks
// lists ascending numbers of the body, and that a completed body is
// exactly the body the blocks came from.
//
// Each op is 4 bytes: the Q-Block1 value (NUM, M, SZX; NUM scaled down),
// the body (Request-Tag, content), Size1 in 16-byte units, and flags: bit
// 0 CON, bit 1 a payload of the wrong length.
func FuzzQBlockReassembly(f *testing.F) {
	f.Add([]byte{0x0c, 1, 20, 0, 0x1c, 1, 20, 0, 0x24, 1, 20, 0})                 // 3 blocks of 128 in order
	f.Add([]byte{0x24, 2, 20, 0, 0x0c, 2, 20, 0, 0x1c, 2, 20, 0, 0x1c, 2, 20, 0}) // out of order, a duplicate
	f.Add([]byte{0x0c, 3, 20, 1, 0x1c, 3, 20, 1, 0x24, 3, 20, 1})                 // CON
	f.Add([]byte{0x0c, 1, 20, 2, 0x0b, 1, 20, 0, 0x0c, 1, 21, 0})                 // bad length, other SZX, other Size1
	f.Add([]byte{0x00, 4, 0, 0, 0x08, 5, 200, 0})                                 // empty body; over the body limit
	p := UDPParams("fuzz")
	p.PreferredDatagram = 140
	p.QBlock.MaxPayloads = 2
	cb := newCaptureBearer(p)
	lim := Limits{MaxBlockBuffers: 3, MaxBlockBuffersPerPeer: 2, MaxBlockMemory: 4096, MaxBodySize: 3000}
	e, err := NewEndpoint(cb, WithSeed(1), WithLimits(lim))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = e.Close() })
	l := e.lim
	s := &e.blocks
	f.Fuzz(func(t *testing.T, ops []byte) {
		cb.take() // what the timer loop sent for earlier inputs
		s.mu.Lock()
		keep := s.qbKeep
		s.bufs, s.perPeer, s.memory, s.done, s.qbKeep = map[string]*blockBuf{}, map[string]int{}, 0, nil, keep
		s.mu.Unlock()
		now := time.Unix(1, 0)
		peer := fuzzAddr("peer")
		for i := 0; i+3 < len(ops); i += 4 {
			v, tag, sz, flags := uint32(ops[i]), ops[i+1]%4, int(ops[i+2])*16, ops[i+3]
			num, more, szx := parseBlock(v)
			num %= 8
			bs := 16 << (szx % 7)
			off := int(num) * bs
			n := max(0, min(bs, sz-off))
			if flags&2 != 0 {
				n = int(ops[i+2]) % 300
			}
			payload := make([]byte, n)
			for j := range payload {
				payload[j] = qbFuzzContent(tag, off+j)
			}
			m := message.Message{Code: codes.PUT, Token: []byte{byte(i)}, MessageID: int32(i), Type: message.NonConfirmable, Payload: payload,
				Options: message.Options{
					{ID: message.URIPath, Value: []byte("fw")},
					UintOption(message.QBlock1, blockValue(num, more, szx)),
					UintOption(message.Size1, uint32(sz)),
					{ID: message.RequestTag, Value: []byte{tag}},
				}}
			if flags&1 != 0 {
				m.Type = message.Confirmable
			}
			key := blockKey("fuzz|peer", m.Code, m.Options, true) + "|q"
			res := s.qblock1(e, qb1Part{peer: peer, pkey: "fuzz|peer", key: key, m: &m, b: qbBlock{num, more, szx}}, now)
			now = now.Add(time.Millisecond)
			s.mu.Lock()
			total := 0
			for _, b := range s.bufs {
				total += cap(b.data)
			}
			if s.memory > l.MaxBlockMemory || len(s.bufs) > l.MaxBlockBuffers || total != s.memory || len(s.done) > l.MaxBlockBuffers {
				s.mu.Unlock()
				t.Fatalf("op %d: bounds broken: %d bytes (real %d), %d buffers, %d finished", i, s.memory, total, len(s.bufs), len(s.done))
			}
			s.mu.Unlock()
			switch {
			case res.done:
				if len(res.body) != sz {
					t.Fatalf("op %d: body of %d bytes, Size1 %d", i, len(res.body), sz)
				}
				for j, c := range res.body {
					if c != qbFuzzContent(tag, j) {
						t.Fatalf("op %d: body byte %d is %d, want %d", i, j, c, qbFuzzContent(tag, j))
					}
				}
				s.finishDone(key, codes.Changed, nil, nil)
			case res.code == codes.RequestEntityIncomplete && len(res.payload) > 0:
				miss, err := decodeMissingBlocks(res.payload, 1024)
				if err != nil {
					t.Fatalf("op %d: our 4.08 does not decode: %v", i, err)
				}
				blocks := max((sz+bs-1)/bs, 1)
				for _, x := range miss {
					if int(x) >= blocks {
						t.Fatalf("op %d: missing block %d of a body of %d", i, x, blocks)
					}
				}
			case res.replay != nil:
				if res.replay.code != codes.Changed {
					t.Fatalf("op %d: replay of %v", i, res.replay.code)
				}
			}
			if res.code == codes.Continue {
				got, _ := qbOptions(res.opts, message.QBlock1)
				if len(got) != 1 || !got[0].more || (int(got[0].num)+1)%p.MaxPayloads() != 0 && int(got[0].num)+1 != max((sz+bs-1)/bs, 1) {
					t.Fatalf("op %d: 2.31 with Q-Block1 %v", i, got)
				}
			}
		}
	})
}
