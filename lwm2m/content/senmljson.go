package content

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// senmlNames splits record paths into a base name and names, the way the
// LwM2M 1.1 Core §7.4.4 examples do: the deepest path shared by all records
// (the request path in a Read) with a trailing slash as "bn" of the first
// record and relative names after it ([{"bn":"/3/0/","n":"0",...},
// {"n":"1",...}]); a single record carries only "bn". Records from several
// objects (Send, composite operations) carry their full paths as "n". The
// shared base keeps Send and Notify payloads short, which matters on SMS.
func senmlNames(recs []Record) (bn string, names []string) {
	names = make([]string, len(recs))
	if len(recs) == 0 {
		return "", names
	}
	common := recs[0].Path
	for _, r := range recs[1:] {
		for !r.Path.HasPrefix(common) {
			common = common.Parent()
		}
	}
	if len(recs) == 1 {
		return common.String(), names
	}
	below := !common.IsRoot()
	for _, r := range recs {
		if r.Path.Len() <= common.Len() {
			below = false
		}
	}
	if !below {
		for k, r := range recs {
			names[k] = r.Path.String()
		}
		return "", names
	}
	bn = common.String() + "/"
	for k, r := range recs {
		names[k] = r.Path.String()[len(bn):]
	}
	return bn, names
}

func appendJSONString(b []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, errf(ErrNotEncodable, "string is not valid UTF-8")
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			switch c {
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
			}
		default:
			b = append(b, c)
		}
	}
	return append(b, '"'), nil
}

func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errf(ErrNotEncodable, "float %v has no JSON form", f)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64), nil // 1700000000, not 1.7e+09
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64), nil
}

// encodeSenMLJSON encodes records as SenML JSON (RFC 8428; LwM2M 1.1 Core
// §7.4.4): numbers in "v", strings and Corelnk in "vs", booleans in "vb",
// opaque in "vd" (base64url without padding, RFC 8428 §4.3), object links in
// "vlo".
func encodeSenMLJSON(base path.Path, recs []Record) ([]byte, error) {
	bn, names := senmlNames(recs)
	b := make([]byte, 0, 32*len(recs)+2)
	b = append(b, '[')
	var err error
	for k, r := range recs {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		sep := false
		field := func(name string) {
			if sep {
				b = append(b, ',')
			}
			sep = true
			b = append(b, '"')
			b = append(b, name...)
			b = append(b, '"', ':')
		}
		if k == 0 && bn != "" {
			field("bn")
			if b, err = appendJSONString(b, bn); err != nil {
				return nil, err
			}
		}
		if names[k] != "" {
			field("n")
			if b, err = appendJSONString(b, names[k]); err != nil {
				return nil, err
			}
		}
		if r.Time != 0 {
			field("t")
			if b, err = appendJSONFloat(b, r.Time); err != nil {
				return nil, err
			}
		}
		v := r.Value
		switch v.typ {
		case model.None:
		case model.String, model.Corelnk:
			field("vs")
			b, err = appendJSONString(b, v.str)
		case model.Integer, model.Time:
			field("v")
			b = strconv.AppendInt(b, int64(v.num), 10)
		case model.Unsigned:
			field("v")
			b = strconv.AppendUint(b, v.num, 10)
		case model.Float:
			field("v")
			b, err = appendJSONFloat(b, v.Float())
		case model.Boolean:
			field("vb")
			b = strconv.AppendBool(b, v.num != 0)
		case model.Opaque:
			field("vd")
			b = append(b, '"')
			b = base64.RawURLEncoding.AppendEncode(b, v.raw)
			b = append(b, '"')
		case model.Objlnk:
			field("vlo")
			b = append(b, '"')
			b, _ = appendText(b, v)
			b = append(b, '"')
		}
		if err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// senmlState carries the base values across SenML records (RFC 8428 §4.1).
type senmlState struct {
	f    Format
	base path.Path
	m    model.Resolver
	bn   string
	bt   float64
}

// resolve builds the record path from bn + n and checks it.
func (s *senmlState) resolve(n string, hasN bool, idx int) (path.Path, error) {
	full := s.bn + n
	if !hasN && s.bn == "" {
		return path.Path{}, decErr(s.f, -1, nil, "record %d has no name", idx)
	}
	p, err := path.Parse(full)
	if err != nil {
		return path.Path{}, decErr(s.f, -1, err, "record %d: name %q: %v", idx, full, err)
	}
	if !p.HasPrefix(s.base) {
		return path.Path{}, decErr(s.f, -1, nil, "record %d: %v is outside the request path %v", idx, p, s.base)
	}
	return p, nil
}

func decodeBase64Any(s string) ([]byte, bool) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, true
	}
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, true
	}
	return nil, false
}

