package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// checkKeys walks the document against the Config struct before it is
// decoded, so that misspelt keys and values of the wrong kind are told in
// the configuration's own words ("unknown key `sms.dialy_budget` (did you
// mean `daily_budget`?)", "`queue.expiry` must be a duration such as 30s
// or 24h, got \"soon\"") rather than in the YAML library's.
func checkKeys(root *yaml.Node) []Problem {
	n := root
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	w := &keyWalker{drop: map[*yaml.Node]bool{}}
	w.value(n, reflect.TypeOf(Config{}), "")
	w.prune(n)
	return w.ps
}

// keyWalker collects the problems; the keys and values it refuses are then
// taken out of the document (prune), so that the rest can still be decoded
// and validated and one run lists every problem.
type keyWalker struct {
	ps   []Problem
	drop map[*yaml.Node]bool // key nodes of pairs to remove, value nodes to reset
}

func (w *keyWalker) add(n *yaml.Node, field, msg string) {
	w.ps = append(w.ps, Problem{Line: n.Line, Column: n.Column, Field: field, Msg: msg})
	w.drop[n] = true
}

// prune removes the refused pairs from their mappings and resets refused
// values to null (the default is kept).
func (w *keyWalker) prune(n *yaml.Node) {
	if n == nil || len(w.drop) == 0 {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !w.drop[n.Content[i]] {
				kept = append(kept, n.Content[i], n.Content[i+1])
			}
		}
		n.Content = kept
	}
	for _, c := range n.Content {
		if w.drop[c] {
			*c = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: c.Line, Column: c.Column}
			continue
		}
		w.prune(c)
	}
}

var (
	durationType    = reflect.TypeOf(time.Duration(0))
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// value checks node n as the Go type t at the key path field ("" for the
// top level).
func (w *keyWalker) value(n *yaml.Node, t reflect.Type, field string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with nothing after it keeps the default
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || t.Implements(unmarshalerType) {
		return // decodes itself, with its own messages (NoSec)
	}
	name := "the file"
	if field != "" {
		name = "`" + field + "`"
	}
	switch {
	case t == durationType:
		var d time.Duration
		if n.Kind != yaml.ScalarNode || n.Decode(&d) != nil {
			w.add(n, field, fmt.Sprintf("%s must be a duration such as 30s, 5m or 24h, got %s", name, shown(n)))
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.add(n, field, fmt.Sprintf("%s must be a mapping of keys (key: value on the lines below it), got %s", name, shown(n)))
			return
		}
		w.mapping(n, t, field)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.add(n, field, fmt.Sprintf("%s must be a list (lines starting with \"- \"), got %s", name, shown(n)))
			return
		}
		for i, e := range n.Content {
			w.value(e, t.Elem(), fmt.Sprintf("%s[%d]", field, i))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			w.add(n, field, fmt.Sprintf("%s must be %s, got %s", name, kindWords(t), shown(n)))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.add(n, field, fmt.Sprintf("%s must be %s, got %s", name, kindWords(t), shown(n)))
		}
	}
}

// mapping checks the keys of a mapping node against the yaml tags of t.
func (w *keyWalker) mapping(n *yaml.Node, t reflect.Type, field string) {
	fields := map[string]reflect.Type{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		fields[tag] = f.Type
		names = append(names, tag)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := k.Value
		if field != "" {
			path = field + "." + k.Value
		}
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			w.add(k, path, fmt.Sprintf("`%s`: merge keys (<<) are not supported; write the keys out", path))
			continue
		}
		ft, ok := fields[k.Value]
		if !ok {
			msg := fmt.Sprintf("unknown key `%s`", path)
			if s := closest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean `%s`?)", s)
			} else {
				msg += fmt.Sprintf(" (the keys here are %s)", strings.Join(names, ", "))
			}
			w.add(k, path, msg)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.add(k, path, fmt.Sprintf("`%s` is set twice (first on line %d)", path, first))
			continue
		}
		seen[k.Value] = k.Line
		w.value(v, ft, path)
	}
}

// shown quotes what the file has at n, for "got ..." in messages.
func shown(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if len(v) > 60 {
		v = v[:60] + "..."
	}
	return strconv.Quote(v)
}

// kindWords says what a scalar of Go type t is in a configuration file.
func kindWords(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Int8, reflect.Int16, reflect.Int32:
		return fmt.Sprintf("a whole number in %d..%d", -(int64(1) << (t.Bits() - 1)), int64(1)<<(t.Bits()-1)-1)
	case reflect.Uint, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return fmt.Sprintf("a whole number in 0..%d", uint64(1)<<t.Bits()-1)
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a text value"
	}
	return "a " + t.Kind().String()
}

// closest returns the name nearest to s (edit distance at most a third of
// its length, at least 2), or "".
func closest(s string, names []string) string {
	best, bestD := "", max(2, len(s)/3)+1
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for _, n := range sorted {
		if d := editDistance(strings.ToLower(s), n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (optimal string
// alignment: a swap of two neighbours counts once, "dialy" -> "daily").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// sortProblems orders problems by line and column; those without a line
// (a configuration built in Go) keep their order after the others.
func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}
