package secure

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// record builds a DTLS record header + body.
func record(ct byte, version uint16, epoch uint16, seq uint64, cid []byte, body []byte) []byte {
	b := []byte{ct, byte(version >> 8), byte(version)}
	b = binary.BigEndian.AppendUint16(b, epoch)
	b = append(b, byte(seq>>40), byte(seq>>32), byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq))
	b = append(b, cid...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

func TestParseRecord(t *testing.T) {
	hello := record(contentHandshake, 0xfeff, 0, 0, nil, []byte{handshakeClientHello, 0, 0, 1, 0})
	tests := []struct {
		name    string
		b       []byte
		cidLen  int
		wantErr bool
		want    recordInfo
	}{
		{"client hello dtls1.0 record version", hello, 0, false, recordInfo{contentType: 22, clientHello: true}},
		{"client hello dtls1.2", record(22, 0xfefd, 0, 7, nil, []byte{1, 2}), 6, false, recordInfo{contentType: 22, clientHello: true}},
		{"server hello is not a client hello", record(22, 0xfefd, 0, 0, nil, []byte{2}), 0, false, recordInfo{contentType: 22}},
		{"finished at epoch 1", record(22, 0xfefd, 1, 0, nil, []byte{1, 2, 3}), 0, false, recordInfo{contentType: 22, epoch: 1}},
		{"app data", record(23, 0xfefd, 1, 9, nil, []byte{1}), 0, false, recordInfo{contentType: 23, epoch: 1}},
		{"cid record", record(25, 0xfefd, 1, 9, []byte{1, 2, 3, 4}, []byte{9}), 4, false, recordInfo{contentType: 25, epoch: 1, cid: []byte{1, 2, 3, 4}}},
		{"cid record without cids issued", record(25, 0xfefd, 1, 9, []byte{1, 2, 3, 4}, []byte{9}), 0, true, recordInfo{}},
		{"cid record cut short", record(25, 0xfefd, 1, 9, []byte{1, 2}, nil)[:14], 4, true, recordInfo{}},
		{"tls version", record(22, 0x0303, 0, 0, nil, []byte{1}), 0, true, recordInfo{}},
		{"client hello mbedtls 2 record version", record(22, 0xfe00, 0, 0, nil, []byte{1, 0}), 0, false, recordInfo{contentType: 22, clientHello: true}},
		{"client hello any 254 minor", record(22, 0xfe42, 0, 3, nil, []byte{1, 0}), 0, false, recordInfo{contentType: 22, clientHello: true}},
		{"server hello fe00", record(22, 0xfe00, 0, 0, nil, []byte{2, 0}), 0, true, recordInfo{}},
		{"client hello fe00 at epoch 1", record(22, 0xfe00, 1, 0, nil, []byte{1, 0}), 0, true, recordInfo{}},
		{"app data fe00", record(23, 0xfe00, 1, 0, nil, []byte{1, 0}), 0, true, recordInfo{}},
		{"client hello 0xfd minor", record(22, 0xfdfd, 0, 0, nil, []byte{1, 0}), 0, true, recordInfo{}},
		{"unknown content type", record(24, 0xfefd, 0, 0, nil, []byte{1}), 0, true, recordInfo{}},
		{"empty record", record(22, 0xfefd, 0, 0, nil, nil), 0, true, recordInfo{}},
		{"length past the end", record(22, 0xfefd, 0, 0, nil, []byte{1, 2, 3})[:15], 0, true, recordInfo{}},
		{"short", []byte{22, 0xfe, 0xfd}, 0, true, recordInfo{}},
		{"nil", nil, 0, true, recordInfo{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRecord(tc.b, tc.cidLen)
			if tc.wantErr {
				if !errors.Is(err, errBadRecord) {
					t.Fatalf("err %v, want errBadRecord", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.contentType != tc.want.contentType || got.epoch != tc.want.epoch ||
				got.clientHello != tc.want.clientHello || string(got.cid) != string(tc.want.cid) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestParseRecordProperty: every well-formed record header round-trips
// through parseRecord, and any truncation of it is rejected.
func TestParseRecordProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ct := rapid.SampledFrom([]byte{20, 21, 22, 23, 25}).Draw(t, "type")
		ver := rapid.SampledFrom([]uint16{0xfeff, 0xfefd}).Draw(t, "version")
		epoch := rapid.Uint16().Draw(t, "epoch")
		seq := rapid.Uint64Range(0, 1<<48-1).Draw(t, "seq")
		cidLen := rapid.IntRange(1, 16).Draw(t, "cidLen")
		var cid []byte
		if ct == contentTLS12CID {
			cid = rapid.SliceOfN(rapid.Byte(), cidLen, cidLen).Draw(t, "cid")
		}
		body := rapid.SliceOfN(rapid.Byte(), 1, 300).Draw(t, "body")
		b := record(ct, ver, epoch, seq, cid, body)
		b = append(b, rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, "trailing")...)
		ri, err := parseRecord(b, cidLen)
		if err != nil {
			t.Fatalf("well-formed record rejected: %v", err)
		}
		if ri.contentType != ct || ri.epoch != epoch || string(ri.cid) != string(cid) {
			t.Fatalf("got %+v", ri)
		}
		if want := ct == contentHandshake && epoch == 0 && body[0] == 1; ri.clientHello != want {
			t.Fatalf("clientHello %v, want %v", ri.clientHello, want)
		}
		cut := rapid.IntRange(0, 13+len(cid)+len(body)-1).Draw(t, "cut")
		if _, err := parseRecord(b[:cut], cidLen); err == nil {
			t.Fatalf("truncated record (%d of %d bytes) accepted", cut, len(b))
		}
	})
}

// captureClientFlight returns the first datagrams a real client sends (a
// ClientHello), as fuzz seeds.
func captureClientFlight(tb testing.TB) [][]byte {
	n := newMemNet()
	sink := n.attach("srv", memParams())
	defer sink.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = Dial(ctx, n.attach("dev", memParams()), memAddr("srv"), &Config{PSKIdentity: []byte("a"), PSKKey: []byte("k")})
	}()
	var seeds [][]byte
	buf := make([]byte, 2048)
	_ = sink.SetReadDeadline(time.Now().Add(time.Second))
	if k, _, err := sink.ReadFrom(buf); err == nil {
		seeds = append(seeds, append([]byte(nil), buf[:k]...))
	}
	<-done
	return seeds
}

// FuzzParseRecord: the record parsers never panic, and what parseRecord
// accepts is consistent with its input.
func FuzzParseRecord(f *testing.F) {
	f.Add(record(22, 0xfefd, 0, 0, nil, []byte{1, 0, 0, 0}), 0)
	f.Add(record(25, 0xfefd, 1, 1, []byte{1, 2, 3, 4, 5, 6}, []byte{1, 2}), 6)
	f.Add(record(22, 0xfefd, 0, 1, nil, []byte{2, 0, 0, 10, 0, 1, 0, 0, 0, 0, 0, 10}), 0)
	for _, s := range captureClientFlight(f) {
		f.Add(s, 0)
	}
	f.Fuzz(func(t *testing.T, b []byte, cidLen int) {
		cidLen %= 256
		ri, err := parseRecord(b, cidLen)
		if err == nil {
			if len(b) < recordHeaderLen || ri.contentType != b[0] {
				t.Fatalf("accepted %x as %+v", b, ri)
			}
			if ri.contentType == contentTLS12CID && len(ri.cid) != cidLen {
				t.Fatalf("cid length %d, want %d", len(ri.cid), cidLen)
			}
		}
		_, _ = serverHelloCID(b)
	})
}

// FuzzServerDemux feeds arbitrary datagrams from a few source addresses to
// a live Server's demultiplexer: nothing panics, garbage never becomes an
// established session, and the limits hold.
func FuzzServerDemux(f *testing.F) {
	f.Add([]byte{}, byte(0))
	f.Add([]byte("garbage"), byte(1))
	f.Add(record(22, 0xfeff, 0, 0, nil, []byte{1, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0x20}), byte(2))
	f.Add(record(25, 0xfefd, 1, 5, []byte{1, 2, 3, 4, 5, 6}, []byte{7, 8, 9}), byte(3))
	f.Add(record(23, 0xfefd, 1, 5, nil, []byte{7, 8, 9}), byte(0))
	f.Add(record(21, 0xfefd, 0, 5, nil, []byte{2, 40}), byte(0))
	for _, s := range captureClientFlight(f) {
		f.Add(s, byte(4))
	}
	n := newMemNet()
	s, err := NewServer(n.attach("srv", memParams()), &Config{
		PSKLookup: pskLookup, MaxSessions: 8, MaxHandshakes: 4,
		HandshakeTimeout: 200 * time.Millisecond, Logger: discardLogger(),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	f.Fuzz(func(t *testing.T, b []byte, from byte) {
		s.route(append([]byte(nil), b...), memAddr([]string{"a", "b", "c", "d", "e"}[int(from)%5]))
		st := s.Stats()
		if st.Sessions > 8 || st.Handshaking > 4 || st.HandshakesOK > 0 {
			t.Fatalf("limits or authentication broken: %+v", st)
		}
	})
}

var _ net.Addr = memAddr("")
