package content

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

var reg = model.DefaultRegistry()

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deviceRecords is the Device object instance of the LwM2M specification
// examples (LwM2M 1.0 §6.4.3.1, 1.1 Core §7.4.3 to §7.4.5).
func deviceRecords() []Record {
	p := func(ids ...uint16) path.Path { q, _ := path.New(ids...); return q }
	return []Record{
		{Path: p(3, 0, 0), Value: NewString("Open Mobile Alliance")},
		{Path: p(3, 0, 1), Value: NewString("Lightweight M2M Client")},
		{Path: p(3, 0, 2), Value: NewString("345000123")},
		{Path: p(3, 0, 3), Value: NewString("1.0")},
		{Path: p(3, 0, 6, 0), Value: NewInt(1)},
		{Path: p(3, 0, 6, 1), Value: NewInt(5)},
		{Path: p(3, 0, 7, 0), Value: NewInt(3800)},
		{Path: p(3, 0, 7, 1), Value: NewInt(5000)},
		{Path: p(3, 0, 8, 0), Value: NewInt(125)},
		{Path: p(3, 0, 8, 1), Value: NewInt(900)},
		{Path: p(3, 0, 9), Value: NewInt(100)},
		{Path: p(3, 0, 10), Value: NewInt(15)},
		{Path: p(3, 0, 11, 0), Value: NewInt(0)},
		{Path: p(3, 0, 13), Value: NewTimeUnix(1367491215)},
		{Path: p(3, 0, 14), Value: NewString("+02:00")},
		{Path: p(3, 0, 16), Value: NewString("U")},
	}
}

// deviceTLV is the TLV of the LwM2M 1.0 §6.4.3.1 "Single Object Instance
// Request Example" (Read /3/0), as corrected in the errata: 13 resources.
const deviceTLV = `
C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
C8 01 16 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74
C8 02 09 33 34 35 30 30 30 31 32 33
C3 03 31 2E 30
86 06 41 00 01 41 01 05
88 07 08 42 00 0E D8 42 01 13 88
87 08 41 00 7D 42 01 03 84
C1 09 64
C1 0A 0F
83 0B 41 00 00
C4 0D 51 82 42 8F
C6 0E 2B 30 32 3A 30 30
C1 10 55`

func equalRecords(t testing.TB, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for k := range got {
		if got[k].Path != want[k].Path || !got[k].Value.Equal(want[k].Value) || got[k].Time != want[k].Time {
			t.Fatalf("record %d: got %v (%v, t=%v), want %v (%v, t=%v)", k,
				got[k], got[k].Value.Type(), got[k].Time, want[k], want[k].Value.Type(), want[k].Time)
		}
	}
}

func TestTLVSpecDeviceInstance(t *testing.T) {
	want := mustHex(t, deviceTLV)
	got, err := Encode(TLV, path.Instance(3, 0), deviceRecords())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("TLV /3/0:\n got % X\nwant % X", got, want)
	}
	recs, err := Decode(TLV, path.Instance(3, 0), want, reg)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, recs, deviceRecords())
}

func TestTLVSpecDeviceObject(t *testing.T) {
	// LwM2M 1.0 §6.4.3.2 example A: Read /3 wraps the instance: 08 00 79.
	inner := mustHex(t, deviceTLV)
	if len(inner) != 0x79 {
		t.Fatalf("instance body is %d bytes, spec says 0x79", len(inner))
	}
	want := append([]byte{0x08, 0x00, 0x79}, inner...)
	got, err := Encode(TLV, path.Object(3), deviceRecords())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("TLV /3: %v\n got % X\nwant % X", err, got, want)
	}
	recs, err := Decode(TLV, path.Object(3), want, reg)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, recs, deviceRecords())
	// A client may also wrap the instance when asked for /3/0.
	recs, err = Decode(TLV, path.Instance(3, 0), want, reg)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, recs, deviceRecords())
}