// numberValue types a JSON number without a model: Integer when it is an
// integer literal that fits, Unsigned above MaxInt64, Float otherwise.
func numberValue(lit string) (Value, bool) {
	if !strings.ContainsAny(lit, ".eE") {
		if i, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return NewInt(i), true
		}
		if u, err := strconv.ParseUint(lit, 10, 64); err == nil {
			return NewUint(u), true
		}
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) {
		return Value{}, false
	}
	return NewFloat(f), true
}

// numberTyped parses a JSON number literal directly into the model type,
// keeping full precision of 64-bit integers.
func numberTyped(lit string, t model.Type) (Value, bool) {
	switch t {
	case model.Integer, model.Time:
		if i, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return Value{typ: t, num: uint64(i)}, true
		}
	case model.Unsigned:
		if u, err := strconv.ParseUint(lit, 10, 64); err == nil {
			return NewUint(u), true
		}
	case model.Float:
		f, err := strconv.ParseFloat(lit, 64)
		if err == nil && !math.IsInf(f, 0) {
			return NewFloat(f), true
		}
		return Value{}, false
	}
	return numberValue(lit)
}

// decodeSenMLJSON decodes SenML JSON. Unknown labels are ignored, labels
// ending in "_" (must-understand, RFC 8428 §4.4) are refused, a record with
// two values is refused.
func decodeSenMLJSON(base path.Path, data []byte, m model.Resolver) ([]Record, error) {
	var raw []map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, decErr(SenMLJSON, int(dec.InputOffset()), nil, "not a JSON array of objects: %v", err)
	}
	if dec.More() {
		return nil, decErr(SenMLJSON, int(dec.InputOffset()), nil, "data after the JSON array")
	}
	if len(raw) > MaxRecords {
		return nil, decErr(SenMLJSON, -1, ErrLimit, "more than %d records", MaxRecords)
	}
	st := &senmlState{f: SenMLJSON, base: base, m: m}
	return eachRecord(raw, func(idx int, obj map[string]json.RawMessage) (Record, error) {
		return st.jsonRecord(jsonRecord{idx: idx, obj: obj})
	})
}

