package oscore

import (
	"bytes"
	"errors"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"pgregory.net/rapid"
)

// FuzzParseOption: any OSCORE option value either parses into fields that
// marshal back to the same bytes, or is refused with ErrBadOption; never a
// panic.
func FuzzParseOption(f *testing.F) {
	for _, s := range [][]byte{{}, h("0914"), h("091400"), h("19140837cbf3210017a2d3"), h("0100"), h("e0"), h("00"), h("0d0102"), h("1f")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOption(b)
		if err != nil {
			if !errors.Is(err, ErrBadOption) {
				t.Fatalf("error %v is not ErrBadOption", err)
			}
			return
		}
		out, err := o.Marshal()
		if err != nil {
			t.Fatalf("parsed option does not marshal: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip %x -> %x", b, out)
		}
	})
}

// FuzzUnprotectRequest: arbitrary protected payloads and options never
// panic and never verify.
func FuzzUnprotectRequest(f *testing.F) {
	f.Add(h("0914"), h("612f1092f1776f1c1668b3825e"))
	f.Add(h("0914"), h("00"))
	f.Add(h("19140837cbf3210017a2d3"), h("72cd7273fd331ac45cffbe55c3"))
	x, err := NewContext(Params{MasterSecret: vSecret, MasterSalt: vSalt, SenderID: h("01"), RecipientID: []byte{}}, NewMemoryStore(), WithTrustedReplayWindow())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, opt, payload []byte) {
		o, err := ParseOption(opt)
		if err != nil {
			return
		}
		m := decodeMsgF(t, h("44025d1f00003974"))
		m.Payload = payload
		_, _, err = x.UnprotectRequest(m, o, timeNow())
		if err == nil && !(bytes.Equal(opt, h("0914")) && bytes.Equal(payload, h("612f1092f1776f1c1668b3825e"))) {
			t.Fatalf("forged request verified: option %x payload %x", opt, payload)
		}
	})
}

func decodeMsgF(t *testing.T, b []byte) *message.Message {
	m, err := decodeDatagram(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestOptionRoundTrip is a property: every valid field combination
// marshals into a value that parses back to it.
func TestOptionRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := OptionValue{
			PIV:       rapid.SliceOfN(rapid.Byte(), 0, 5).Draw(t, "piv"),
			HasKID:    rapid.Bool().Draw(t, "hasKID"),
			HasKIDCtx: rapid.Bool().Draw(t, "hasCtx"),
		}
		if o.HasKID {
			o.KID = rapid.SliceOfN(rapid.Byte(), 0, MaxIDLen).Draw(t, "kid")
		}
		if o.HasKIDCtx {
			o.KIDContext = rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, "ctx")
		}
		b, err := o.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseOption(b)
		if err != nil {
			t.Fatalf("%x: %v", b, err)
		}
		if !bytes.Equal(p.PIV, o.PIV) || p.HasKID != o.HasKID || p.HasKIDCtx != o.HasKIDCtx ||
			!bytes.Equal(p.KID, o.KID) || !bytes.Equal(p.KIDContext, o.KIDContext) {
			t.Fatalf("round trip %+v -> %x -> %+v", o, b, p)
		}
	})
}

// FuzzUnprotectRederivable: arbitrary OSCORE options (kid contexts of any
// shape) and payloads sent to a context with Appendix B.2 never panic,
// never verify unless they are a genuine request, and never grow the R2
// cache past its bound.
func FuzzUnprotectRederivable(f *testing.F) {
	cp, sp := b2Pair()
	// The same R1 in every fuzzing process, so the genuine seeds are the same.
	saved := randReader
	randReader = bytes.NewReader(bytes.Repeat([]byte{0x5a}, 64))
	defer func() { randReader = saved }()
	cli, err := NewContext(cp, NewMemoryStore(), WithRederivation())
	if err != nil {
		f.Fatal(err)
	}
	genuine := map[string]bool{}
	for i := 0; i < 2; i++ {
		m, _, err := cli.ProtectRequest(&message.Message{Code: codes.GET, Token: []byte{1}}, false)
		if err != nil {
			f.Fatal(err)
		}
		for _, o := range m.Options {
			if o.ID == OptionNumber {
				f.Add(o.Value, m.Payload)
				genuine[string(o.Value)+"|"+string(m.Payload)] = true
			}
		}
	}
	f.Add(h("1900094800000000000000000001"), h("00112233445566778899"))
	f.Add(h("19001150000000000000000000000000000000000001"), h("00112233445566778899"))
	randReader = saved
	srv, err := NewContext(sp, NewMemoryStore(), WithRederivation())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, opt, payload []byte) {
		o, err := ParseOption(opt)
		if err != nil {
			return
		}
		m := decodeMsgF(t, h("44025d1f00003974"))
		m.Payload = payload
		_, _, err = srv.UnprotectRequest(m, o, timeNow())
		if (err == nil || errors.Is(err, ErrRederive)) && !genuine[string(opt)+"|"+string(payload)] {
			t.Fatalf("forged request accepted (%v): option %x payload %x", err, opt, payload)
		}
		srv.mu.Lock()
		n := len(srv.b2.r2)
		srv.mu.Unlock()
		if n > b2MaxRuns {
			t.Fatalf("%d R2 cached", n)
		}
	})
}
