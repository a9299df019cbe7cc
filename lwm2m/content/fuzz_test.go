package content

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// fuzzBases are the request paths a fuzz input is decoded against, picked by
// the input's first byte.
var fuzzBases = []path.Path{
	path.Root, path.Object(3), path.Instance(3, 0), path.Resource(3, 0, 7),
	path.ResourceInstance(3, 0, 7, 1), path.Object(8), path.Instance(8, 8), path.Resource(8, 8, 3),
}

var fuzzModelOnce sync.Once
var fuzzModelReg *model.Registry

// fuzzModel builds the test model once per process; fuzz workers call it
// on every input.
func fuzzModel(t testing.TB) *model.Registry {
	fuzzModelOnce.Do(func() { fuzzModelReg = testModel(t) })
	return fuzzModelReg
}

// fuzzDecode decodes data in format f, checks that every failure is a typed
// decode error, and that whatever decodes re-encodes (when the format can
// encode it) to something that decodes to the same records.
func fuzzDecode(t *testing.T, f Format, sel uint8, data []byte) {
	m := fuzzModel(t)
	base := fuzzBases[int(sel)%len(fuzzBases)]
	recs, err := Decode(f, base, data, m)
	if err != nil {
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, ErrMalformed) {
			t.Fatalf("error is not a *DecodeError: %T %v", err, err)
		}
		return
	}
	for _, r := range recs {
		if !r.Path.HasPrefix(base) || !r.Path.Valid() {
			t.Fatalf("record %v outside %v", r.Path, base)
		}
	}
	ef := f
	if f == OldJSON {
		ef = SenMLJSON
	}
	enc, err := Encode(ef, base, recs)
	if err != nil {
		return // e.g. duplicate paths, NaN, several values as text
	}
	again, err := Decode(ef, base, enc, m)
	if err != nil {
		t.Fatalf("re-decode of %x: %v (records %v)", enc, err, recs)
	}
	if len(again) != len(recs) {
		t.Fatalf("unstable: %v -> %v", recs, again)
	}
	sortedEqual := func(a, b []Record) bool {
		a, b = slices.Clone(a), slices.Clone(b)
		cmp := func(x, y Record) int { return path.Compare(x.Path, y.Path) }
		slices.SortStableFunc(a, cmp)
		slices.SortStableFunc(b, cmp)
		for k := range a {
			v, w := a[k].Value, b[k].Value
			if a[k].Path != b[k].Path || a[k].Time != b[k].Time || !v.Equal(w) {
				return false
			}
		}
		return true
	}
	if !sortedEqual(recs, again) {
		t.Fatalf("unstable: %v -> %v", recs, again)
	}
}

func FuzzDecodeTLV(f *testing.F) {
	f.Add(uint8(2), mustHex(f, deviceTLV))
	f.Add(uint8(1), append([]byte{0x08, 0x00, 0x79}, mustHex(f, deviceTLV)...))
	f.Add(uint8(3), mustHex(f, "88 07 08 42 00 0E D8 42 01 13 88"))
	f.Add(uint8(4), mustHex(f, "42 01 13 88"))
	f.Add(uint8(6), mustHex(f, "C1 00 19 C1 01 64 C4 07 3F800000 C1 05 01 C4 06 00110012"))
	f.Add(uint8(2), []byte{0xC8, 0x00, 0xFF})
	f.Add(uint8(2), []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) { fuzzDecode(t, TLV, sel, data) })
}

func FuzzDecodeSenMLJSON(f *testing.F) {
	f.Add(uint8(2), []byte(deviceSenMLJSON))
	f.Add(uint8(0), []byte(`[{"n":"/3/0/0","vs":"x"},{"n":"/8/8/4","vd":"AAEC"},{"n":"/8/8/6","vlo":"3:0"},{"bn":"/8/8/","bt":10,"n":"5","vb":true,"t":-5}]`))
	f.Add(uint8(0), []byte(`[{"n":"/3/0/0"},{"n":"/3/0/1"}]`))
	f.Add(uint8(7), []byte(`[{"bn":"/8/8/3","vs":"a\u0000\"b"}]`))
	f.Add(uint8(2), []byte(`[{"bn":"/3/0/","n":"9","v":1e400}]`))
	f.Add(uint8(2), []byte(`[{"bn_":"x"}]`))
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) { fuzzDecode(t, SenMLJSON, sel, data) })
}

