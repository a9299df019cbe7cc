package pdu

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// fakeClock is a settable clock for deterministic expiry.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

type dropLog struct {
	mu sync.Mutex
	d  []Dropped
}

func (l *dropLog) add(d Dropped) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }
func (l *dropLog) reasons() []DropReason {
	l.mu.Lock()
	defer l.mu.Unlock()
	var r []DropReason
	for _, d := range l.d {
		r = append(r, d.Reason)
	}
	return r
}

func part(oa string, ref uint16, total, seq uint8, data string) Part {
	return Part{Originator: oa, Concat: Concat{Ref: ref, Total: total, Seq: seq}, Data: []byte(data)}
}

func TestReassemblerBasics(t *testing.T) {
	clk := newClock()
	var log dropLog
	r := mustReassembler(t, ReassemblerConfig{Timeout: time.Minute, Now: clk.Now, OnDrop: log.add})

	// Single SMS passes straight through.
	dg, err := r.Add(Part{Originator: "+1", Data: []byte("x"), Ports: Ports{Present: true, Wide: true, Dst: 5683}})
	if err != nil || dg == nil || string(dg.Data) != "x" || dg.Segments != 1 || dg.Ports.Dst != 5683 {
		t.Fatalf("single: %+v %v", dg, err)
	}
	// Out of order, with a duplicate and a conflict.
	steps := []struct {
		p    Part
		err  error
		done string
	}{
		{part("+1", 7, 3, 3, "CC"), nil, ""},
		{part("+1", 7, 3, 1, "AA"), nil, ""},
		{part("+1", 7, 3, 1, "AA"), ErrDuplicate, ""},
		{part("+1", 7, 3, 1, "ZZ"), ErrConflict, ""},
		{part("+1", 7, 4, 2, "BB"), ErrTotalMismatch, ""},
		{part("+1", 7, 3, 4, "BB"), ErrBadSegment, ""},
		{part("+1", 7, 3, 0, "BB"), ErrBadSegment, ""},
		{part("+2", 7, 3, 2, "bb"), nil, ""}, // other originator, own set
		{part("+1", 7, 3, 2, "BB"), nil, "AABBCC"},
	}
	for i, s := range steps {
		t.Run(fmt.Sprintf("step %d", i), func(t *testing.T) {
			dg, err := r.Add(s.p)
			if !errors.Is(err, s.err) {
				t.Fatalf("step %d: err %v, want %v", i, err, s.err)
			}
			if (dg == nil) != (s.done == "") || (dg != nil && string(dg.Data) != s.done) {
				t.Fatalf("step %d: datagram %+v", i, dg)
			}
		})
	}
	st := r.Stats()
	if st.PendingSets != 1 || st.BytesHeld != 2 || st.Completed != 1 || st.Single != 1 || st.Duplicates != 1 || st.Remembered != 1 ||
		st.Conflicts != 1 || st.Mismatches != 1 || st.Invalid != 2 {
		t.Fatalf("stats %+v", st)
	}
	// The +2 set expires; Sweep reports it once.
	dl, ok := r.NextDeadline()
	if !ok || !dl.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("deadline %v %v", dl, ok)
	}
	clk.Advance(59 * time.Second)
	if n := r.Sweep(); n != 0 {
		t.Fatalf("swept %d early", n)
	}
	clk.Advance(time.Second)
	if n := r.Sweep(); n != 1 {
		t.Fatalf("swept %d", n)
	}
	if got := log.reasons(); len(got) != 1 || got[0] != DropExpired || log.d[0].Key.Originator != "+2" || log.d[0].Received != 1 || log.d[0].Age != time.Minute {
		t.Fatalf("drops %+v", log.d)
	}
	if st := r.Stats(); st.PendingSets != 0 || st.BytesHeld != 0 || st.Expired != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReassemblerLateDuplicates(t *testing.T) {
	clk := newClock()
	var log dropLog
	r := mustReassembler(t, ReassemblerConfig{Timeout: time.Minute, Now: clk.Now, OnDrop: log.add})
	for _, p := range []Part{part("+1", 7, 2, 1, "AA"), part("+1", 7, 2, 2, "BB")} {
		if _, err := r.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	// A late duplicate opens a suspect set; it expires as a late duplicate.
	clk.Advance(10 * time.Second)
	if dg, err := r.Add(part("+1", 7, 2, 2, "BB")); dg != nil || err != nil {
		t.Fatalf("late duplicate: %v %v", dg, err)
	}
	clk.Advance(time.Minute)
	r.Sweep()
	if got := log.reasons(); len(got) != 1 || got[0] != DropLateDuplicate {
		t.Fatalf("drops %v", got)
	}
	if st := r.Stats(); st.LateDuplicates != 1 || st.Expired != 0 || st.Remembered != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A new message that reuses the reference and shares a segment with
	// the completed one is still delivered, whatever the order.
	for _, p := range []Part{part("+1", 9, 2, 1, "AA"), part("+1", 9, 2, 2, "BB")} {
		if _, err := r.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	if dg, _ := r.Add(part("+1", 9, 2, 2, "BB")); dg != nil {
		t.Fatal("completed from one segment")
	}
	dg, err := r.Add(part("+1", 9, 2, 1, "XX"))
	if err != nil || dg == nil || string(dg.Data) != "XXBB" {
		t.Fatalf("reused reference: %+v %v", dg, err)
	}
	if st := r.Stats(); st.PendingSets != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReassemblerCaps(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    ReassemblerConfig
		feed   []Part
		reason []DropReason
		sets   int
	}{
		{
			name: "per originator",
			cfg:  ReassemblerConfig{MaxSetsPerOriginator: 2},
			feed: []Part{part("+1", 1, 2, 1, "a"), part("+1", 2, 2, 1, "b"), part("+2", 1, 2, 1, "c"), part("+1", 3, 2, 1, "d")},
			// +1 ref 1 is the oldest set of +1; +2's set survives.
			reason: []DropReason{DropOriginatorCap}, sets: 3,
		},
		{
			name:   "global sets",
			cfg:    ReassemblerConfig{MaxSets: 2},
			feed:   []Part{part("+1", 1, 2, 1, "a"), part("+2", 1, 2, 1, "b"), part("+3", 1, 2, 1, "c")},
			reason: []DropReason{DropSetCap}, sets: 2,
		},
		{
			name: "bytes",
			cfg:  ReassemblerConfig{MaxBytes: 300},
			feed: []Part{
				part("+1", 1, 3, 1, string(make([]byte, 134))), part("+2", 1, 3, 1, string(make([]byte, 134))),
				part("+1", 1, 3, 2, string(make([]byte, 134))),
			},
			// +1's set is the oldest but is the one growing: +2's goes.
			reason: []DropReason{DropByteCap}, sets: 1,
		},
		{
			name: "bytes, growing set alone",
			cfg:  ReassemblerConfig{MaxBytes: 200},
			feed: []Part{part("+1", 1, 3, 1, string(make([]byte, 134))), part("+1", 1, 3, 2, string(make([]byte, 134)))},
			// the set cannot fit: it is dropped and a new one started.
			reason: []DropReason{DropByteCap}, sets: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log dropLog
			tc.cfg.OnDrop = log.add
			r := mustReassembler(t, tc.cfg)
			for _, p := range tc.feed {
				if _, err := r.Add(p); err != nil {
					t.Fatal(err)
				}
			}
			if got := log.reasons(); fmt.Sprint(got) != fmt.Sprint(tc.reason) {
				t.Fatalf("drops %v, want %v", got, tc.reason)
			}
			st := r.Stats()
			if st.PendingSets != tc.sets || st.Evicted != uint64(len(tc.reason)) || st.BytesHeld > r.cfg.MaxBytes {
				t.Fatalf("stats %+v", st)
			}
			r.Reset()
			if st := r.Stats(); st.PendingSets != 0 || st.BytesHeld != 0 {
				t.Fatalf("after reset %+v", st)
			}
		})
	}
}

// roundTrip encodes data, converts every SUBMIT into the DELIVER the far
// end would get and returns the segments as Parts.
func roundTripParts(t interface{ Fatalf(string, ...any) }, e *Encoder, data []byte, opts ...Option) []Part {
	segs, err := e.Encode("+4915112345678", data, opts...)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	parts := make([]Part, len(segs))
	oa := Address{TON: TONInternational, NPI: NPIISDN, Value: "4930123456"}
	for i, s := range segs {
		sub, err := ParseSubmit(s.TPDU)
		if err != nil {
			t.Fatalf("parse submit: %v", err)
		}
		tp, err := DeliverOf(sub, oa, time.Unix(1_700_000_000, 0).UTC()).Marshal()
		if err != nil {
			t.Fatalf("marshal deliver: %v", err)
		}
		in, err := Decode(tp)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if parts[i], err = PartOf(in.Deliver); err != nil {
			t.Fatalf("part: %v", err)
		}
	}
	return parts
}

// Property: any payload 0..34,170 bytes survives encode → shuffle,
// duplicate, drop-then-resend → reassemble; with a segment dropped for good
// the set expires and is reported.
func TestPropertyRoundTrip(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ref16 := rapid.Bool().Draw(rt, "ref16")
		ports := rapid.Bool().Draw(rt, "ports")
		opts := []Option{With16BitRef(ref16)}
		max := MaxDatagram
		if ref16 {
			max = 255 * SegmentData16
		}
		if ports {
			opts = append(opts, WithPorts(2948, 9200))
			max = DefaultSubmitOptions().MaxPayload() - 255*6
			if ref16 {
				max -= 255
			}
		}
		n := rapid.OneOf(rapid.IntRange(0, 600), rapid.IntRange(0, max)).Draw(rt, "n")
		data := rapid.SliceOfN(rapid.Byte(), n, n).Draw(rt, "data")
		e := new(Encoder)
		parts := roundTripParts(rt, e, data, opts...)

		// Delivery order: a permutation, with duplicates and a segment held
		// back and resent at the end.
		order := rapid.Permutation(indexes(len(parts))).Draw(rt, "order")
		dups := rapid.SliceOfN(rapid.IntRange(0, len(parts)-1), 0, 5).Draw(rt, "dups")
		order = append(order, dups...)
		loseForGood := len(parts) > 1 && rapid.Bool().Draw(rt, "lose")
		lost := -1
		if len(parts) > 1 {
			lost = rapid.IntRange(0, len(parts)-1).Draw(rt, "lost")
		}

		clk := newClock()
		var log dropLog
		r := mustReassembler(t, ReassemblerConfig{Timeout: time.Minute, Now: clk.Now, OnDrop: log.add})
		var got *Datagram
		feed := func(i int) {
			dg, err := r.Add(parts[i])
			if err != nil && !errors.Is(err, ErrDuplicate) {
				rt.Fatalf("add %d: %v", i, err)
			}
			if dg != nil {
				if got != nil && len(parts) > 1 {
					rt.Fatalf("completed twice")
				}
				got = dg
			}
		}
		for _, i := range order {
			if i == lost {
				continue
			}
			feed(i)
		}
		if loseForGood {
			if got != nil {
				rt.Fatalf("completed without segment %d", lost)
			}
			clk.Advance(time.Minute)
			if r.Sweep() != 1 || len(log.reasons()) != 1 || log.d[0].Reason != DropExpired || log.d[0].Received != len(parts)-1 {
				rt.Fatalf("drops %+v", log.d)
			}
			return
		}
		if lost >= 0 {
			feed(lost) // resend
		}
		if got == nil || !bytes.Equal(got.Data, data) || got.Segments != len(parts) {
			rt.Fatalf("reassembled %v", got)
		}
		if ports && (got.Ports.Dst != 2948 || got.Ports.Src != 9200) {
			rt.Fatalf("ports %+v", got.Ports)
		}
		if st := r.Stats(); st.PendingSets != 0 || st.BytesHeld != 0 || len(log.d) != 0 {
			rt.Fatalf("left over %+v %+v", st, log.d)
		}
	})
}

