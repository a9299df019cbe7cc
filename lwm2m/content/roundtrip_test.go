package content

import (
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"pgregory.net/rapid"
)

var links = []string{"</3/0>", `</>;rt="oma.lwm2m";ct=11543,</1/0>`, "</3/0/7>;dim=8;pmin=10", "</a>,</b>;obs"}

// genValue draws a value of type t.
func genValue(t *rapid.T, ty model.Type) Value {
	switch ty {
	case model.String:
		return NewString(rapid.String().Draw(t, "s"))
	case model.Integer:
		return NewInt(rapid.Int64().Draw(t, "i"))
	case model.Unsigned:
		return NewUint(rapid.Uint64().Draw(t, "u"))
	case model.Time:
		return NewTimeUnix(rapid.Int64().Draw(t, "time"))
	case model.Float:
		f := rapid.Float64().Draw(t, "f")
		if math.IsNaN(f) || math.IsInf(f, 0) {
			f = 0.5
		}
		return NewFloat(f)
	case model.Boolean:
		return NewBool(rapid.Bool().Draw(t, "b"))
	case model.Opaque:
		return NewOpaque(rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, "raw"))
	case model.Objlnk:
		return NewObjlnk(rapid.Uint16().Draw(t, "o"), rapid.Uint16().Draw(t, "oi"))
	case model.Corelnk:
		return NewCorelnk(rapid.SampledFrom(links).Draw(t, "link"))
	}
	t.Fatalf("no generator for %v", ty)
	return Value{}
}

// genInstance draws records for object 8 instance inst of testModel:
// some single resources and some instances of the multiple resource 10,
// sorted by path.
func genInstance(t *rapid.T, m *model.Registry, inst uint16, withTime bool) []Record {
	obj, _ := m.Object(8)
	var recs []Record
	for _, r := range obj.Resources {
		if !rapid.Bool().Draw(t, "present") {
			continue
		}
		if r.Multiple {
			ids := rapid.SliceOfNDistinct(rapid.Uint16Range(0, path.MaxID), 0, 4, rapid.ID).Draw(t, "ri")
			slices.Sort(ids)
			for _, id := range ids {
				recs = append(recs, Record{Path: path.ResourceInstance(8, inst, r.ID, id), Value: genValue(t, r.Type)})
			}
			continue
		}
		rec := Record{Path: path.Resource(8, inst, r.ID), Value: genValue(t, r.Type)}
		if withTime && rapid.Bool().Draw(t, "timed") {
			rec.Time = float64(rapid.Int32().Draw(t, "t")) / 4
		}
		recs = append(recs, rec)
	}
	return recs
}

func checkRoundTrip(t *rapid.T, f Format, base path.Path, recs []Record, m model.Resolver) {
	data, err := Encode(f, base, recs)
	if err != nil {
		t.Fatalf("Encode %v: %v (%v)", f, err, recs)
	}
	got, err := Decode(f, base, data, m)
	if err != nil {
		t.Fatalf("Decode %v: %v\npayload %x\nrecords %v", f, err, data, recs)
	}
	if len(got) != len(recs) {
		t.Fatalf("%v: %d records back, want %d\n got %v\nwant %v", f, len(got), len(recs), got, recs)
	}
	for k := range got {
		if got[k].Path != recs[k].Path || !got[k].Value.Equal(recs[k].Value) || got[k].Time != recs[k].Time {
			t.Fatalf("%v: record %d: got %v %v t=%v, want %v %v t=%v", f, k,
				got[k], got[k].Value.Type(), got[k].Time, recs[k], recs[k].Value.Type(), recs[k].Time)
		}
	}
}

func TestRapidRoundTripMulti(t *testing.T) {
	m := testModel(t)
	formats := []Format{TLV, SenMLJSON, SenMLCBOR, LwM2MCBOR, OldJSON}
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				inst := rapid.Uint16Range(0, 3).Draw(t, "inst")
				timed := f == SenMLJSON || f == SenMLCBOR || f == OldJSON
				recs := genInstance(t, m, inst, timed)
				base := path.Instance(8, inst)
				if rapid.Bool().Draw(t, "objectLevel") {
					base = path.Object(8)
				}
				if f == OldJSON {
					checkOldJSONRoundTrip(t, base, recs, m)
					return
				}
				checkRoundTrip(t, f, base, recs, m)
				if f != TLV {
					checkRoundTrip(t, f, path.Root, recs, m)
				}
			})
		})
	}
}

