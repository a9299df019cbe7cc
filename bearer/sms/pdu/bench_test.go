package pdu

import (
	"runtime"
	"testing"
	"time"
)

// BenchmarkEncodeReassemble measures the whole path of one datagram: encode
// to SUBMITs, turn each into the DELIVER bytes the far end receives, decode
// them and reassemble. MB/s is payload bytes; segments/s is reported too.
func BenchmarkEncodeReassemble(b *testing.B) {
	for _, n := range []int{100, 1024, 34170} {
		b.Run(sizeName(n), func(b *testing.B) {
			data := make([]byte, n)
			e := new(Encoder)
			r := mustReassembler(b, ReassemblerConfig{})
			oa := Address{TON: TONInternational, NPI: NPIISDN, Value: "4930123456"}
			scts := time.Unix(1_700_000_000, 0).UTC()
			// The DELIVER side is prepared per segment outside the timer's
			// concern: the SMSC's conversion is not our code path.
			b.SetBytes(int64(n))
			b.ReportAllocs()
			segsTotal := 0
			for b.Loop() {
				segs, err := e.Encode("+4915112345678", data)
				if err != nil {
					b.Fatal(err)
				}
				var got *Datagram
				for _, s := range segs {
					sub, err := ParseSubmit(s.TPDU)
					if err != nil {
						b.Fatal(err)
					}
					tp, err := DeliverOf(sub, oa, scts).Marshal()
					if err != nil {
						b.Fatal(err)
					}
					in, err := Decode(tp)
					if err != nil {
						b.Fatal(err)
					}
					p, err := PartOf(in.Deliver)
					if err != nil {
						b.Fatal(err)
					}
					if dg, err := r.Add(p); err != nil {
						b.Fatal(err)
					} else if dg != nil {
						got = dg
					}
				}
				if got == nil || len(got.Data) != n {
					b.Fatal("not reassembled")
				}
				segsTotal += len(segs)
			}
			b.ReportMetric(float64(segsTotal)/b.Elapsed().Seconds(), "segments/s")
		})
	}
}

// BenchmarkEncode measures the encoder alone.
func BenchmarkEncode(b *testing.B) {
	data := make([]byte, 1024)
	e := new(Encoder)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Encode("+4915112345678", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeDeliver measures decoding one 8-bit concatenated DELIVER.
func BenchmarkDecodeDeliver(b *testing.B) {
	segs, _ := new(Encoder).Encode("+4915112345678", make([]byte, 300), WithPorts(2948, 9200))
	sub, _ := ParseSubmit(segs[0].TPDU)
	tp, _ := DeliverOf(sub, Address{TON: TONInternational, NPI: NPIISDN, Value: "4930123456"}, time.Now()).Marshal()
	b.SetBytes(int64(len(tp)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(tp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPendingSetMemory reports the heap held per pending set: 10,000
// sets of 2 segments (one 134-byte segment received each) are opened and
// the live heap measured; "heap-B/set" includes the payload held
// ("payload-B/set").
func BenchmarkPendingSetMemory(b *testing.B) {
	const sets = 10000
	seg := make([]byte, SegmentData8)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := mustReassembler(b, ReassemblerConfig{MaxSets: sets, MaxSetsPerOriginator: sets, MaxBytes: 64 << 20})
		for i := 0; i < sets; i++ {
			p := Part{Originator: "+4915112345678", Concat: Concat{Ref: uint16(i), Ref16: true, Total: 2, Seq: 1}, Data: seg}
			if _, err := r.Add(p); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		st := r.Stats()
		if st.PendingSets != sets {
			b.Fatalf("%d sets", st.PendingSets)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/sets, "heap-B/set")
		b.ReportMetric(float64(st.BytesHeld)/sets, "payload-B/set")
		runtime.KeepAlive(r)
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1024 && n%1024 == 0:
		return itoa(n/1024) + "KiB"
	}
	return itoa(n) + "B"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
