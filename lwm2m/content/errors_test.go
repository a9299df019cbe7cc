package content

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

func TestDecodeErrors(t *testing.T) {
	m := testModel(t)
	inst := path.Instance(3, 0)
	tests := []struct {
		name  string
		f     Format
		base  path.Path
		data  string
		cause error // besides ErrMalformed
	}{
		{"tlv root", TLV, path.Root, "C1 09 64", nil},
		{"tlv truncated header", TLV, inst, "E1 00", nil},
		{"tlv length past end", TLV, inst, "C8 00 14 4F", nil},
		{"tlv int 3 bytes", TLV, inst, "C3 09 000001", ErrTypeMismatch},
		{"tlv bool 2", TLV, path.Instance(1, 0), "C1 06 02", ErrTypeMismatch},
		{"tlv float 2 bytes", TLV, path.Instance(6, 0), "C2 00 0000", ErrTypeMismatch},
		{"tlv objlnk 3 bytes", TLV, path.Instance(1, 0), "C3 0A 000000", ErrTypeMismatch},
		{"tlv bad utf8", TLV, inst, "C2 00 FF FE", ErrTypeMismatch},
		{"tlv id 65535", TLV, path.Object(3), "28 FFFF 00", path.ErrRange},
		{"tlv instance mismatch", TLV, inst, "08 01 03 C1 09 64", nil},
		{"tlv instance under instance", TLV, path.Object(3), "C1 09 64", nil},
		{"tlv nested instance in multiple", TLV, inst, "83 06 C1 00 01", nil},
		{"tlv wrong resource", TLV, path.Resource(3, 0, 9), "C1 0A 64", nil},
		{"tlv wrong resource instance", TLV, path.ResourceInstance(3, 0, 7, 1), "41 00 01", nil},
		{"json not array", SenMLJSON, inst, `{"bn":"/3/0/"}`, nil},
		{"json trailing", SenMLJSON, inst, `[] []`, nil},
		{"json bad name", SenMLJSON, inst, `[{"bn":"/3/0/","n":"x","v":1}]`, path.ErrSyntax},
		{"json outside base", SenMLJSON, inst, `[{"n":"/3/1/0","vs":"x"}]`, nil},
		{"json no name", SenMLJSON, path.Root, `[{"v":1}]`, nil},
		{"json two values", SenMLJSON, inst, `[{"bn":"/3/0/","n":"9","v":1,"vs":"x"}]`, nil},
		{"json must understand", SenMLJSON, inst, `[{"bn":"/3/0/","n":"0","vs":"x","foo_":1}]`, nil},
		{"json type mismatch", SenMLJSON, inst, `[{"bn":"/3/0/","n":"0","v":1}]`, ErrTypeMismatch},
		{"json fraction for integer", SenMLJSON, inst, `[{"bn":"/3/0/","n":"9","v":1.5}]`, ErrTypeMismatch},
		{"json v as string", SenMLJSON, inst, `[{"bn":"/3/0/","n":"9","v":"1"}]`, nil},
		{"json vd bad base64", SenMLJSON, path.Root, `[{"n":"/8/8/4","vd":"!!"}]`, nil},
		{"json vlo bad", SenMLJSON, path.Root, `[{"n":"/8/8/6","vlo":"3"}]`, nil},
		{"json vb null", SenMLJSON, path.Root, `[{"n":"/8/8/5","vb":null}]`, nil},
		{"json vs null", SenMLJSON, path.Root, `[{"n":"/8/8/3","vs":null}]`, nil},
		{"json n null", SenMLJSON, path.Root, `[{"n":null,"v":1}]`, nil},
		{"json huge number", SenMLJSON, path.Root, `[{"n":"/8/8/7","v":1e999}]`, ErrTypeMismatch},
		{"cbor not array", SenMLCBOR, inst, "A0", nil},
		{"cbor trailing", SenMLCBOR, inst, "80 00", nil},
		{"cbor truncated", SenMLCBOR, inst, "81 A1 00 65 2F33", nil},
		{"cbor record not map", SenMLCBOR, inst, "81 00", nil},
		{"cbor bad label", SenMLCBOR, inst, "81 A1 F4 00", nil},
		{"cbor n not text", SenMLCBOR, path.Root, "81 A2 00 01 02 01", nil},
		{"cbor vs not text", SenMLCBOR, path.Root, "81 A2 00 66 2F332F302F30 03 01", nil},
		{"cbor huge array", SenMLCBOR, inst, "9B 7FFFFFFFFFFFFFFF", nil},
		{"cbor huge string", SenMLCBOR, inst, "81 A1 00 7B 7FFFFFFFFFFFFFFF", nil},
		{"cbor reserved info", SenMLCBOR, inst, "1C", nil},
		{"cbor undefined", SenMLCBOR, inst, "F7", nil},
		{"cbor stray break", SenMLCBOR, inst, "FF", nil},
		{"cbor bad utf8", SenMLCBOR, path.Root, "81 A2 00 62 FFFE 03 61 61", nil},
		{"cbor deep", SenMLCBOR, inst, strings.Repeat("81", 40) + "00", ErrLimit},
		{"cbor indefinite int", SenMLCBOR, inst, "1F", nil},
		{"cbor must understand", SenMLCBOR, path.Root, "81 A2 00 66 2F332F302F30 62 785F 01", nil},
		{"lwm2m cbor not map", LwM2MCBOR, inst, "80", nil},
		{"lwm2m cbor bad key", LwM2MCBOR, path.Root, "A1 61 61 01", nil},
		{"lwm2m cbor id range", LwM2MCBOR, path.Root, "A1 19 FFFF 01", path.ErrRange},
		{"lwm2m cbor too deep", LwM2MCBOR, path.Root, "A1 85 01 02 03 04 05 01", path.ErrDepth},
		{"lwm2m cbor outside base", LwM2MCBOR, inst, "A1 03 A1 01 A1 00 61 61", nil},
		{"lwm2m cbor duplicate", LwM2MCBOR, path.Root, "A2 82 08 08 A1 00 01 08 A1 08 A1 00 02", nil},
		{"lwm2m cbor array value", LwM2MCBOR, path.Root, "A1 83 08 08 00 80", nil},
		{"lwm2m cbor bad tag", LwM2MCBOR, path.Root, "A1 83 08 08 02 C2 01", nil},
		{"lwm2m cbor type mismatch", LwM2MCBOR, path.Root, "A1 83 08 08 05 01", ErrTypeMismatch},
		{"lwm2m cbor empty key path", LwM2MCBOR, path.Root, "A1 80 01", nil},
		{"old json not object", OldJSON, inst, `[]`, nil},
		{"old json no e", OldJSON, inst, `{"bn":"/3/0/"}`, nil},
		{"old json two values", OldJSON, inst, `{"e":[{"n":"9","v":1,"sv":"x"}]}`, nil},
		{"old json no value", OldJSON, inst, `{"e":[{"n":"9"}]}`, nil},
		{"old json sv null", OldJSON, inst, `{"e":[{"n":"0","sv":null}]}`, nil},
		{"old json bad ov", OldJSON, path.Root, `{"e":[{"n":"8/8/6","ov":"x"}]}`, nil},
		{"old json opaque not base64", OldJSON, path.Root, `{"e":[{"n":"8/8/4","sv":"!!"}]}`, nil},
		{"text at instance", Text, inst, "x", nil},
		{"text int", Text, path.Resource(3, 0, 9), "abc", ErrTypeMismatch},
		{"text int overflow", Text, path.Resource(3, 0, 9), "9223372036854775808", ErrTypeMismatch},
		{"text uint negative", Text, path.Resource(8, 0, 1), "-1", ErrTypeMismatch},
		{"text bool", Text, path.Resource(8, 0, 5), "true", ErrTypeMismatch},
		{"text float inf", Text, path.Resource(8, 0, 7), "1e400", ErrTypeMismatch},
		{"text objlnk", Text, path.Resource(8, 0, 6), "1:70000", ErrTypeMismatch},
		{"text opaque", Text, path.Resource(8, 0, 4), "**", ErrTypeMismatch},
		{"text utf8", Text, path.Resource(8, 0, 3), "\xff", nil},
		{"opaque at object", Opaque, path.Object(5), "x", nil},
		{"link bad", CoreLink, path.Resource(8, 0, 9), "<x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.data)
			if tt.f == TLV || tt.f == SenMLCBOR || tt.f == LwM2MCBOR {
				data = mustHex(t, tt.data)
			}
			recs, err := Decode(tt.f, tt.base, data, m)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode = %v, %v; want ErrMalformed", recs, err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("%T is not *DecodeError", err)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Fatalf("err %v does not wrap %v", err, tt.cause)
			}
		})
	}
	if _, err := Decode(Format(9999), inst, nil, m); !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("unknown format: %v", err)
	}
	if _, err := Decode(TLV, inst, make([]byte, MaxPayload+1), m); !errors.Is(err, ErrLimit) {
		t.Fatalf("payload limit: %v", err)
	}
}