func TestTLVSpecAccessControl(t *testing.T) {
	// LwM2M 1.0 §6.4.3.2 example B: Read /2 on two Access Control instances.
	data := mustHex(t, `
08 00 0E C1 00 01 C1 01 00 83 02 41 7F 07 C1 03 7F
08 02 12 C1 00 03 C1 01 00 87 02 41 7F 07 61 01 36 01 C1 03 7F`)
	want := []Record{
		{Path: path.Resource(2, 0, 0), Value: NewInt(1)},
		{Path: path.Resource(2, 0, 1), Value: NewInt(0)},
		{Path: path.ResourceInstance(2, 0, 2, 127), Value: NewInt(7)},
		{Path: path.Resource(2, 0, 3), Value: NewInt(127)},
		{Path: path.Resource(2, 2, 0), Value: NewInt(3)},
		{Path: path.Resource(2, 2, 1), Value: NewInt(0)},
		{Path: path.ResourceInstance(2, 2, 2, 127), Value: NewInt(7)},
		{Path: path.ResourceInstance(2, 2, 2, 310), Value: NewInt(1)},
		{Path: path.Resource(2, 2, 3), Value: NewInt(127)},
	}
	recs, err := Decode(TLV, path.Object(2), data, reg)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, recs, want)
	got, err := Encode(TLV, path.Object(2), want)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("encode: %v\n got % X\nwant % X", err, got, data)
	}
}

func TestTLVSingleResources(t *testing.T) {
	tests := []struct {
		p    path.Path
		v    Value
		want string
	}{
		{path.Resource(3, 0, 0), NewString("Open Mobile Alliance"), "C8 00 14 4F70656E204D6F62696C6520416C6C69616E6365"},
		{path.Resource(3, 0, 9), NewInt(100), "C1 09 64"},
		{path.Resource(3, 0, 9), NewInt(-129), "C2 09 FF7F"},
		{path.Resource(3, 0, 9), NewInt(1 << 40), "C8 09 08 0000010000000000"},
		{path.Resource(1, 0, 13), NewUint(200), "C1 0D C8"},
		{path.Resource(1, 0, 13), NewUint(1 << 63), "C8 0D 08 8000000000000000"},
		{path.Resource(6, 0, 0), NewFloat(1.5), "C4 00 3FC00000"},
		{path.Resource(6, 0, 0), NewFloat(43.7), "C8 00 08 4045D9999999999A"},
		{path.Resource(1, 0, 6), NewBool(true), "C1 06 01"},
		{path.Resource(1, 0, 10), NewObjlnk(11, 0), "C4 0A 000B0000"},
		{path.Resource(3311, 0, 5850), NewBool(false), "E1 16DA 00"},
		{path.ResourceInstance(3, 0, 7, 1), NewInt(5000), "42 01 1388"},
		{path.Resource(5, 0, 0), NewOpaque(make([]byte, 300)), "D0 00 012C" + strings.Repeat("00", 300)},
	}
	for _, tt := range tests {
		t.Run(tt.p.String()+"="+tt.v.String(), func(t *testing.T) {
			recs := []Record{{Path: tt.p, Value: tt.v}}
			got, err := Encode(TLV, tt.p, recs)
			if err != nil {
				t.Fatalf("%v: %v", tt.p, err)
			}
			if want := mustHex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("%v = %v:\n got % X\nwant % X", tt.p, tt.v, got, want)
			}
			back, err := Decode(TLV, tt.p, got, reg)
			if err != nil {
				t.Fatalf("%v: decode: %v", tt.p, err)
			}
			equalRecords(t, back, recs)
		})
	}
	// A multiple resource read at its own path.
	multi := []Record{{Path: path.ResourceInstance(3, 0, 7, 0), Value: NewInt(3800)}, {Path: path.ResourceInstance(3, 0, 7, 1), Value: NewInt(5000)}}
	got, err := Encode(TLV, path.Resource(3, 0, 7), multi)
	if err != nil || !bytes.Equal(got, mustHex(t, "88 07 08 42 00 0E D8 42 01 13 88")) {
		t.Fatalf("multiple: %v % X", err, got)
	}
	back, err := Decode(TLV, path.Resource(3, 0, 7), got, reg)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, back, multi)
	// Bare resource instances at a resource path.
	back, err = Decode(TLV, path.Resource(3, 0, 7), mustHex(t, "42 00 0E D8 42 01 13 88"), reg)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, back, multi)
}

// deviceSenMLJSON is the LwM2M 1.1 Core §7.4.4 SenML JSON example (Read
// /3/0), without the line breaks of the printed version.
const deviceSenMLJSON = `[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},` +
	`{"n":"1","vs":"Lightweight M2M Client"},{"n":"2","vs":"345000123"},{"n":"3","vs":"1.0"},` +
	`{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},{"n":"7/1","v":5000},` +
	`{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},` +
	`{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","vs":"+02:00"},{"n":"16","vs":"U"}]`

