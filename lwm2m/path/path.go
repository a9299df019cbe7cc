package path

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxID is the largest usable ID. 65535 is reserved by LwM2M Core §7.1.
const MaxID = 65534

// Depth levels of a path (its Len).
const (
	LevelRoot             = 0
	LevelObject           = 1
	LevelInstance         = 2
	LevelResource         = 3
	LevelResourceInstance = 4
)

// Sentinel errors wrapped by *Error. Callers branch with errors.Is; a server
// maps all of them to CoAP 4.00 Bad Request (or 4.04 when the path is well
// formed but unknown, which is decided elsewhere).
var (
	// ErrSyntax: the text is not a path (missing leading slash, empty or
	// non-numeric segment, leading '+', etc.).
	ErrSyntax = errors.New("lwm2m path: syntax error")
	// ErrRange: a segment is a number above MaxID.
	ErrRange = errors.New("lwm2m path: id out of range")
	// ErrDepth: more than four IDs, or an operation that would go past the
	// resource instance level or above the root.
	ErrDepth = errors.New("lwm2m path: too deep")
)

// Error describes a rejected path text or operation.
type Error struct {
	Input  string // the text (possibly truncated) or a description of the operation
	Reason string
	Err    error // ErrSyntax, ErrRange or ErrDepth
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("%v: %q: %s", e.Err, e.Input, e.Reason)
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

func newErr(input, reason string, err error) *Error {
	if len(input) > 64 {
		input = input[:64] + "…"
	}
	return &Error{Input: input, Reason: reason, Err: err}
}

// Path is an LwM2M path. The zero value is the root path "/".
// Paths are comparable with == and may be used as map keys.
type Path struct {
	ids [4]uint16
	n   uint8
}

// Root is the root path "/".
var Root = Path{}

// New returns the path with the given IDs (at most four, each ≤ MaxID).
func New(ids ...uint16) (Path, error) {
	if len(ids) > 4 {
		return Path{}, newErr(fmt.Sprint(ids), "more than 4 ids", ErrDepth)
	}
	var p Path
	for _, id := range ids {
		if id > MaxID {
			return Path{}, newErr(fmt.Sprint(ids), "id 65535 is reserved", ErrRange)
		}
		p.ids[p.n] = id
		p.n++
	}
	return p, nil
}

// Object returns "/o". It does not validate: use it with constants ≤ MaxID,
// or check Valid.
func Object(o uint16) Path { return Path{ids: [4]uint16{o}, n: 1} }

// Instance returns "/o/i" (not validated, see Object).
func Instance(o, i uint16) Path { return Path{ids: [4]uint16{o, i}, n: 2} }

// Resource returns "/o/i/r" (not validated, see Object).
func Resource(o, i, r uint16) Path { return Path{ids: [4]uint16{o, i, r}, n: 3} }

// ResourceInstance returns "/o/i/r/ri" (not validated, see Object).
func ResourceInstance(o, i, r, ri uint16) Path {
	return Path{ids: [4]uint16{o, i, r, ri}, n: 4}
}

// Valid reports whether every ID of p is ≤ MaxID.
func (p Path) Valid() bool {
	for k := 0; k < int(p.n); k++ {
		if p.ids[k] > MaxID {
			return false
		}
	}
	return true
}

// Parse parses the textual form of a path: "/", "/3", "/3/0", "/3/0/1" or
// "/3/0/7/1". A single trailing slash is tolerated ("/3/0/" is "/3/0"), as
// CoAP URI-Path options ending in an empty segment are common from clients.
// Numbers are decimal without sign; leading zeros are accepted ("/03" is "/3")
// as they are by the LwM2M URI rules being plain decimal integers.
func Parse(s string) (Path, error) {
	if s == "" || s[0] != '/' {
		return Path{}, newErr(s, "must start with '/'", ErrSyntax)
	}
	if s == "/" {
		return Root, nil
	}
	body := strings.TrimSuffix(s[1:], "/")
	if body == "" {
		return Path{}, newErr(s, "empty segment", ErrSyntax)
	}
	var p Path
	for seg := range strings.SplitSeq(body, "/") {
		if p.n == 4 {
			return Path{}, newErr(s, "more than 4 ids", ErrDepth)
		}
		id, err := parseID(seg)
		if err != nil {
			return Path{}, newErr(s, err.reason, err.err)
		}
		p.ids[p.n] = id
		p.n++
	}
	return p, nil
}

type segErr struct {
	reason string
	err    error
}

func parseID(seg string) (uint16, *segErr) {
	if seg == "" {
		return 0, &segErr{"empty segment", ErrSyntax}
	}
	if len(seg) > 5 {
		// Allow leading zeros but keep the work bounded.
		t := strings.TrimLeft(seg, "0")
		if len(t) > 5 {
			for _, c := range t {
				if c < '0' || c > '9' {
					return 0, &segErr{"non-digit in segment", ErrSyntax}
				}
			}
			return 0, &segErr{"id above 65534", ErrRange}
		}
		if t == "" {
			t = "0"
		}
		seg = t
	}
	v := 0
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c < '0' || c > '9' {
			return 0, &segErr{"non-digit in segment", ErrSyntax}
		}
		v = v*10 + int(c-'0')
	}
	if v > MaxID {
		return 0, &segErr{"id above 65534", ErrRange}
	}
	return uint16(v), nil
}

