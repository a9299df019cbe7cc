package registry

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/m2mbearer/m2mbearer/lwm2m/link"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// ObjectList is the interpreted Register/Update payload: the object links,
// the alternate root path and the content formats the client announced.
type ObjectList struct {
	AltPath string // "/" when the client uses the default root
	Formats Formats
	Objects []ObjectLink
}

// ParseObjectLinks interprets a CoRE link-format object list (Core 1.1
// §6.2.1, §6.2.2): optionally one root link to the alternate path carrying
// rt="oma.lwm2m" (and "ct", the supported content formats), then links to
// objects "</o>" and object instances "</o/i>" under that root, each with an
// optional "ver" attribute. The syntax is parsed by lwm2m/link; a link to a
// resource, a link outside the root, an out-of-range ID or a malformed "ver"
// or "ct", or an attribute value over MaxAttrLen bytes is a *ParamError
// wrapping ErrBadRequest; a payload over MaxLinkPayload bytes wraps
// ErrTooLarge.
func ParseObjectLinks(payload []byte) (*ObjectList, error) {
	links, err := parseLinkPayload(payload)
	if err != nil {
		return nil, err
	}
	ol := &ObjectList{AltPath: "/"}
	rootIdx, err := findRoot(links, ol)
	if err != nil {
		return nil, err
	}
	prefix := ""
	if ol.AltPath != "/" {
		prefix = ol.AltPath
	}
	ol.Objects = make([]ObjectLink, 0, len(links))
	for i, l := range links {
		if i == rootIdx || l.Target == ol.AltPath || l.Target == ol.AltPath+"/" {
			// The root link: its ct lists the supported content formats.
			if ct, ok := l.Get("ct"); ok {
				f, err := parseCT(ct)
				if err != nil {
					return nil, err
				}
				ol.Formats |= f
			}
			continue
		}
		o, err := objectLinkOf(l, prefix)
		if err != nil {
			return nil, err
		}
		ol.Objects = append(ol.Objects, o)
	}
	if len(ol.Objects) == 0 {
		ol.Objects = nil
	}
	return ol, nil
}

// parseLinkPayload parses the link-format syntax within the limits:
// MaxLinkPayload bytes, MaxObjectLinks links, MaxAttrLen bytes per
// attribute value.
func parseLinkPayload(payload []byte) ([]link.Link, error) {
	if len(payload) > MaxLinkPayload {
		return nil, &ParamError{Param: "payload", Reason: fmt.Sprintf("%d bytes, more than %d", len(payload), MaxLinkPayload), Err: ErrTooLarge}
	}
	links, err := link.ParseN(payload, MaxObjectLinks+1)
	if err != nil {
		return nil, &ParamError{Param: "payload", Reason: err.Error(), Err: ErrBadRequest}
	}
	if len(links) > MaxObjectLinks {
		return nil, bad("payload", "more than %d object links", MaxObjectLinks)
	}
	for _, l := range links {
		for _, p := range l.Params {
			if len(p.Value) > MaxAttrLen {
				return nil, bad("payload", "attribute %q of link %q: %d bytes, more than %d", truncate(p.Name, 16), truncate(l.Target, 32), len(p.Value), MaxAttrLen)
			}
		}
	}
	return links, nil
}

// findRoot finds the one root link (rt="oma.lwm2m"), sets ol.AltPath from
// it and returns its index, or -1 when there is none.
func findRoot(links []link.Link, ol *ObjectList) (int, error) {
	rootIdx := -1
	for i, l := range links {
		if rt, ok := l.Get("rt"); ok && hasToken(rt, "oma.lwm2m") {
			if rootIdx >= 0 {
				return 0, bad("payload", "more than one rt=\"oma.lwm2m\" link")
			}
			if err := checkAltPath(l.Target); err != nil {
				return 0, err
			}
			rootIdx, ol.AltPath = i, strings.TrimSuffix(l.Target, "/")
			if ol.AltPath == "" {
				ol.AltPath = "/"
			}
		}
	}
	return rootIdx, nil
}

// objectLinkOf interprets a link to an object or object instance under
// the root path prefix ("" for the default root), with its "ver".
func objectLinkOf(l link.Link, prefix string) (ObjectLink, error) {
	target := l.Target
	if prefix != "" {
		rest, ok := strings.CutPrefix(target, prefix)
		if !ok || !strings.HasPrefix(rest, "/") {
			return ObjectLink{}, bad("payload", "link %q is outside the root path %q", truncate(target, 32), prefix)
		}
		target = rest
	}
	p, err := path.Parse(target)
	if err != nil {
		return ObjectLink{}, &ParamError{Param: "payload", Reason: err.Error(), Err: ErrBadRequest}
	}
	var o ObjectLink
	switch {
	case p.IsObject():
		o = ObjectLink{Object: p.ObjectID(), Instance: NoInstance}
	case p.IsInstance():
		o = ObjectLink{Object: p.ObjectID(), Instance: p.InstanceID()}
	default:
		return ObjectLink{}, bad("payload", "link %q is not an object or object instance", truncate(l.Target, 32))
	}
	if v, ok := l.Get("ver"); ok {
		maj, min, err := parseObjectVersion(v)
		if err != nil {
			return ObjectLink{}, err
		}
		o.VerMajor, o.VerMinor = maj, min
	}
	return o, nil
}

func hasToken(list, tok string) bool {
	for f := range strings.FieldsSeq(list) {
		if f == tok {
			return true
		}
	}
	return false
}

func checkAltPath(t string) error {
	if t == "/" {
		return nil
	}
	if !strings.HasPrefix(t, "/") || len(t) > MaxAltPathLen || strings.Contains(t, "//") ||
		strings.ContainsAny(t, "?#") {
		return bad("payload", "invalid alternate path %q", truncate(t, 32))
	}
	t = strings.TrimSuffix(t, "/")
	// The alternate path must not itself look like an LwM2M object path.
	if _, err := path.Parse(t); err == nil {
		return bad("payload", "alternate path %q is an LwM2M path", t)
	}
	return nil
}

// parseCT parses a ct value: one number or a space-separated list (RFC 7252
// §7.2.1 quoted form).
func parseCT(s string) (Formats, error) {
	var f Formats
	n := 0
	for tok := range strings.FieldsSeq(s) {
		n++
		if n > 32 {
			return 0, bad("payload", "ct lists too many formats")
		}
		v, err := strconv.ParseUint(tok, 10, 16)
		if err != nil {
			return 0, bad("payload", "ct value %q is not a content-format number", truncate(tok, 16))
		}
		f |= FormatOf(uint16(v))
	}
	if n == 0 {
		return 0, bad("payload", "empty ct")
	}
	return f, nil
}

// parseObjectVersion parses "major.minor" (each 0–255).
func parseObjectVersion(s string) (uint8, uint8, error) {
	maj, min, ok := strings.Cut(s, ".")
	if !ok || !isDigits(maj) || !isDigits(min) || len(maj) > 3 || len(min) > 3 {
		return 0, 0, &ParamError{Param: "payload", Reason: "ver " + strconv.Quote(truncate(s, 16)) + " is not major.minor", Err: ErrBadRequest}
	}
	a, err1 := strconv.ParseUint(maj, 10, 8)
	b, err2 := strconv.ParseUint(min, 10, 8)
	if err1 != nil || err2 != nil || (a == 0 && b == 0) {
		return 0, 0, &ParamError{Param: "payload", Reason: "ver " + strconv.Quote(s) + " out of range", Err: ErrBadRequest}
	}
	return uint8(a), uint8(b), nil
}
