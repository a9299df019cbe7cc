package content

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// The LwM2M 1.0 JSON format (11543, LwM2M 1.0 §6.4.4), decoded so that a
// server can read 1.0 clients that answer in it:
//
//	{"bn":"/3/0/","e":[{"n":"0","sv":"Open Mobile Alliance"},{"n":"6/0","v":1}]}
//
// Entries carry "n" and one of "v" (number), "sv" (string; base64 for
// Opaque resources), "bv" (boolean), "ov" (object link "3:0"), and an
// optional "t" added to the base time "bt". Without "bn" names are relative
// to the request path.

type oldJSONDoc struct {
	Bn *string                      `json:"bn"`
	Bt *json.Number                 `json:"bt"`
	E  []map[string]json.RawMessage `json:"e"`
}

func decodeOldJSON(base path.Path, data []byte, m model.Resolver) ([]Record, error) {
	var doc oldJSONDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, decErr(OldJSON, int(dec.InputOffset()), nil, "not an LwM2M JSON object: %v", err)
	}
	if dec.More() {
		return nil, decErr(OldJSON, int(dec.InputOffset()), nil, "data after the JSON object")
	}
	if doc.E == nil {
		return nil, decErr(OldJSON, -1, nil, `missing "e" array`)
	}
	if len(doc.E) > MaxRecords {
		return nil, decErr(OldJSON, -1, ErrLimit, "more than %d entries", MaxRecords)
	}
	bn := base.String()
	if !base.IsRoot() {
		bn += "/"
	}
	if doc.Bn != nil {
		bn = *doc.Bn
	}
	var bt float64
	if doc.Bt != nil {
		f, err := doc.Bt.Float64()
		if err != nil {
			return nil, decErr(OldJSON, -1, nil, "bad bt")
		}
		bt = f
	}
	st := &senmlState{f: OldJSON, base: base, m: m, bn: bn}
	return eachRecord(doc.E, func(idx int, e map[string]json.RawMessage) (Record, error) {
		return st.oldJSONEntry(oldJSONEntry{idx: idx, e: e}, bt)
	})
}

// oldJSONEntry is one entry (the idx-th) of the "e" array.
type oldJSONEntry struct {
	idx int
	e   map[string]json.RawMessage
}

func (o oldJSONEntry) bad(k string) error {
	return decErr(OldJSON, -1, nil, "entry %d: bad %q", o.idx, k)
}

// oldJSONEntry decodes one entry: its name against the base name, its one
// value, its time (bt plus its "t").
func (st *senmlState) oldJSONEntry(o oldJSONEntry, bt float64) (Record, error) {
	var n string
	if raw, ok := o.e["n"]; ok {
		if string(raw) == "null" || json.Unmarshal(raw, &n) != nil {
			return Record{}, o.bad("n")
		}
	}
	p, err := st.resolve(n, true, o.idx)
	if err != nil {
		return Record{}, err
	}
	v, err := o.value(resolveType(st.m, p))
	if err != nil {
		return Record{}, err
	}
	if v, err = typed(OldJSON, st.m, p, v); err != nil {
		return Record{}, err
	}
	r := Record{Path: p, Value: v}
	if raw, ok := o.e["t"]; ok {
		var num json.Number
		if string(raw) == "null" || json.Unmarshal(raw, &num) != nil {
			return Record{}, o.bad("t")
		}
		t, err := strconv.ParseFloat(num.String(), 64)
		if err != nil {
			return Record{}, o.bad("t")
		}
		r.Time = bt + t
	} else if bt != 0 {
		r.Time = bt
	}
	return r, nil
}

// value is the entry's one value ("v", "sv", "bv" or "ov") for a resource
// of type mt; none or several are refused.
func (o oldJSONEntry) value(mt model.Type) (Value, error) {
	var v Value
	nvals := 0
	if raw, ok := o.e["v"]; ok {
		nvals++
		var num json.Number
		if json.Unmarshal(raw, &num) != nil || len(raw) == 0 || raw[0] == '"' {
			return v, o.bad("v")
		}
		if v, ok = numberTyped(num.String(), mt); !ok {
			return v, o.bad("v")
		}
	}
	if raw, ok := o.e["sv"]; ok {
		nvals++
		var s string
		if string(raw) == "null" || json.Unmarshal(raw, &s) != nil {
			return v, o.bad("sv")
		}
		v = NewString(s)
		if mt == model.Opaque {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return v, o.bad("sv")
			}
			v = NewOpaque(b)
		}
	}
	if raw, ok := o.e["bv"]; ok {
		nvals++
		var b bool
		if json.Unmarshal(raw, &b) != nil || string(raw) == "null" {
			return v, o.bad("bv")
		}
		v = NewBool(b)
	}
	if raw, ok := o.e["ov"]; ok {
		nvals++
		var s string
		if string(raw) == "null" || json.Unmarshal(raw, &s) != nil {
			return v, o.bad("ov")
		}
		if v, ok = parseObjlnk(s); !ok {
			return v, o.bad("ov")
		}
	}
	if nvals != 1 {
		return v, decErr(OldJSON, -1, nil, "entry %d has %d values", o.idx, nvals)
	}
	return v, nil
}