// MustParse is Parse for path literals in programs and tests; it panics on
// an invalid literal. Never use it on input from the network.
func MustParse(s string) Path {
	p, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

// FromSegments builds a path from CoAP URI-Path option values, e.g.
// ["3","0","1"]. An empty list is the root; a single empty segment (the
// URI "/") is also the root.
func FromSegments(segs []string) (Path, error) {
	if len(segs) == 1 && segs[0] == "" {
		return Root, nil
	}
	if len(segs) > 4 {
		return Path{}, newErr(strings.Join(segs, "/"), "more than 4 ids", ErrDepth)
	}
	var p Path
	for _, seg := range segs {
		id, err := parseID(seg)
		if err != nil {
			return Path{}, newErr("/"+strings.Join(segs, "/"), err.reason, err.err)
		}
		p.ids[p.n] = id
		p.n++
	}
	return p, nil
}

// Segments returns the IDs as decimal strings, for CoAP URI-Path options.
// The root has no segments.
func (p Path) Segments() []string {
	out := make([]string, p.n)
	for k := range out {
		out[k] = strconv.Itoa(int(p.ids[k]))
	}
	return out
}

// String returns the textual form: "/" for the root, "/3/0/1" otherwise.
func (p Path) String() string {
	if p.n == 0 {
		return "/"
	}
	var b [4 * 6]byte
	buf := b[:0]
	for k := 0; k < int(p.n); k++ {
		buf = append(buf, '/')
		buf = strconv.AppendUint(buf, uint64(p.ids[k]), 10)
	}
	return string(buf)
}

// MarshalText implements encoding.TextMarshaler.
func (p Path) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Path) UnmarshalText(b []byte) error {
	q, err := Parse(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// Len returns the number of IDs: 0 (root) to 4 (resource instance).
func (p Path) Len() int { return int(p.n) }

// ID returns the k-th ID (0 = object). It returns 0, false if k ≥ Len.
func (p Path) ID(k int) (uint16, bool) {
	if k < 0 || k >= int(p.n) {
		return 0, false
	}
	return p.ids[k], true
}

// IDs returns a copy of the IDs.
func (p Path) IDs() []uint16 { return append([]uint16(nil), p.ids[:p.n]...) }

// ObjectID returns the object ID (0 for the root; check Len).
func (p Path) ObjectID() uint16 { return p.ids[0] }

// InstanceID returns the object instance ID (0 if Len < 2).
func (p Path) InstanceID() uint16 { return p.ids[1] }

// ResourceID returns the resource ID (0 if Len < 3).
func (p Path) ResourceID() uint16 { return p.ids[2] }

// ResourceInstanceID returns the resource instance ID (0 if Len < 4).
func (p Path) ResourceInstanceID() uint16 { return p.ids[3] }

// IsRoot reports whether p is "/".
func (p Path) IsRoot() bool { return p.n == LevelRoot }

// IsObject reports whether p is "/o".
func (p Path) IsObject() bool { return p.n == LevelObject }

// IsInstance reports whether p is "/o/i".
func (p Path) IsInstance() bool { return p.n == LevelInstance }

// IsResource reports whether p is "/o/i/r".
func (p Path) IsResource() bool { return p.n == LevelResource }

// IsResourceInstance reports whether p is "/o/i/r/ri".
func (p Path) IsResourceInstance() bool { return p.n == LevelResourceInstance }

// Parent returns the path one level up; the parent of the root is the root.
func (p Path) Parent() Path {
	if p.n == 0 {
		return p
	}
	p.n--
	p.ids[p.n] = 0
	return p
}

// Truncate returns the first n levels of p (p itself if n ≥ Len).
func (p Path) Truncate(n int) Path {
	if n < 0 {
		n = 0
	}
	for int(p.n) > n {
		p = p.Parent()
	}
	return p
}

// Child returns p extended with id. It fails with ErrDepth at a resource
// instance and ErrRange for 65535.
func (p Path) Child(id uint16) (Path, error) {
	if p.n == 4 {
		return Path{}, newErr(p.String(), "cannot go below a resource instance", ErrDepth)
	}
	if id > MaxID {
		return Path{}, newErr(p.String(), "id 65535 is reserved", ErrRange)
	}
	p.ids[p.n] = id
	p.n++
	return p, nil
}

// HasPrefix reports whether prefix is p or one of its ancestors. Every path
// has the root as prefix.
func (p Path) HasPrefix(prefix Path) bool {
	if prefix.n > p.n {
		return false
	}
	for k := 0; k < int(prefix.n); k++ {
		if p.ids[k] != prefix.ids[k] {
			return false
		}
	}
	return true
}

// Compare orders paths depth-first: a path sorts before its descendants, and
// siblings by ID. It returns -1, 0 or +1, for slices.SortFunc.
func Compare(a, b Path) int {
	n := min(a.n, b.n)
	for k := 0; k < int(n); k++ {
		switch {
		case a.ids[k] < b.ids[k]:
			return -1
		case a.ids[k] > b.ids[k]:
			return 1
		}
	}
	switch {
	case a.n < b.n:
		return -1
	case a.n > b.n:
		return 1
	}
	return 0
}

// Overlaps reports whether one of a, b is a prefix of the other. LwM2M
// composite operations must reject a request whose paths overlap.
func Overlaps(a, b Path) bool { return a.HasPrefix(b) || b.HasPrefix(a) }