func TestEncodeErrors(t *testing.T) {
	one := []Record{{Path: path.Resource(3, 0, 9), Value: NewInt(1)}}
	two := append(one, Record{Path: path.Resource(3, 0, 10), Value: NewInt(2)})
	tests := []struct {
		name string
		f    Format
		base path.Path
		recs []Record
		want error
	}{
		{"text two values", Text, path.Instance(3, 0), two, ErrNotEncodable},
		{"text at instance", Text, path.Instance(3, 0), one, ErrNotEncodable},
		{"text NaN", Text, path.Resource(6, 0, 0), []Record{{Path: path.Resource(6, 0, 0), Value: NewFloat(math.NaN())}}, ErrNotEncodable},
		{"opaque of int", Opaque, path.Resource(3, 0, 9), one, ErrNotEncodable},
		{"link of string", CoreLink, path.Resource(3, 0, 0), []Record{{Path: path.Resource(3, 0, 0), Value: NewString("x")}}, ErrNotEncodable},
		{"link invalid", CoreLink, path.Resource(3, 0, 0), []Record{{Path: path.Resource(3, 0, 0), Value: NewCorelnk("<x")}}, ErrNotEncodable},
		{"outside base", TLV, path.Instance(3, 1), one, ErrNotEncodable},
		{"tlv root", TLV, path.Root, one, ErrNotEncodable},
		{"tlv duplicate", TLV, path.Instance(3, 0), append(one, one...), ErrNotEncodable},
		{"tlv single and multiple", TLV, path.Instance(3, 0), append(one, Record{Path: path.ResourceInstance(3, 0, 9, 0), Value: NewInt(1)}), ErrNotEncodable},
		{"tlv no value", TLV, path.Instance(3, 0), []Record{{Path: path.Resource(3, 0, 9)}}, ErrNotEncodable},
		{"tlv instance record", TLV, path.Object(3), []Record{{Path: path.Instance(3, 0), Value: NewInt(1)}}, ErrNotEncodable},
		{"json NaN", SenMLJSON, path.Root, []Record{{Path: path.Resource(6, 0, 0), Value: NewFloat(math.Inf(1))}}, ErrNotEncodable},
		{"json bad utf8", SenMLJSON, path.Root, []Record{{Path: path.Resource(3, 0, 0), Value: NewString("\xff")}}, ErrNotEncodable},
		{"lwm2m cbor overlap", LwM2MCBOR, path.Root, append(one, Record{Path: path.ResourceInstance(3, 0, 9, 0), Value: NewInt(1)}), ErrNotEncodable},
		{"lwm2m cbor root", LwM2MCBOR, path.Root, []Record{{Path: path.Root, Value: NewInt(1)}}, ErrNotEncodable},
		{"old json", OldJSON, path.Root, one, ErrUnsupportedFormat},
		{"invalid path", SenMLJSON, path.Root, []Record{{Path: path.Object(65535), Value: NewInt(1)}}, ErrNotEncodable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Encode(tt.f, tt.base, tt.recs); !errors.Is(err, tt.want) {
				t.Errorf("%s: Encode = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	m := testModel(t)
	tests := []struct {
		res  uint16
		v    Value
		text string
	}{
		{3, NewString("héllo"), "héllo"},
		{0, NewInt(-42), "-42"},
		{1, NewUint(math.MaxUint64), "18446744073709551615"},
		{2, NewTime(time.Date(2013, 5, 2, 10, 40, 15, 0, time.UTC)), "1367491215"},
		{7, NewFloat(3.14), "3.14"},
		{7, NewFloat(-0.5), "-0.5"},
		{5, NewBool(true), "1"},
		{5, NewBool(false), "0"},
		{6, NewObjlnk(3, 0), "3:0"},
		{4, NewOpaque([]byte{0, 1, 2, 0xff}), "AAEC/w=="},
		{9, NewCorelnk("</3/0>"), "</3/0>"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			p := path.Resource(8, 0, tt.res)
			recs := []Record{{Path: p, Value: tt.v}}
			got, err := Encode(Text, p, recs)
			if err != nil || string(got) != tt.text {
				t.Errorf("%v: Encode = %q, %v; want %q", tt.v, got, err, tt.text)
			}
			back, err := Decode(Text, p, []byte(tt.text), m)
			if err != nil {
				t.Fatalf("%q: %v", tt.text, err)
			}
			equalRecords(t, back, recs)
		})
	}
	// Unknown resources decode as strings.
	recs, err := Decode(Text, path.Resource(9999, 0, 1), []byte("42"), m)
	if err != nil || recs[0].Value.Type() != model.String {
		t.Fatalf("unknown resource: %v %v", recs, err)
	}
	// Unknown resources decode from TLV as opaque.
	recs, err = Decode(TLV, path.Instance(9999, 0), mustHex(t, "C1 01 2A"), m)
	if err != nil || recs[0].Value.Type() != model.Opaque || recs[0].Value.Bytes()[0] != 42 {
		t.Fatalf("unknown TLV resource: %v %v", recs, err)
	}
}

func TestPreferred(t *testing.T) {
	tests := []struct {
		ver       string
		announced []Format
		want      Format
	}{
		{"1.0", nil, TLV},
		{"1.0", []Format{OldJSON, TLV}, TLV},
		{"1.1", nil, TLV},
		{"1.1", []Format{Text, TLV, SenMLJSON}, SenMLJSON},
		{"1.1", []Format{SenMLJSON, SenMLCBOR}, SenMLCBOR},
		{"1.1", []Format{LwM2MCBOR}, TLV},
		{"1.2", nil, SenMLCBOR},
		{"1.2", []Format{TLV, LwM2MCBOR}, LwM2MCBOR},
		{"1.2", []Format{TLV}, TLV},
		{"1.2", []Format{Text}, SenMLCBOR},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.ver, tt.announced), func(t *testing.T) {
			if got := Preferred(tt.ver, tt.announced); got != tt.want {
				t.Errorf("Preferred(%q, %v) = %v, want %v", tt.ver, tt.announced, got, tt.want)
			}
		})
	}
}

func TestPreferredCompact(t *testing.T) {
	tests := []struct {
		ver       string
		announced []Format
		want      Format
	}{
		{"1.0", nil, TLV},
		{"1.1", []Format{SenMLCBOR, SenMLJSON, TLV}, TLV},
		{"1.1", []Format{SenMLJSON, SenMLCBOR}, SenMLCBOR},
		{"1.1", nil, TLV},
		{"1.2", []Format{SenMLCBOR, TLV, LwM2MCBOR}, LwM2MCBOR},
		{"1.2", []Format{SenMLJSON}, SenMLJSON},
		{"1.2", nil, SenMLCBOR},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.ver, tt.announced), func(t *testing.T) {
			if got := PreferredCompact(tt.ver, tt.announced); got != tt.want {
				t.Errorf("PreferredCompact(%q, %v) = %v, want %v", tt.ver, tt.announced, got, tt.want)
			}
		})
	}
	// The sizes quoted in the documentation.
	for f, want := range map[Format]int{LwM2MCBOR: 119, TLV: 121, SenMLCBOR: 196, SenMLJSON: 384} {
		t.Run(f.String(), func(t *testing.T) {
			b, err := Encode(f, path.Instance(3, 0), deviceRecords())
			if err != nil || len(b) != want {
				t.Errorf("%v: %d bytes, %v; documented %d", f, len(b), err, want)
			}
		})
	}
}

