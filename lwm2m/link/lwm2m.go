package link

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// ErrAttribute is wrapped by errors for LwM2M attributes with a bad value
// or in a bad combination (a server answers 4.00 Bad Request).
var ErrAttribute = errors.New("lwm2m attribute: invalid")

// Attribute names of LwM2M 1.1 Core §5.1.2 and 1.2 Core §5.1.1.
const (
	AttrPmin  = "pmin"  // minimum period, seconds
	AttrPmax  = "pmax"  // maximum period, seconds
	AttrGt    = "gt"    // greater than
	AttrLt    = "lt"    // less than
	AttrSt    = "st"    // step
	AttrEpmin = "epmin" // minimum evaluation period (1.1)
	AttrEpmax = "epmax" // maximum evaluation period (1.1)
	AttrEdge  = "edge"  // 1.2: 0 falling, 1 rising edge of a boolean
	AttrCon   = "con"   // 1.2: 0 NON, 1 CON notifications
	AttrHqmax = "hqmax" // 1.2: maximum historical queue
	AttrDim   = "dim"   // number of resource instances
	AttrSSID  = "ssid"  // short server ID (Bootstrap-Discover)
	AttrURI   = "uri"   // server URI (Bootstrap-Discover)
	AttrVer   = "ver"   // object version
	AttrRt    = "rt"    // resource type
	AttrCt    = "ct"    // content format(s)
)

// Attributes are the LwM2M attributes of a link or a Write-Attributes
// query. A nil pointer (or empty string) means "not present".
//
// The zero Attributes has none present.
type Attributes struct {
	Pmin, Pmax   *uint32
	Gt, Lt, St   *float64
	Epmin, Epmax *uint32
	Edge, Con    *uint8
	Hqmax        *uint32
	Dim          *uint16
	SSID         *uint16
	URI          string
	Ver          string
}

// Ptr returns a pointer to v, for filling Attributes literals.
func Ptr[T any](v T) *T { return &v }

// Attributes extracts the LwM2M attributes of l. Parameters that are not
// LwM2M attributes (rt, ct, obs, ...) are ignored; a recognised attribute
// with an unparsable value is an error wrapping ErrAttribute.
func (l Link) Attributes() (Attributes, error) {
	var a Attributes
	for _, p := range l.Params {
		if err := a.set(p.Name, p.Value, p.HasValue); err != nil {
			return Attributes{}, err
		}
	}
	return a, nil
}

// ParseQuery parses Write-Attributes URI-Query options ("pmin=10", "gt=2.5",
// "pmax"). Options without a value ask to remove the attribute (LwM2M 1.1
// Core §5.4.4 and 1.2 §5.1.1): their names are returned in unset. Unknown
// names are refused (4.00).
func ParseQuery(queries []string) (a Attributes, unset []string, err error) {
	seen := map[string]bool{}
	for _, q := range queries {
		name, value, hasValue := strings.Cut(q, "=")
		if !isAttribute(name) {
			return Attributes{}, nil, fmt.Errorf("%w: unknown attribute %q", ErrAttribute, name)
		}
		if seen[name] {
			return Attributes{}, nil, fmt.Errorf("%w: %s given twice", ErrAttribute, name)
		}
		seen[name] = true
		if !hasValue {
			unset = append(unset, name)
			continue
		}
		if err := a.set(name, value, true); err != nil {
			return Attributes{}, nil, err
		}
	}
	if err := a.Check(); err != nil {
		return Attributes{}, nil, err
	}
	return a, unset, nil
}

func isAttribute(name string) bool {
	switch name {
	case AttrPmin, AttrPmax, AttrGt, AttrLt, AttrSt, AttrEpmin, AttrEpmax,
		AttrEdge, AttrCon, AttrHqmax, AttrDim, AttrSSID, AttrURI, AttrVer:
		return true
	}
	return false
}

func parseU(name, v string, bits int) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: %s=%q: not an unsigned integer", ErrAttribute, name, v)
	}
	return n, nil
}