func indexes(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestReferencesRotatePerDestination(t *testing.T) {
	e := mustEncoder(t, WithRefSeed(func() uint16 { return 0xFFFE }), WithMaxDestinations(2))
	ref := func(dest string, ref16 bool) uint16 {
		segs, err := e.Encode(dest, make([]byte, 200), With16BitRef(ref16))
		if err != nil {
			t.Fatal(err)
		}
		return segs[0].Concat.Ref
	}
	if a, b, c := ref("+111111111", true), ref("+111111111", true), ref("+111111111", true); a != 0xFFFE || b != 0xFFFF || c != 0 {
		t.Fatalf("16-bit refs %x %x %x", a, b, c)
	}
	if a := ref("+222222222", false); a != 0xFE {
		t.Fatalf("8-bit ref %x", a)
	}
	if a := ref("+111111111", false); a != 0x01 {
		t.Fatalf("8-bit ref after 16-bit %x", a)
	}
	ref("+333333333", false) // evicts +222222222, the least recently used
	if a := ref("+222222222", false); a != 0xFE {
		t.Fatalf("re-seeded ref %x", a)
	}
	if st := e.Stats(); st.Destinations != 2 || st.RefEvictions != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Single-segment messages use no reference.
	if segs, _ := e.Encode("+222222222", []byte("x")); !segs[0].Concat.IsZero() {
		t.Fatal("single segment has a concat IE")
	}
}

func TestPartOfRefusesMalformedConcat(t *testing.T) {
	d := &Deliver{Originator: Address{TON: TONInternational, Value: "4930123456"}, DCS: DCS8Bit,
		UserData: UserData{HasUDH: true, Data: []byte{1, 2, 3}}}
	d.UDH, _, _ = ParseUDH([]byte{5, IEConcat8, 3, 1, 2, 3}) // sequence 3 of 2
	if _, err := PartOf(d); !errors.Is(err, ErrBadSegment) {
		t.Fatalf("err %v", err)
	}
	d.UDH, _, _ = ParseUDH([]byte{5, IEConcat8, 3, 1, 2, 2})
	if p, err := PartOf(d); err != nil || p.Concat.Seq != 2 {
		t.Fatalf("%+v %v", p, err)
	}
}