func FuzzDecodeSenMLCBOR(f *testing.F) {
	f.Add(uint8(2), mustHex(f, deviceSenMLCBOR))
	f.Add(uint8(0), mustHex(f, "82 A2 00 66 2F382F382F37 02 F93E00 A2 00 66 2F382F382F36 63 766C6F 63 333A30"))
	f.Add(uint8(0), mustHex(f, "9F BF 00 66 2F382F382F34 08 43 010203 FF FF"))
	f.Add(uint8(0), mustHex(f, "81 A1 21 7F 62 2F33 62 2F30 FF"))
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) { fuzzDecode(t, SenMLCBOR, sel, data) })
}

func FuzzDecodeLwM2MCBOR(f *testing.F) {
	f.Add(uint8(6), mustHex(f, "BF08BF08BF00 1819 01 1864 02 C103 05 F4 06 653137 3A3138 07 FB3FF199999999999A FFFFFF"))
	f.Add(uint8(0), mustHex(f, "A1 82 08 03 A2 00 1819 0A A1 01 0B"))
	f.Add(uint8(0), mustHex(f, "A1 03 A1 00 A1 00 74 4F70656E204D6F62696C6520416C6C69616E6365"))
	f.Add(uint8(0), []byte{0xBF, 0xFF})
	f.Add(uint8(0), mustHex(f, "A1 84 01 02 03 04 F6"))
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) { fuzzDecode(t, LwM2MCBOR, sel, data) })
}

func FuzzDecodeText(f *testing.F) {
	for _, s := range []string{"Open Mobile Alliance", "100", "-5", "1.5", "1", "0", "3:0", "AAEC", "</3/0>", "", "1e400", "x"} {
		f.Add(uint8(7), []byte(s))
		f.Add(uint8(4), []byte(s))
	}
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		m := fuzzModel(t)
		// Try every typed resource of object 8 and /3/0/7/1.
		for _, p := range []path.Path{path.Resource(8, 8, uint16(sel%10)), path.ResourceInstance(3, 0, 7, 1), path.Resource(9, 9, 9)} {
			recs, err := Decode(Text, p, data, m)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("%v: untyped error %v", p, err)
				}
				continue
			}
			enc, err := Encode(Text, p, recs)
			if err != nil {
				t.Fatalf("%v: re-encode %v: %v", p, recs, err)
			}
			again, err := Decode(Text, p, enc, m)
			if err != nil || !again[0].Value.Equal(recs[0].Value) {
				t.Fatalf("%v: unstable %q -> %v -> %q -> %v %v", p, data, recs, enc, again, err)
			}
		}
	})
}

func FuzzDecodeOldJSON(f *testing.F) {
	f.Add(uint8(2), []byte(deviceOldJSON))
	f.Add(uint8(6), []byte(`{"bn":"/8/8/","bt":5,"e":[{"n":"6","ov":"3:0"},{"n":"5","bv":false,"t":1},{"n":"4","sv":"AAEC"}]}`))
	f.Add(uint8(2), []byte(`{"e":[{"n":"0","sv":"x","v":1}]}`))
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) { fuzzDecode(t, OldJSON, sel, data) })
}

func FuzzDecodeCoreLink(f *testing.F) {
	for _, s := range links {
		f.Add([]byte(s))
	}
	f.Add([]byte("<"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := path.Resource(8, 8, 9)
		recs, err := Decode(CoreLink, p, data, nil)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if _, err := Encode(CoreLink, p, recs); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}