func TestTree(t *testing.T) {
	recs := deviceRecords()
	tree, err := Tree(recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree) != 1 || len(tree[0].Resources) != 13 {
		t.Fatalf("tree %+v", tree)
	}
	r7 := tree[0].Resources[5]
	if r7.ID != 7 || !r7.Multiple || len(r7.Instances) != 2 || r7.Instances[1].Value.Int() != 5000 {
		t.Fatalf("resource 7 %+v", r7)
	}
	equalRecords(t, tree[0].Records(), recs)
}

func TestCoerceAndValue(t *testing.T) {
	tests := []struct {
		v    Value
		t    model.Type
		want Value
		ok   bool
	}{
		{NewFloat(3), model.Integer, NewInt(3), true},
		{NewFloat(3.5), model.Integer, Value{}, false},
		{NewFloat(-1), model.Unsigned, Value{}, false},
		{NewUint(math.MaxUint64), model.Integer, Value{}, false},
		{NewUint(7), model.Float, NewFloat(7), true},
		{NewString("3:4"), model.Objlnk, NewObjlnk(3, 4), true},
		{NewString("</a>"), model.Corelnk, NewCorelnk("</a>"), true},
		{NewCorelnk("</a>"), model.String, NewString("</a>"), true},
		{NewBool(true), model.Integer, Value{}, false},
		{NewInt(1), model.Boolean, Value{}, false},
		{Value{}, model.String, Value{}, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%v", tt.v, tt.t), func(t *testing.T) {
			got, err := Coerce(tt.v, tt.t)
			if (err == nil) != tt.ok || (tt.ok && !got.Equal(tt.want)) {
				t.Errorf("Coerce(%v, %v) = %v, %v", tt.v, tt.t, got, err)
			}
			if err != nil && !errors.Is(err, ErrTypeMismatch) {
				t.Errorf("error %v not ErrTypeMismatch", err)
			}
		})
	}
	if NewTimeUnix(0).Time() != time.Unix(0, 0).UTC() {
		t.Fatal("Time")
	}
	if o, i := NewObjlnk(65535, 65535).Objlnk(); o != 65535 || i != 65535 {
		t.Fatal("null objlnk")
	}
	if (Value{}).String() != "<none>" || NewOpaque([]byte{1}).String() != "opaque(1 bytes)" || NewFloat(math.NaN()).Equal(NewFloat(0)) {
		t.Fatal("String/Equal")
	}
}

