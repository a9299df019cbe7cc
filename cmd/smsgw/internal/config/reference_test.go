package config

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// referencePath is the generated configuration reference, from this
// package's directory.
var referencePath = filepath.Join("..", "..", "..", "..", "docs", "configuration.md")

// TestConfigurationReference regenerates docs/configuration.md from the
// configuration's own definitions (the Config struct's fields, yaml tags
// and Go doc comments, default.yaml's values and comments) and fails when
// the file differs. M2M_UPDATE_DOCS=1 (or go generate) writes it instead.
func TestConfigurationReference(t *testing.T) {
	want, err := configurationReference()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("M2M_UPDATE_DOCS") != "" {
		if err := os.WriteFile(referencePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v: generate it with M2M_UPDATE_DOCS=1 go test -run TestConfigurationReference ./cmd/smsgw/internal/config", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/configuration.md differs from the configuration's definitions (first difference at line %d); "+
			"regenerate it: M2M_UPDATE_DOCS=1 go test -run TestConfigurationReference ./cmd/smsgw/internal/config",
			firstDiffLine(got, want))
	}
}

// TestConfigurationReferenceCoversEveryKey checks the generator against
// the YAML decoder: every key it documents is accepted by Parse, and every
// key of default.yaml is documented.
func TestConfigurationReferenceCoversEveryKey(t *testing.T) {
	keys := referenceKeys(reflect.TypeFor[Config](), "")
	documented := map[string]bool{}
	for _, k := range keys {
		documented[k.path] = true
	}
	var root yaml.Node
	if err := yaml.Unmarshal(DefaultYAML, &root); err != nil {
		t.Fatal(err)
	}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := prefix + n.Content[i].Value
			if !documented[p] {
				t.Errorf("default.yaml key %s is not in the reference", p)
			}
			walk(n.Content[i+1], p+".")
		}
	}
	walk(root.Content[0], "")
	for _, k := range keys {
		if strings.Contains(k.path, "[]") || k.typ.Kind() == reflect.Struct && !isLeaf(k.typ) {
			continue
		}
		// Setting the key to its own default must parse: the path names a
		// real key (KnownFields refuses unknown ones).
		doc := nestedYAML(k.path, yamlScalarDefault(k))
		dec := yaml.NewDecoder(strings.NewReader(doc))
		dec.KnownFields(true)
		var c Config
		if err := dec.Decode(&c); err != nil {
			t.Errorf("%s: documented key refused by the decoder: %v", k.path, err)
		}
	}
}

// TestConfigurationReferenceDescribesEveryKey fails on a key with no
// description anywhere (default.yaml's comments or example, or a Go doc
// comment on its field): document new options where they are defined.
func TestConfigurationReferenceDescribesEveryKey(t *testing.T) {
	docs, err := goDocs()
	if err != nil {
		t.Fatal(err)
	}
	infos, err := yamlInfos()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range referenceKeys(reflect.TypeFor[Config](), "") {
		if typeName(k.typ) == "section" {
			continue
		}
		described := false
		for _, line := range keyText(k, docs, infos) {
			if !strings.HasPrefix(line, "Example: ") {
				described = true
			}
		}
		if !described {
			t.Errorf("%s (%s.%s) has no description: give the field a doc comment or default.yaml a comment", k.path, k.owner, k.field)
		}
	}
}

func firstDiffLine(a, b []byte) int {
	al, bl := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := 0; i < len(al) && i < len(bl); i++ {
		if !bytes.Equal(al[i], bl[i]) {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// refKey is one documented configuration key.
type refKey struct {
	path  string // e.g. lwm2m.udp, smpp[].host
	typ   reflect.Type
	owner string // Go struct type holding the field
	field string // Go field name
}

var referenceDurationType = reflect.TypeFor[time.Duration]()

// isLeaf reports whether t is documented as one value (not a section).
func isLeaf(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return true
	}
	return reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]())
}

// referenceKeys lists the keys of struct type t in field order, sections
// before their keys.
func referenceKeys(t reflect.Type, prefix string) []refKey {
	var out []refKey
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		k := refKey{path: prefix + tag, typ: f.Type, owner: t.Name(), field: f.Name}
		out = append(out, k)
		switch {
		case f.Type.Kind() == reflect.Struct && !isLeaf(f.Type):
			out = append(out, referenceKeys(f.Type, k.path+".")...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct && !isLeaf(f.Type.Elem()):
			out = append(out, referenceKeys(f.Type.Elem(), k.path+"[].")...)
		}
	}
	return out
}

