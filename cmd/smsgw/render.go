package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// object is a JSON object that keeps the order of its keys (the API's
// field order is the order a reader expects: endpoint first).
type object struct {
	keys []string
	vals map[string]any
}

// decodeOrdered decodes JSON into *object, []any, json.Number, string,
// bool and nil.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &object{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				if _, dup := o.vals[k]; !dup {
					o.keys = append(o.keys, k)
				}
				o.vals[k] = v
			}
			_, err := dec.Token() // '}'
			return o, err
		case '[':
			l := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := dec.Token() // ']'
			return l, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return t, nil
	}
}

// columns narrows the tables of some answers to the columns a person reads
// first (the JSON form has every field). Keyed by the list's field name; a
// set applies only to rows that have most of its columns (a campaign's
// "devices" are not the registered devices).
var columns = map[string][]string{
	"devices":   {"endpoint", "transport", "binding", "queue", "awake", "queued", "security", "sms", "address", "updated"},
	"jobs":      {"id", "endpoint", "op", "paths", "state", "created", "expires", "error"},
	"images":    {"id", "name", "version", "size", "sha256", "created"},
	"campaigns": {"id", "version", "status", "total", "counts", "sms_used", "created", "finished"},
}

// renderTable writes the API's JSON answer for a person: the scalar fields
// as "name: value" lines, nested objects as indented sections, lists of
// objects as tables (one row per item), lists of scalars on one line.
func renderTable(w io.Writer, data []byte) error {
	v, err := decodeOrdered(data)
	if err != nil {
		_, err := w.Write(data) // not JSON: as it came
		return err
	}
	var b bytes.Buffer
	renderValue(&b, "", v, "")
	_, err = w.Write(b.Bytes())
	return err
}

func renderValue(b *bytes.Buffer, name string, v any, indent string) {
	switch x := v.(type) {
	case *object:
		renderObject(b, x, indent)
	case []any:
		if len(x) > 0 && allObjects(x) {
			renderRows(b, name, x, indent)
			return
		}
		if len(x) == 0 {
			b.WriteString(indent + "(none)\n")
			return
		}
		for _, e := range x {
			b.WriteString(indent + cell(e) + "\n")
		}
	default:
		b.WriteString(indent + cell(v) + "\n")
	}
}

// renderObject prints scalars first (aligned), then sections and tables in
// the order of the answer.
func renderObject(b *bytes.Buffer, o *object, indent string) {
	tw := tabwriter.NewWriter(b, 0, 8, 2, ' ', 0)
	var nested []string
	for _, k := range o.keys {
		switch x := o.vals[k].(type) {
		case *object:
			if len(x.keys) == 0 {
				fmt.Fprintf(tw, "%s%s:\t-\n", indent, k)
				continue
			}
			nested = append(nested, k)
		case []any:
			if len(x) > 0 && allObjects(x) {
				nested = append(nested, k)
				continue
			}
			if len(x) == 0 {
				fmt.Fprintf(tw, "%s%s:\t(none)\n", indent, k)
				continue
			}
			fmt.Fprintf(tw, "%s%s:\t%s\n", indent, k, cell(x))
		default:
			fmt.Fprintf(tw, "%s%s:\t%s\n", indent, k, cell(x))
		}
	}
	tw.Flush()
	for _, k := range nested {
		switch x := o.vals[k].(type) {
		case *object:
			fmt.Fprintf(b, "%s%s:\n", indent, k)
			renderObject(b, x, indent+"  ")
		case []any:
			fmt.Fprintf(b, "%s%s (%d):\n", indent, k, len(x))
			renderRows(b, k, x, indent+"  ")
		}
	}
}

func allObjects(l []any) bool {
	for _, e := range l {
		if _, ok := e.(*object); !ok {
			return false
		}
	}
	return true
}

// renderRows prints a list of objects as a table; its columns are the
// fields of the rows in first-seen order (or the list's columns entry).
func renderRows(b *bytes.Buffer, name string, rows []any, indent string) {
	cols := columns[name]
	if p := presentColumns(cols, rows); 3*len(p) < 2*len(cols) {
		cols = nil
	} else {
		cols = p
	}
	if cols == nil {
		seen := map[string]bool{}
		for _, r := range rows {
			for _, k := range r.(*object).keys {
				if !seen[k] {
					seen[k] = true
					cols = append(cols, k)
				}
			}
		}
	}
	tw := tabwriter.NewWriter(b, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "%s%s\n", indent, strings.ToUpper(strings.Join(cols, "\t")))
	for _, r := range rows {
		o := r.(*object)
		cells := make([]string, len(cols))
		for i, c := range cols {
			if v, ok := o.vals[c]; ok {
				cells[i] = cell(v)
			} else {
				cells[i] = "-"
			}
		}
		fmt.Fprintf(tw, "%s%s\n", indent, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// presentColumns keeps the columns some row has.
func presentColumns(cols []string, rows []any) []string {
	var out []string
	for _, c := range cols {
		for _, r := range rows {
			if _, ok := r.(*object).vals[c]; ok {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// cell shows one value in a line or a table cell: scalars as they are,
// lists of scalars comma-separated, anything else as compact JSON.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return strings.ReplaceAll(x, "\n", " ")
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case []any:
		if len(x) == 0 {
			return "-"
		}
		parts := make([]string, len(x))
		for i, e := range x {
			if _, ok := e.(*object); ok {
				return compact(v)
			}
			parts[i] = cell(e)
		}
		return strings.Join(parts, ",")
	}
	return compact(v)
}

// compact is v as one line of JSON, keys in the answer's order.
func compact(v any) string {
	var b strings.Builder
	writeCompact(&b, v)
	return b.String()
}

func writeCompact(b *strings.Builder, v any) {
	switch x := v.(type) {
	case *object:
		b.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			writeCompact(b, x.vals[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCompact(b, e)
		}
		b.WriteByte(']')
	default:
		vb, _ := json.Marshal(x)
		b.Write(vb)
	}
}