func TestHalfFloat(t *testing.T) {
	for _, f := range []float64{0, 1, -2, 0.5, 65504, 5.960464477539063e-08, 6.103515625e-05, 1.5, math.Copysign(0, -1)} {
		t.Run(fmt.Sprint(f), func(t *testing.T) {
			h, ok := toHalf(f)
			if !ok || fromHalf(h) != f || math.Signbit(fromHalf(h)) != math.Signbit(f) {
				t.Errorf("toHalf(%v) = %x, %v", f, h, ok)
			}
		})
	}
	for _, f := range []float64{1.1, 65505, 1e-9, 100000, 0.1} {
		t.Run(fmt.Sprint(f), func(t *testing.T) {
			if _, ok := toHalf(f); ok {
				t.Errorf("toHalf(%v) should not be exact", f)
			}
		})
	}
	// RFC 8949 Appendix A examples.
	for f, want := range map[float64]string{1.0: "f93c00", 1.1: "fb3ff199999999999a", 100000.0: "fa47c35000", 65504.0: "f97bff", -4.0: "f9c400", 5.960464477539063e-8: "f90001"} {
		t.Run(fmt.Sprint(f), func(t *testing.T) {
			got := cborFloat(nil, f)
			if string(mustHex(t, want)) != string(got) {
				t.Errorf("cborFloat(%v) = %x, want %s", f, got, want)
			}
		})
	}
}

