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
	recs := make([]Record, 0, len(doc.E))
	for idx, e := range doc.E {
		bad := func(k string) error { return decErr(OldJSON, -1, nil, "entry %d: bad %q", idx, k) }
		var n string
		if raw, ok := e["n"]; ok {
			if string(raw) == "null" || json.Unmarshal(raw, &n) != nil {
				return nil, bad("n")
			}
		}
		p, err := st.resolve(n, true, idx)
		if err != nil {
			return nil, err
		}
		mt := resolveType(m, p)
		var v Value
		nvals := 0
		if raw, ok := e["v"]; ok {
			nvals++
			var num json.Number
			if json.Unmarshal(raw, &num) != nil || len(raw) == 0 || raw[0] == '"' {
				return nil, bad("v")
			}
			if v, ok = numberTyped(num.String(), mt); !ok {
				return nil, bad("v")
			}
		}
		if raw, ok := e["sv"]; ok {
			nvals++
			var s string
			if string(raw) == "null" || json.Unmarshal(raw, &s) != nil {
				return nil, bad("sv")
			}
			v = NewString(s)
			if mt == model.Opaque {
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					return nil, bad("sv")
				}
				v = NewOpaque(b)
			}
		}
		if raw, ok := e["bv"]; ok {
			nvals++
			var b bool
			if json.Unmarshal(raw, &b) != nil || string(raw) == "null" {
				return nil, bad("bv")
			}
			v = NewBool(b)
		}
		if raw, ok := e["ov"]; ok {
			nvals++
			var s string
			if string(raw) == "null" || json.Unmarshal(raw, &s) != nil {
				return nil, bad("ov")
			}
			if v, ok = parseObjlnk(s); !ok {
				return nil, bad("ov")
			}
		}
		if nvals != 1 {
			return nil, decErr(OldJSON, -1, nil, "entry %d has %d values", idx, nvals)
		}
		if v, err = typed(OldJSON, m, p, v); err != nil {
			return nil, err
		}
		r := Record{Path: p, Value: v}
		if raw, ok := e["t"]; ok {
			var num json.Number
			if string(raw) == "null" || json.Unmarshal(raw, &num) != nil {
				return nil, bad("t")
			}
			t, err := strconv.ParseFloat(num.String(), 64)
			if err != nil {
				return nil, bad("t")
			}
			r.Time = bt + t
		} else if bt != 0 {
			r.Time = bt
		}
		recs = append(recs, r)
	}
	return recs, nil
}