func (a *Attributes) set(name, v string, hasValue bool) error {
	if !isAttribute(name) {
		return nil
	}
	if !hasValue {
		return nil
	}
	u32 := func() (*uint32, error) {
		n, err := parseU(name, v, 32)
		return Ptr(uint32(n)), err
	}
	f64 := func() (*float64, error) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: %s=%q: not a finite number", ErrAttribute, name, v)
		}
		return &f, nil
	}
	var err error
	switch name {
	case AttrPmin:
		a.Pmin, err = u32()
	case AttrPmax:
		a.Pmax, err = u32()
	case AttrEpmin:
		a.Epmin, err = u32()
	case AttrEpmax:
		a.Epmax, err = u32()
	case AttrHqmax:
		a.Hqmax, err = u32()
	case AttrGt:
		a.Gt, err = f64()
	case AttrLt:
		a.Lt, err = f64()
	case AttrSt:
		a.St, err = f64()
		if err == nil && *a.St < 0 {
			err = fmt.Errorf("%w: st=%q is negative", ErrAttribute, v)
		}
	case AttrEdge, AttrCon:
		var n uint64
		n, err = parseU(name, v, 8)
		if err == nil && n > 1 {
			err = fmt.Errorf("%w: %s=%q: must be 0 or 1", ErrAttribute, name, v)
		}
		if name == AttrEdge {
			a.Edge = Ptr(uint8(n))
		} else {
			a.Con = Ptr(uint8(n))
		}
	case AttrDim:
		var n uint64
		n, err = parseU(name, v, 16)
		a.Dim = Ptr(uint16(n))
	case AttrSSID:
		var n uint64
		n, err = parseU(name, v, 16)
		if err == nil && (n == 0 || n == 65535) {
			err = fmt.Errorf("%w: ssid=%q: must be in 1..65534", ErrAttribute, v)
		}
		a.SSID = Ptr(uint16(n))
	case AttrURI:
		// A link cannot carry control characters, even quoted (RFC 6690
		// quoted-string), so a uri with one could never be written back.
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
			err = fmt.Errorf("%w: uri=%q contains a control character", ErrAttribute, v)
		}
		a.URI = v
	case AttrVer:
		if _, _, e := ParseVersion(v); e != nil {
			err = e
		}
		a.Ver = v
	}
	return err
}

// Check verifies the combination rules of LwM2M 1.1 Core §5.1.2: pmax ≥
// pmin when both are set, epmax > epmin when both are set, and lt + 2·st <
// gt when lt, gt and st are all set (lt < gt when only both thresholds are).
func (a Attributes) Check() error {
	if a.Pmin != nil && a.Pmax != nil && *a.Pmax < *a.Pmin {
		return fmt.Errorf("%w: pmax %d < pmin %d", ErrAttribute, *a.Pmax, *a.Pmin)
	}
	if a.Epmin != nil && a.Epmax != nil && *a.Epmax <= *a.Epmin {
		return fmt.Errorf("%w: epmax %d <= epmin %d", ErrAttribute, *a.Epmax, *a.Epmin)
	}
	if a.Lt != nil && a.Gt != nil {
		st := 0.0
		if a.St != nil {
			st = *a.St
		}
		if *a.Lt+2*st >= *a.Gt {
			return fmt.Errorf("%w: lt + 2*st must be < gt", ErrAttribute)
		}
	}
	return nil
}

// Params returns the attributes as link parameters, in the order of the
// specification tables. uri is quoted, as in the LwM2M examples.
func (a Attributes) Params() []Param {
	var ps []Param
	add := func(name, v string, quoted bool) {
		ps = append(ps, Param{Name: name, Value: v, HasValue: true, Quoted: quoted})
	}
	u := func(name string, v *uint32) {
		if v != nil {
			add(name, strconv.FormatUint(uint64(*v), 10), false)
		}
	}
	f := func(name string, v *float64) {
		if v != nil {
			add(name, strconv.FormatFloat(*v, 'g', -1, 64), false)
		}
	}
	if a.Dim != nil {
		add(AttrDim, strconv.Itoa(int(*a.Dim)), false)
	}
	if a.SSID != nil {
		add(AttrSSID, strconv.Itoa(int(*a.SSID)), false)
	}
	if a.URI != "" {
		add(AttrURI, a.URI, true)
	}
	if a.Ver != "" {
		add(AttrVer, a.Ver, false)
	}
	u(AttrPmin, a.Pmin)
	u(AttrPmax, a.Pmax)
	f(AttrGt, a.Gt)
	f(AttrLt, a.Lt)
	f(AttrSt, a.St)
	u(AttrEpmin, a.Epmin)
	u(AttrEpmax, a.Epmax)
	if a.Edge != nil {
		add(AttrEdge, strconv.Itoa(int(*a.Edge)), false)
	}
	if a.Con != nil {
		add(AttrCon, strconv.Itoa(int(*a.Con)), false)
	}
	u(AttrHqmax, a.Hqmax)
	return ps
}

// ParseVersion parses an object or enabler version "major.minor" (LwM2M 1.1
// Core §5.1.2 "ver"; §6.2.1 "lwm2m" parameter).
func ParseVersion(v string) (major, minor uint8, err error) {
	a, b, ok := strings.Cut(v, ".")
	ma, err1 := strconv.ParseUint(a, 10, 8)
	mi, err2 := strconv.ParseUint(b, 10, 8)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%w: version %q is not major.minor", ErrAttribute, v)
	}
	return uint8(ma), uint8(mi), nil
}