func TestParseValueAndAny(t *testing.T) {
	tests := []struct {
		t    model.Type
		in   string
		want Value
		any  any
	}{
		{model.Integer, "80", NewInt(80), int64(80)},
		{model.Unsigned, "7", NewUint(7), uint64(7)},
		{model.Float, "2.5", NewFloat(2.5), 2.5},
		{model.Boolean, "true", NewBool(true), true},
		{model.Boolean, "0", NewBool(false), false},
		{model.Time, "2013-05-02T10:40:15Z", NewTimeUnix(1367491215), time.Unix(1367491215, 0).UTC()},
		{model.Time, "1367491215", NewTimeUnix(1367491215), time.Unix(1367491215, 0).UTC()},
		{model.Objlnk, "3:0", NewObjlnk(3, 0), "3:0"},
		{model.String, "street light", NewString("street light"), "street light"},
		{model.Corelnk, "</3/0>", NewCorelnk("</3/0>"), "</3/0>"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%s", tt.t, tt.in), func(t *testing.T) {
			v, err := ParseValue(tt.t, tt.in)
			if err != nil || !v.Equal(tt.want) {
				t.Errorf("ParseValue(%v, %q) = %v, %v", tt.t, tt.in, v, err)
			}
			if got := v.Any(); got != tt.any {
				t.Errorf("Any() = %#v, want %#v", got, tt.any)
			}
		})
	}
	for _, bad := range []struct {
		t  model.Type
		in string
	}{{model.Integer, "x"}, {model.Boolean, "yes"}, {model.None, ""}, {model.Objlnk, "3"}} {
		t.Run(fmt.Sprintf("%v/%q", bad.t, bad.in), func(t *testing.T) {
			if _, err := ParseValue(bad.t, bad.in); !errors.Is(err, ErrTypeMismatch) {
				t.Errorf("ParseValue(%v, %q) = %v", bad.t, bad.in, err)
			}
		})
	}
	if (Value{}).Any() != nil || NewOpaque([]byte{1}).Any().([]byte)[0] != 1 {
		t.Error("Any of none/opaque")
	}
}
