package model

import (
	"bytes"
	"embed"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// MaxDDFSize is the largest DDF file ParseDDF accepts (the biggest OMNA
// registry files are well under 1 MiB).
const MaxDDFSize = 4 << 20

// MaxDDFObjects is the most objects one DDF file may define.
const MaxDDFObjects = 256

type ddfRoot struct {
	XMLName xml.Name    `xml:"LWM2M"`
	XSI     string      `xml:"xmlns:xsi,attr,omitempty"`
	Schema  string      `xml:"xsi:noNamespaceSchemaLocation,attr,omitempty"`
	Objects []ddfObject `xml:"Object"`
}

type ddfObject struct {
	ObjectType        string    `xml:"ObjectType,attr"`
	Name              string    `xml:"Name"`
	Description1      string    `xml:"Description1"`
	ObjectID          string    `xml:"ObjectID"`
	ObjectURN         string    `xml:"ObjectURN"`
	LWM2MVersion      string    `xml:"LWM2MVersion,omitempty"`
	ObjectVersion     string    `xml:"ObjectVersion,omitempty"`
	MultipleInstances string    `xml:"MultipleInstances"`
	Mandatory         string    `xml:"Mandatory"`
	Items             []ddfItem `xml:"Resources>Item"`
	Description2      string    `xml:"Description2"`
}

type ddfItem struct {
	ID                string `xml:"ID,attr"`
	Name              string `xml:"Name"`
	Operations        string `xml:"Operations"`
	MultipleInstances string `xml:"MultipleInstances"`
	Mandatory         string `xml:"Mandatory"`
	Type              string `xml:"Type"`
	RangeEnumeration  string `xml:"RangeEnumeration"`
	Units             string `xml:"Units"`
	Description       string `xml:"Description"`
}

// DDFError reports a DDF file that could not be used.
type DDFError struct {
	Object string // object ID or name, when known
	Reason string
	Err    error // ErrInvalid or an encoding/xml error
}

// Error implements error.
func (e *DDFError) Error() string {
	if e.Object != "" {
		return fmt.Sprintf("lwm2m model: DDF object %s: %s", e.Object, e.Reason)
	}
	return "lwm2m model: DDF: " + e.Reason
}

// Unwrap returns the underlying error.
func (e *DDFError) Unwrap() error { return e.Err }

func ddfErr(obj, reason string, err error) error {
	return &DDFError{Object: obj, Reason: reason, Err: err}
}

// ParseDDF parses an OMA DDF XML document (LWM2M.xsd: <LWM2M><Object
// ObjectType="MODefinition">…) into object definitions. Every object is
// validated (Object.Validate). Errors are *DDFError values wrapping
// ErrInvalid (or the encoding/xml error for malformed XML).
func ParseDDF(data []byte) ([]*Object, error) {
	if len(data) > MaxDDFSize {
		return nil, ddfErr("", fmt.Sprintf("%d bytes over the %d-byte limit", len(data), MaxDDFSize), ErrInvalid)
	}
	var root ddfRoot
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	dec.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		if strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "us-ascii") {
			return input, nil
		}
		return nil, fmt.Errorf("unsupported charset %q", charset)
	}
	if err := dec.Decode(&root); err != nil {
		return nil, ddfErr("", "malformed XML: "+err.Error(), fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	if len(root.Objects) == 0 {
		return nil, ddfErr("", "no <Object>", ErrInvalid)
	}
	if len(root.Objects) > MaxDDFObjects {
		return nil, ddfErr("", fmt.Sprintf("%d objects over the limit of %d", len(root.Objects), MaxDDFObjects), ErrInvalid)
	}
	out := make([]*Object, 0, len(root.Objects))
	for _, d := range root.Objects {
		o, err := d.object()
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

func parseID(s string) (uint16, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 65535 {
		return 0, false
	}
	return uint16(n), true
}

func parseMultiple(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "multiple":
		return true, true
	case "single":
		return false, true
	}
	return false, false
}

func parseMandatory(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "mandatory":
		return true, true
	case "optional":
		return false, true
	}
	return false, false
}

func (d ddfObject) object() (*Object, error) {
	name := strings.TrimSpace(d.ObjectID)
	id, ok := parseID(d.ObjectID)
	if !ok {
		return nil, ddfErr(name, "ObjectID is not an integer in 0..65534", ErrInvalid)
	}
	o := &Object{
		ID:           id,
		Name:         strings.TrimSpace(d.Name),
		Description:  strings.TrimSpace(d.Description1),
		URN:          strings.TrimSpace(d.ObjectURN),
		Version:      strings.TrimSpace(d.ObjectVersion),
		LwM2MVersion: strings.TrimSpace(d.LWM2MVersion),
	}
	if o.Version == "" {
		o.Version = "1.0"
	}
	if o.Multiple, ok = parseMultiple(d.MultipleInstances); !ok {
		return nil, ddfErr(name, fmt.Sprintf("MultipleInstances %q", d.MultipleInstances), ErrInvalid)
	}
	if o.Mandatory, ok = parseMandatory(d.Mandatory); !ok {
		return nil, ddfErr(name, fmt.Sprintf("Mandatory %q", d.Mandatory), ErrInvalid)
	}
	if len(d.Items) > MaxResources {
		return nil, ddfErr(name, fmt.Sprintf("%d resources over the limit of %d", len(d.Items), MaxResources), ErrInvalid)
	}
	for _, it := range d.Items {
		r, err := it.resource()
		if err != nil {
			return nil, ddfErr(name, err.Error(), ErrInvalid)
		}
		o.Resources = append(o.Resources, r)
	}
	slices.SortFunc(o.Resources, func(a, b Resource) int { return int(a.ID) - int(b.ID) })
	if err := o.Validate(); err != nil {
		return nil, ddfErr(name, err.Error(), ErrInvalid)
	}
	return o, nil
}

func (it ddfItem) resource() (Resource, error) {
	id, ok := parseID(it.ID)
	if !ok {
		return Resource{}, fmt.Errorf("resource ID %q is not an integer in 0..65534", it.ID)
	}
	ops, err := ParseOperations(it.Operations)
	if err != nil {
		return Resource{}, fmt.Errorf("resource %d: %w", id, err)
	}
	t, err := ParseType(it.Type)
	if err != nil {
		return Resource{}, fmt.Errorf("resource %d: %w", id, err)
	}
	r := Resource{
		ID: id, Name: strings.TrimSpace(it.Name), Operations: ops, Type: t,
		Range: strings.TrimSpace(it.RangeEnumeration), Units: strings.TrimSpace(it.Units),
		Description: strings.TrimSpace(it.Description),
	}
	if r.Multiple, ok = parseMultiple(it.MultipleInstances); !ok {
		return Resource{}, fmt.Errorf("resource %d: MultipleInstances %q", id, it.MultipleInstances)
	}
	if r.Mandatory, ok = parseMandatory(it.Mandatory); !ok {
		return Resource{}, fmt.Errorf("resource %d: Mandatory %q", id, it.Mandatory)
	}
	return r, nil
}

// MarshalDDF writes objects as an OMA DDF XML document that ParseDDF reads
// back unchanged.
func MarshalDDF(objs ...*Object) ([]byte, error) {
	root := ddfRoot{
		XSI:    "http://www.w3.org/2001/XMLSchema-instance",
		Schema: "http://openmobilealliance.org/tech/profiles/LWM2M.xsd",
	}
	for _, o := range objs {
		if err := o.Validate(); err != nil {
			return nil, err
		}
		d := ddfObject{
			ObjectType: "MODefinition", Name: o.Name, Description1: o.Description,
			ObjectID: strconv.Itoa(int(o.ID)), ObjectURN: o.URN, LWM2MVersion: o.LwM2MVersion,
			ObjectVersion: o.Version, MultipleInstances: multipleText(o.Multiple), Mandatory: mandatoryText(o.Mandatory),
		}
		for _, r := range o.Resources {
			t := r.Type.String()
			if r.Type == None {
				t = ""
			}
			d.Items = append(d.Items, ddfItem{
				ID: strconv.Itoa(int(r.ID)), Name: r.Name, Operations: r.Operations.String(),
				MultipleInstances: multipleText(r.Multiple), Mandatory: mandatoryText(r.Mandatory),
				Type: t, RangeEnumeration: r.Range, Units: r.Units, Description: r.Description,
			})
		}
		root.Objects = append(root.Objects, d)
	}
	b, err := xml.MarshalIndent(root, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("lwm2m model: marshal DDF: %w", err)
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}

func multipleText(m bool) string {
	if m {
		return "Multiple"
	}
	return "Single"
}

func mandatoryText(m bool) string {
	if m {
		return "Mandatory"
	}
	return "Optional"
}

// LoadDDF parses a DDF file and adds its objects to r, replacing existing
// definitions with the same IDs. It returns the objects loaded.
func (r *Registry) LoadDDF(data []byte) ([]*Object, error) {
	objs, err := ParseDDF(data)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if err := r.Put(o); err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// LoadDir loads every *.xml file of dir in fsys (not recursive), as an
// operator's directory of OMNA DDF files. It stops at the first bad file and
// names it in the error.
func (r *Registry) LoadDir(fsys fs.FS, dir string) ([]*Object, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("lwm2m model: %w", err)
	}
	var all []*Object
	for _, e := range entries {
		if e.IsDir() || !strings.EqualFold(path.Ext(e.Name()), ".xml") {
			continue
		}
		name := path.Join(dir, e.Name())
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("lwm2m model: %s: %w", name, err)
		}
		if info.Size() > MaxDDFSize {
			return nil, fmt.Errorf("lwm2m model: %s: %w", name, ddfErr("", "file too large", ErrInvalid))
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("lwm2m model: %s: %w", name, err)
		}
		objs, err := r.LoadDDF(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		all = append(all, objs...)
	}
	return all, nil
}

//go:embed ddf/*.xml
var embedded embed.FS

// Embedded returns fresh definitions of the objects shipped with the
// package as DDF files (3311 Light Control).
func Embedded() []*Object {
	r := new(Registry)
	objs, err := r.LoadDir(embedded, "ddf")
	if err != nil {
		// The embedded files are tested; an error here is a build defect.
		return nil
	}
	return objs
}