// eachRecord decodes items in order, one record each, with dec.
func eachRecord[T any](items []T, dec func(idx int, it T) (Record, error)) ([]Record, error) {
	recs := make([]Record, 0, len(items))
	for idx, it := range items {
		r, err := dec(idx, it)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// jsonRecord is one SenML JSON record (the idx-th) as its labels' raw
// JSON values.
type jsonRecord struct {
	idx int
	obj map[string]json.RawMessage
}

func (r jsonRecord) has(k string) bool { _, ok := r.obj[k]; return ok }

func (r jsonRecord) bad(k string) error {
	return decErr(SenMLJSON, -1, nil, "record %d: bad %q", r.idx, k)
}

// str is the string value of label k (null refused).
func (r jsonRecord) str(k string) (string, error) {
	var s string
	if string(r.obj[k]) == "null" {
		return "", r.bad(k)
	}
	return s, json.Unmarshal(r.obj[k], &s)
}

// numberLit is the number literal of label k (a string refused).
func (r jsonRecord) numberLit(k string) (string, error) {
	var num json.Number
	if err := json.Unmarshal(r.obj[k], &num); err != nil || len(r.obj[k]) == 0 || r.obj[k][0] == '"' {
		return "", r.bad(k)
	}
	return num.String(), nil
}

// jsonRecord decodes one record: its base labels (which st keeps for the
// records after it), its name and time, and its one value.
func (st *senmlState) jsonRecord(r jsonRecord) (Record, error) {
	for k := range r.obj {
		if strings.HasSuffix(k, "_") {
			return Record{}, decErr(SenMLJSON, -1, nil, "record %d: must-understand label %q", r.idx, k)
		}
	}
	n, hasN, t, err := st.jsonNames(r)
	if err != nil {
		return Record{}, err
	}
	p, err := st.resolve(n, hasN, r.idx)
	if err != nil {
		return Record{}, err
	}
	v, err := r.value(p, resolveType(st.m, p))
	if err != nil {
		return Record{}, err
	}
	if v, err = typed(SenMLJSON, st.m, p, v); err != nil {
		return Record{}, err
	}
	rec := Record{Path: p, Value: v}
	if t != 0 || st.bt != 0 {
		rec.Time = st.bt + t
	}
	return rec, nil
}

// jsonNames reads bn and bt into st, and returns n (hasN: present) and t.
func (st *senmlState) jsonNames(r jsonRecord) (n string, hasN bool, t float64, err error) {
	if r.has("bn") {
		s, err := r.str("bn")
		if err != nil {
			return "", false, 0, r.bad("bn")
		}
		st.bn = s
	}
	if r.has("bt") {
		lit, err := r.numberLit("bt")
		if err != nil {
			return "", false, 0, err
		}
		st.bt, _ = strconv.ParseFloat(lit, 64)
	}
	if r.has("n") {
		s, err := r.str("n")
		if err != nil {
			return "", false, 0, r.bad("n")
		}
		n, hasN = s, true
	}
	if r.has("t") {
		lit, err := r.numberLit("t")
		if err != nil {
			return "", false, 0, err
		}
		t, _ = strconv.ParseFloat(lit, 64)
	}
	return n, hasN, t, nil
}

// value returns the record's value (v, vs, vb, vd or vlo; none is a nil
// Value) for path p of type mt; two values are refused.
func (r jsonRecord) value(p path.Path, mt model.Type) (Value, error) {
	var v Value
	nvals := 0
	if r.has("v") {
		nvals++
		lit, err := r.numberLit("v")
		if err != nil {
			return v, err
		}
		var ok bool
		if v, ok = numberTyped(lit, mt); !ok {
			return v, decErr(SenMLJSON, -1, ErrTypeMismatch, "record %d: %v: number %s does not fit %v", r.idx, p, lit, mt)
		}
	}
	if r.has("vs") {
		nvals++
		s, err := r.str("vs")
		if err != nil {
			return v, r.bad("vs")
		}
		v = NewString(s)
	}
	if r.has("vb") {
		nvals++
		var bv bool
		if err := json.Unmarshal(r.obj["vb"], &bv); err != nil || string(r.obj["vb"]) == "null" {
			return v, r.bad("vb")
		}
		v = NewBool(bv)
	}
	if r.has("vd") {
		nvals++
		s, err := r.str("vd")
		if err != nil {
			return v, r.bad("vd")
		}
		bs, ok := decodeBase64Any(s)
		if !ok {
			return v, r.bad("vd")
		}
		v = NewOpaque(bs)
	}
	if r.has("vlo") {
		nvals++
		s, err := r.str("vlo")
		if err != nil {
			return v, r.bad("vlo")
		}
		var ok bool
		if v, ok = parseObjlnk(s); !ok {
			return v, r.bad("vlo")
		}
	}
	if nvals > 1 {
		return v, decErr(SenMLJSON, -1, nil, "record %d has %d values", r.idx, nvals)
	}
	return v, nil
}