// typeName is how the reference names a key's type.
func typeName(t reflect.Type) string {
	switch {
	case t == referenceDurationType:
		return "duration"
	case t.Kind() == reflect.Struct && isLeaf(t):
		return t.Name()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct && !isLeaf(t.Elem()) {
			return "list of objects"
		}
		return "list of " + typeName(t.Elem())
	case reflect.Struct:
		return "section"
	}
	return t.String()
}

// goDocs returns the doc comments of the struct fields and types declared
// in this package's non-test sources: "Type.Field" and "Type".
func goDocs() (map[string]string, error) {
	fset := token.NewFileSet()
	matches, err := filepath.Glob("*.go")
	if err != nil {
		return nil, err
	}
	docs := map[string]string{}
	for _, name := range matches {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts := s.(*ast.TypeSpec)
				td := ts.Doc
				if td == nil && len(gd.Specs) == 1 {
					td = gd.Doc
				}
				docs[ts.Name.Name] = td.Text()
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				// A field without a comment shares the one above it when
				// that names it ("Host and Port are ...").
				var prev string
				for _, fl := range st.Fields.List {
					text := fl.Doc.Text()
					if text == "" {
						text = fl.Comment.Text()
					}
					for _, n := range fl.Names {
						if text == "" && regexp.MustCompile(`\b`+n.Name+`\b`).MatchString(prev) {
							docs[ts.Name.Name+"."+n.Name] = prev
							continue
						}
						docs[ts.Name.Name+"."+n.Name] = text
					}
					if text != "" {
						prev = text
					}
				}
			}
		}
	}
	return docs, nil
}

// yamlInfo is what default.yaml says about a key.
type yamlInfo struct {
	value   string // the default as written
	comment string // the comment above it, '#' removed
	line    string // the comment after it on its line
	example string // a commented-out example (list keys)
}

var slashPair = regexp.MustCompile(`(\w+)/(\w+)`)

// describes reports whether a comment written above one key also describes
// the next key: it names it as a word, or as the second half of "a/b"
// ("lifetime_min/max" names lifetime_max).
func describes(comment, key string) bool {
	if comment == "" {
		return false
	}
	if regexp.MustCompile(`(^|[^\w.])` + regexp.QuoteMeta(key) + `($|[^\w])`).MatchString(comment) {
		return true
	}
	for _, m := range slashPair.FindAllStringSubmatch(comment, -1) {
		if a, b := m[1], m[2]; !strings.Contains(b, "_") && strings.Contains(a, "_") && a[:strings.LastIndexByte(a, '_')+1]+b == key {
			return true
		}
	}
	return false
}

// exampleComment returns the comment after key on its line of a
// commented-out example, with the comment lines below it that continue it
// (their '#' in the same column).
func exampleComment(example, key string) string {
	lines := strings.Split(example, "\n")
	keyLine := regexp.MustCompile(`^\s*(- )?` + regexp.QuoteMeta(key) + `:`)
	for i, l := range lines {
		if !keyLine.MatchString(l) {
			continue
		}
		col := strings.Index(l, " # ")
		if col < 0 {
			return ""
		}
		col++
		parts := []string{strings.TrimSpace(l[col+1:])}
		for _, next := range lines[i+1:] {
			if len(next) <= col || next[col] != '#' || strings.TrimSpace(next[:col]) != "" {
				break
			}
			parts = append(parts, strings.TrimSpace(next[col+1:]))
		}
		return strings.Join(parts, " ")
	}
	return ""
}

// sentence ends a comment fragment with a full stop (its first word may
// be a value, "udh, sar or payload", so it keeps its case).
func sentence(s string) string {
	s = paragraph(s)
	if s == "" {
		return ""
	}
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, ")") {
		s += "."
	}
	return s
}

// exampleItem returns, for the field key of the first entry of a list's
// commented-out example, its example value and its line comment.
func exampleItem(example, key string) (value, comment string) {
	var root yaml.Node
	if yaml.Unmarshal([]byte(example), &root) != nil || len(root.Content) == 0 {
		return "", ""
	}
	seq := root.Content[0]
	if seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 || seq.Content[0].Kind != yaml.MappingNode {
		return "", ""
	}
	m := seq.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			c := exampleComment(example, key)
			val := v.Value
			if v.Kind == yaml.ScalarNode && (v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 || val == "") {
				val = fmt.Sprintf("%q", val)
			}
			if v.Kind == yaml.SequenceNode {
				var items []string
				for _, it := range v.Content {
					items = append(items, fmt.Sprintf("%q", it.Value))
				}
				val = "[" + strings.Join(items, ", ") + "]"
			}
			return val, c
		}
	}
	return "", ""
}