func TestRapidRoundTripSingle(t *testing.T) {
	m := testModel(t)
	obj, _ := m.Object(8)
	rapid.Check(t, func(t *rapid.T) {
		r := rapid.SampledFrom(obj.Resources).Draw(t, "res")
		p := path.Resource(8, 0, r.ID)
		if r.Multiple {
			p = path.ResourceInstance(8, 0, r.ID, rapid.Uint16Range(0, path.MaxID).Draw(t, "ri"))
		}
		recs := []Record{{Path: p, Value: genValue(t, r.Type)}}
		for _, f := range []Format{Text, TLV, SenMLJSON, SenMLCBOR, LwM2MCBOR} {
			checkRoundTrip(t, f, p, recs, m)
		}
		switch r.Type {
		case model.Opaque:
			checkRoundTrip(t, Opaque, p, recs, m)
		case model.Corelnk:
			checkRoundTrip(t, CoreLink, p, recs, m)
		}
	})
}

// encodeOldJSONForTest writes the LwM2M 1.0 JSON format, which the package
// only decodes, so the decoder can be checked against random data.
func encodeOldJSONForTest(base path.Path, recs []Record) ([]byte, error) {
	bn := base.String()
	if !base.IsRoot() {
		bn += "/"
	}
	b := []byte(`{"bn":`)
	b, _ = appendJSONString(b, bn)
	b = append(b, `,"e":[`...)
	for k, r := range recs {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"n":`...)
		b, _ = appendJSONString(b, r.Path.String()[len(bn):])
		v := r.Value
		var err error
		switch v.Type() {
		case model.String, model.Corelnk:
			b = append(b, `,"sv":`...)
			b, err = appendJSONString(b, v.Str())
		case model.Opaque:
			b = append(b, `,"sv":"`...)
			b = append(b, base64.StdEncoding.EncodeToString(v.Bytes())...)
			b = append(b, '"')
		case model.Integer, model.Time:
			b = append(b, `,"v":`...)
			b = strconv.AppendInt(b, v.Int(), 10)
		case model.Unsigned:
			b = append(b, `,"v":`...)
			b = strconv.AppendUint(b, v.Uint(), 10)
		case model.Float:
			b = append(b, `,"v":`...)
			b, err = appendJSONFloat(b, v.Float())
		case model.Boolean:
			b = append(b, `,"bv":`...)
			b = strconv.AppendBool(b, v.Bool())
		case model.Objlnk:
			b = append(b, `,"ov":"`...)
			b, _ = appendText(b, v)
			b = append(b, '"')
		}
		if err != nil {
			return nil, err
		}
		if r.Time != 0 {
			b = append(b, `,"t":`...)
			b, _ = appendJSONFloat(b, r.Time)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...), nil
}

func checkOldJSONRoundTrip(t *rapid.T, base path.Path, recs []Record, m model.Resolver) {
	data, err := encodeOldJSONForTest(base, recs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(OldJSON, base, data, m)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records, want %d", len(got), len(recs))
	}
	for k := range got {
		if got[k].Path != recs[k].Path || !got[k].Value.Equal(recs[k].Value) || got[k].Time != recs[k].Time {
			t.Fatalf("record %d: got %v, want %v\n%s", k, got[k], recs[k], data)
		}
	}
}

func TestRapidCoerce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		i := rapid.Int64().Draw(t, "i")
		v, err := Coerce(NewInt(i), model.Time)
		if err != nil || v.Int() != i || v.Type() != model.Time {
			t.Fatal("int->time")
		}
		u, err := Coerce(NewInt(i), model.Unsigned)
		if (i < 0) != (err != nil) || (err == nil && u.Uint() != uint64(i)) {
			t.Fatal("int->unsigned")
		}
		f, err := Coerce(NewInt(i), model.Float)
		if err != nil || f.Float() != float64(i) {
			t.Fatal("int->float")
		}
	})
}