// ObjectLink is one object or object instance announced in a Register or
// Update payload.
type ObjectLink struct {
	Path    path.Path // "/o" or "/o/i"
	Version string    // the "ver" attribute, "" when absent (the object's default)
}

// Registration is the content of a Register/Update payload (LwM2M 1.1 Core
// §6.2.1, 1.2 §6.2.1).
//
// The zero Registration has no links.
type Registration struct {
	// RootPath is the alternate path of the link with rt="oma.lwm2m"
	// ("/" when absent or when it is "</>").
	RootPath string
	// ContentFormats lists the formats of the root link's "ct" parameter
	// (single value or a quoted, space-separated list).
	ContentFormats []uint16
	// Objects lists the objects and instances, in payload order.
	Objects []ObjectLink
}

// ParseRegistration interprets links as a registration payload. Links whose
// targets are not under the root path, or that are deeper than an object
// instance, are refused with ErrAttribute (4.00); so are a non-numeric "ct"
// and duplicate objects.
func ParseRegistration(links []Link) (Registration, error) {
	r := Registration{RootPath: "/"}
	for _, l := range links {
		if rt, ok := l.Get(AttrRt); ok && slices.Contains(strings.Fields(rt), "oma.lwm2m") {
			r.RootPath = l.Target
			if r.RootPath == "" || r.RootPath[0] != '/' {
				return Registration{}, fmt.Errorf("%w: alternate path %q", ErrAttribute, l.Target)
			}
			if ct, ok := l.Get(AttrCt); ok {
				for f := range strings.FieldsSeq(ct) {
					n, err := strconv.ParseUint(f, 10, 16)
					if err != nil {
						return Registration{}, fmt.Errorf("%w: ct=%q", ErrAttribute, ct)
					}
					r.ContentFormats = append(r.ContentFormats, uint16(n))
				}
			}
		}
	}
	prefix := strings.TrimSuffix(r.RootPath, "/")
	seen := map[path.Path]bool{}
	for _, l := range links {
		if rt, ok := l.Get(AttrRt); ok && slices.Contains(strings.Fields(rt), "oma.lwm2m") {
			continue
		}
		t, ok := strings.CutPrefix(l.Target, prefix)
		if !ok {
			return Registration{}, fmt.Errorf("%w: link %q outside root path %q", ErrAttribute, l.Target, r.RootPath)
		}
		p, err := path.Parse(t)
		if err != nil {
			return Registration{}, fmt.Errorf("%w: link %q: %w", ErrAttribute, l.Target, err)
		}
		if p.Len() < 1 || p.Len() > 2 {
			return Registration{}, fmt.Errorf("%w: link %q is not an object or object instance", ErrAttribute, l.Target)
		}
		if seen[p] {
			return Registration{}, fmt.Errorf("%w: link %q listed twice", ErrAttribute, l.Target)
		}
		seen[p] = true
		ol := ObjectLink{Path: p}
		if v, ok := l.Get(AttrVer); ok {
			if _, _, err := ParseVersion(v); err != nil {
				return Registration{}, err
			}
			ol.Version = v
		}
		r.Objects = append(r.Objects, ol)
	}
	return r, nil
}

// Links returns the registration as links, ready for Encode: the root link
// first when RootPath is not "/" or content formats are announced, then the
// objects.
func (r Registration) Links() []Link {
	var out []Link
	root := r.RootPath
	if root == "" {
		root = "/"
	}
	if root != "/" || len(r.ContentFormats) > 0 {
		l := Link{Target: root}
		l.SetQuoted(AttrRt, "oma.lwm2m")
		if len(r.ContentFormats) > 0 {
			fs := make([]string, len(r.ContentFormats))
			for k, f := range r.ContentFormats {
				fs[k] = strconv.Itoa(int(f))
			}
			l.Set(AttrCt, strings.Join(fs, " "))
		}
		out = append(out, l)
	}
	prefix := strings.TrimSuffix(root, "/")
	for _, o := range r.Objects {
		l := Link{Target: prefix + o.Path.String()}
		if o.Version != "" {
			l.Set(AttrVer, o.Version)
		}
		out = append(out, l)
	}
	return out
}

// PathLink returns a link to an LwM2M path with the given attributes, as a
// Discover response lists them ("</3/0/7>;dim=8").
func PathLink(p path.Path, a Attributes) Link {
	return Link{Target: p.String(), Params: a.Params()}
}