func TestSenMLJSONSpecDevice(t *testing.T) {
	got, err := Encode(SenMLJSON, path.Instance(3, 0), deviceRecords())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != deviceSenMLJSON {
		t.Fatalf("SenML JSON:\n got %s\nwant %s", got, deviceSenMLJSON)
	}
	recs, err := Decode(SenMLJSON, path.Instance(3, 0), []byte(deviceSenMLJSON), reg)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, recs, deviceRecords())
	// The printed form, with whitespace, decodes the same.
	pretty := strings.ReplaceAll(deviceSenMLJSON, "},{", "},\n {")
	if recs, err = Decode(SenMLJSON, path.Instance(3, 0), []byte(pretty), reg); err != nil {
		t.Fatal(err)
	}
	equalRecords(t, recs, deviceRecords())
}

// deviceSenMLCBOR is the LwM2M 1.1.1 Core §7.4.5 SenML CBOR example (the
// same Device instance), byte for byte.
const deviceSenMLCBOR = `90a321652f332f302f00613003744f70656e204d6f62696c6520416c6c69616e6365
a200613103764c69676874776569676874204d324d20436c69656e74a20061320369333435303030313233
a20061330363312e30a20063362f300201a20063362f310205a20063372f3002190ed8a20063372f3102191388
a20063382f3002187da20063382f3102190384a2006139021864a200623130020fa2006431312f300200
a200623133021a5182428fa20062313403662b30323a3030a200623136036155`

func TestSenMLCBORSpecDevice(t *testing.T) {
	want := mustHex(t, deviceSenMLCBOR)
	got, err := Encode(SenMLCBOR, path.Instance(3, 0), deviceRecords())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("SenML CBOR:\n got %x\nwant %x", got, want)
	}
	recs, err := Decode(SenMLCBOR, path.Instance(3, 0), want, reg)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, recs, deviceRecords())
}

// testModel adds object 8 with one resource of each type, as in the
// all-types vectors of LwM2M CBOR test suites.
func testModel(t testing.TB) *model.Registry {
	r := model.DefaultRegistry()
	o := &model.Object{ID: 8, Name: "types", Multiple: true, Resources: []model.Resource{
		{ID: 0, Name: "int", Operations: model.RW, Type: model.Integer},
		{ID: 1, Name: "uint", Operations: model.RW, Type: model.Unsigned},
		{ID: 2, Name: "time", Operations: model.RW, Type: model.Time},
		{ID: 3, Name: "string", Operations: model.RW, Type: model.String},
		{ID: 4, Name: "opaque", Operations: model.RW, Type: model.Opaque},
		{ID: 5, Name: "bool", Operations: model.RW, Type: model.Boolean},
		{ID: 6, Name: "objlnk", Operations: model.RW, Type: model.Objlnk},
		{ID: 7, Name: "float", Operations: model.RW, Type: model.Float},
		{ID: 9, Name: "corelnk", Operations: model.RW, Type: model.Corelnk},
		{ID: 10, Name: "multi", Operations: model.RW, Type: model.Integer, Multiple: true},
	}}
	if err := r.Put(o); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLwM2MCBORVectors(t *testing.T) {
	m := testModel(t)
	x := strings.Repeat("X", 50)
	d := bytes.Repeat([]byte("D"), 50)
	all := []Record{
		{Path: path.Resource(8, 8, 0), Value: NewInt(25)},
		{Path: path.Resource(8, 8, 1), Value: NewUint(100)},
		{Path: path.Resource(8, 8, 2), Value: NewTimeUnix(3)},
		{Path: path.Resource(8, 8, 3), Value: NewString(x)},
		{Path: path.Resource(8, 8, 4), Value: NewOpaque(d)},
		{Path: path.Resource(8, 8, 5), Value: NewBool(false)},
		{Path: path.Resource(8, 8, 6), Value: NewObjlnk(17, 18)},
		{Path: path.Resource(8, 8, 7), Value: NewFloat(1.1)},
	}
	// Indefinite-length maps as sent by constrained clients (Anjay's
	// encoder test vectors): {8: {8: {0: 25, 1: 100, 2: 1(3), ...}}}.
	indef := "BF08BF08BF00 1819 01 1864 02 C103 03 7832" + hex.EncodeToString([]byte(x)) +
		"04 5832" + hex.EncodeToString(d) + "05 F4 06 653137 3A3138 07 FB3FF199999999999A FFFFFF"
	recs, err := Decode(LwM2MCBOR, path.Instance(8, 8), mustHex(t, indef), m)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, recs, all)
	// Our definite-length encoding of the same data.
	def := "A1 08 A1 08 A8 00 1819 01 1864 02 C103 03 7832" + hex.EncodeToString([]byte(x)) +
		"04 5832" + hex.EncodeToString(d) + "05 F4 06 653137 3A3138 07 FB3FF199999999999A"
	got, err := Encode(LwM2MCBOR, path.Instance(8, 8), all)
	if err != nil || !bytes.Equal(got, mustHex(t, def)) {
		t.Fatalf("encode: %v\n got %x\nwant %x", err, got, mustHex(t, def))
	}
	// Path-array keys: {[8, 3]: {0: 25, 10: {1: 11}}}.
	recs, err = Decode(LwM2MCBOR, path.Root, mustHex(t, "A1 82 08 03 A2 00 1819 0A A1 01 0B"), m)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, recs, []Record{
		{Path: path.Resource(8, 3, 0), Value: NewInt(25)},
		{Path: path.ResourceInstance(8, 3, 10, 1), Value: NewInt(11)},
	})
	// Empty map: nothing.
	if recs, err := Decode(LwM2MCBOR, path.Object(3), []byte{0xBF, 0xFF}, m); err != nil || len(recs) != 0 {
		t.Fatalf("empty: %v %v", recs, err)
	}
}