var exampleLine = regexp.MustCompile(`^#\s{2,}`)

// yamlInfos walks default.yaml: each key's value and comments. Comment
// lines indented past "# " are commented-out examples and go to the last
// list key before them.
func yamlInfos() (map[string]*yamlInfo, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(DefaultYAML, &root); err != nil {
		return nil, err
	}
	infos := map[string]*yamlInfo{}
	var lastList *yamlInfo
	take := func(comment string, into *yamlInfo) {
		for _, l := range strings.Split(comment, "\n") {
			switch {
			case l == "":
			case exampleLine.MatchString(l) && lastList != nil:
				lastList.example += strings.TrimPrefix(l, "#") + "\n"
			default:
				if into != nil {
					into.comment += strings.TrimSpace(strings.TrimPrefix(l, "#")) + "\n"
				}
			}
		}
	}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		var prevHead string
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			in := &yamlInfo{}
			infos[prefix+k.Value] = in
			take(k.HeadComment, in)
			if k.HeadComment == "" && v.Kind != yaml.MappingNode && i >= 2 && describes(prevHead, k.Value) {
				in.comment = infos[prefix+n.Content[i-2].Value].comment
			} else if k.HeadComment != "" {
				prevHead = k.HeadComment
			}
			line := &yamlInfo{}
			take(k.LineComment, line)
			take(v.LineComment, line)
			in.line = line.comment
			switch v.Kind {
			case yaml.ScalarNode:
				in.value = v.Value
				if v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 || v.Value == "" {
					in.value = fmt.Sprintf("%q", v.Value)
				}
			case yaml.SequenceNode:
				var items []string
				for _, it := range v.Content {
					items = append(items, fmt.Sprintf("%q", it.Value))
				}
				in.value = "[" + strings.Join(items, ", ") + "]"
				lastList = in
			case yaml.MappingNode:
				walk(v, prefix+k.Value+".")
			}
			take(k.FootComment, nil)
		}
	}
	walk(root.Content[0], "")
	return infos, nil
}

// yamlScalarDefault is a YAML value of k's type for the key check.
func yamlScalarDefault(k refKey) string {
	switch {
	case k.typ == referenceDurationType:
		return "1s"
	case k.typ.Kind() == reflect.Slice:
		return "[]"
	}
	switch typeName(k.typ) {
	case "bool":
		return "false"
	case "integer", "number":
		return "1"
	case "NoSec":
		return "allow"
	}
	return `""`
}