// deviceOldJSON is the LwM2M 1.0 §6.4.4 JSON example (Read /3/0).
const deviceOldJSON = `{"bn":"/3/0/","e":[{"n":"0","sv":"Open Mobile Alliance"},` +
	`{"n":"1","sv":"Lightweight M2M Client"},{"n":"2","sv":"345000123"},{"n":"3","sv":"1.0"},` +
	`{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},{"n":"7/1","v":5000},` +
	`{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},` +
	`{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","sv":"+02:00"},{"n":"16","sv":"U"}]}`

func TestOldJSONSpecDevice(t *testing.T) {
	recs, err := Decode(OldJSON, path.Instance(3, 0), []byte(deviceOldJSON), reg)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, recs, deviceRecords())
	// Without "bn", names are relative to the request path; legacy number 1543.
	noBN := strings.Replace(deviceOldJSON, `"bn":"/3/0/",`, "", 1)
	if recs, err = Decode(LegacyJSON, path.Instance(3, 0), []byte(noBN), reg); err != nil {
		t.Fatal(err)
	}
	equalRecords(t, recs, deviceRecords())
	if _, err := Encode(OldJSON, path.Instance(3, 0), deviceRecords()); !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("old JSON must be decode-only: %v", err)
	}
}

func TestTLVSpecServerObject(t *testing.T) {
	// LwM2M 1.0 §6.4.3.2 example C: Read /1 on a single Server instance.
	data := mustHex(t, "08 00 0F C1 00 01 C4 01 00 01 51 80 C1 06 01 C1 07 55")
	want := []Record{
		{Path: path.Resource(1, 0, 0), Value: NewInt(1)},
		{Path: path.Resource(1, 0, 1), Value: NewInt(86400)},
		{Path: path.Resource(1, 0, 6), Value: NewBool(true)},
		{Path: path.Resource(1, 0, 7), Value: NewString("U")},
	}
	recs, err := Decode(TLV, path.Object(1), data, reg)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, recs, want)
	got, err := Encode(TLV, path.Object(1), want)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("encode: %v\n got % X\nwant % X", err, got, data)
	}
}

func TestSenMLSendNames(t *testing.T) {
	// Send (/dp) from the root: a shared base name keeps the payload short.
	recs := []Record{
		{Path: path.Resource(3311, 0, 5850), Value: NewBool(true), Time: 1700000000},
		{Path: path.Resource(3311, 0, 5805), Value: NewFloat(12.5), Time: 1700000000},
	}
	got, err := Encode(SenMLJSON, path.Root, recs)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"bn":"/3311/0/","n":"5850","t":1700000000,"vb":true},{"n":"5805","t":1700000000,"v":12.5}]`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	back, err := Decode(SenMLJSON, path.Root, got, reg)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, back, recs)
	// Records of two objects carry full names.
	two := []Record{{Path: path.Resource(3, 0, 9), Value: NewInt(80)}, {Path: path.Resource(3311, 0, 5851), Value: NewInt(40)}}
	got, err = Encode(SenMLJSON, path.Root, two)
	if err != nil || string(got) != `[{"n":"/3/0/9","v":80},{"n":"/3311/0/5851","v":40}]` {
		t.Fatalf("%s %v", got, err)
	}
	// A single value carries only "bn".
	got, err = Encode(SenMLJSON, path.Resource(3, 0, 9), two[:1])
	if err != nil || string(got) != `[{"bn":"/3/0/9","v":80}]` {
		t.Fatalf("%s %v", got, err)
	}
}