// nestedYAML writes path: value as nested mappings.
func nestedYAML(path, value string) string {
	parts := strings.Split(path, ".")
	var b strings.Builder
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i == len(parts)-1 {
			b.WriteString(" " + value)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// paragraph joins comment lines into one paragraph.
func paragraph(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// configurationReference renders docs/configuration.md.
func configurationReference() ([]byte, error) {
	docs, err := goDocs()
	if err != nil {
		return nil, err
	}
	infos, err := yamlInfos()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`<!-- Generated by TestConfigurationReference (cmd/smsgw/internal/config/reference_test.go)
     from the Config struct, its doc comments and default.yaml. Do not edit: change the
     definitions and run M2M_UPDATE_DOCS=1 go test -run TestConfigurationReference ./cmd/smsgw/internal/config -->

# Configuration reference

smsgw reads one YAML file (` + "`smsgw -config FILE`" + `); keys that are absent keep the default shown here,
which is the embedded default (` + "`smsgw default-config`" + ` prints it with its comments). A misspelt key, a
value of the wrong type and every rule below are refused with the line they are on:
` + "`smsgw check-config FILE`" + ` checks a file without starting anything. Flags override the file:
` + "`-config -data -api -udp -dtls -token -log-level -log-format`" + ` (` + "`smsgw --help`" + `).

Durations are Go durations (` + "`90s`, `5m`, `24h`" + `). ` + "`a[].b`" + ` is key ` + "`b`" + ` of each entry of list ` + "`a`" + `.
Each key names the Go field it fills (package ` + "`cmd/smsgw/internal/config`" + `).

`)
	keys := referenceKeys(reflect.TypeFor[Config](), "")
	// Sections: top-level keys that hold other keys get their own heading;
	// the plain top-level keys come first under "General".
	var general, sections []refKey
	for _, k := range keys {
		if strings.Contains(k.path, ".") {
			continue
		}
		if typeName(k.typ) == "section" || typeName(k.typ) == "list of objects" {
			sections = append(sections, k)
		} else {
			general = append(general, k)
		}
	}
	b.WriteString("Sections: [general](#general)")
	for _, s := range sections {
		fmt.Fprintf(&b, ", [`%s`](#%s)", s.path, s.path)
	}
	b.WriteString(".\n\n## General\n\n")
	for _, k := range general {
		writeKey(&b, k, docs, infos)
	}
	for _, s := range sections {
		fmt.Fprintf(&b, "## `%s`\n\n", s.path)
		intro := paragraph(infos[s.path].comment)
		if intro == "" {
			intro = paragraph(docs[s.owner+"."+s.field])
		}
		elem := s.typ
		if elem.Kind() == reflect.Slice {
			elem = elem.Elem()
		}
		if td := paragraph(docs[elem.Name()]); td != "" && td != intro {
			intro = strings.TrimSpace(intro + " " + td)
		}
		if intro != "" {
			b.WriteString(intro + "\n\n")
		}
		fmt.Fprintf(&b, "Type: %s (Go `%s`)", typeName(s.typ), elem.Name())
		if in := infos[s.path]; in != nil && in.value != "" {
			fmt.Fprintf(&b, " · default: `%s`", in.value)
		}
		b.WriteString("\n\n")
		if in := infos[s.path]; in != nil && in.example != "" {
			fmt.Fprintf(&b, "Example:\n\n```yaml\n%s:\n%s```\n\n", s.path, in.example)
		}
		for _, k := range keys {
			if strings.HasPrefix(k.path, s.path+".") || strings.HasPrefix(k.path, s.path+"[].") {
				writeKey(&b, k, docs, infos)
			}
		}
	}
	return b.Bytes(), nil
}

// writeKey writes one key: heading, type, default, Go field, description.
func writeKey(b *bytes.Buffer, k refKey, docs map[string]string, infos map[string]*yamlInfo) {
	fmt.Fprintf(b, "### `%s`\n\n", k.path)
	in := infos[k.path]
	line := fmt.Sprintf("Type: %s", typeName(k.typ))
	if in != nil && in.value != "" {
		line += fmt.Sprintf(" · default: `%s`", in.value)
	} else if !strings.Contains(k.path, "[]") {
		line += " · default: " + zeroDefault(k.typ)
	}
	line += fmt.Sprintf(" · Go: `%s.%s`", k.owner, k.field)
	b.WriteString(line + "\n\n")
	for _, t := range keyText(k, docs, infos) {
		b.WriteString(t + "\n\n")
	}
	if in != nil && in.example != "" {
		fmt.Fprintf(b, "Example:\n\n```yaml\n%s:\n%s```\n\n", k.path[strings.LastIndexByte(k.path, '.')+1:], in.example)
	}
}

// keyText is the description of a key: default.yaml's comments, the
// commented-out example's value and comment for a list entry's field, the
// Go doc comments of the field and of its type.
func keyText(k refKey, docs map[string]string, infos map[string]*yamlInfo) []string {
	in := infos[k.path]
	var text []string
	if in != nil {
		if c := sentence(in.line); c != "" {
			text = append(text, c)
		}
		if c := paragraph(in.comment); c != "" {
			text = append(text, c)
		}
	}
	if list, field, ok := strings.Cut(k.path, "[]."); ok && !strings.Contains(field, ".") {
		if li := infos[list]; li != nil && li.example != "" {
			if v, c := exampleItem(li.example, field); v != "" || c != "" {
				if c != "" {
					text = append(text, sentence(c))
				}
				if v != "" && v != `""` {
					text = append(text, fmt.Sprintf("Example: `%s`.", v))
				}
			}
		}
	}
	gd := paragraph(docs[k.owner+"."+k.field])
	if gd != "" && !slices.ContainsFunc(text, func(t string) bool { return strings.Contains(t, gd) }) {
		text = append(text, gd)
	}
	if k.typ.Kind() == reflect.Struct && isLeaf(k.typ) {
		if td := paragraph(docs[k.typ.Name()]); td != "" {
			text = append(text, td)
		}
	}
	return text
}

// zeroDefault is the default of a key default.yaml does not set: its
// type's zero value.
func zeroDefault(t reflect.Type) string {
	switch typeName(t) {
	case "string":
		return "`\"\"`"
	case "bool":
		return "`false`"
	case "integer", "number":
		return "`0`"
	case "duration":
		return "`0s`"
	}
	if t.Kind() == reflect.Slice {
		return "`[]`"
	}
	return "none"
}
