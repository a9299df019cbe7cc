package registry

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors wrapped by *ParamError. A server maps them to CoAP codes:
// ErrBadRequest → 4.00, ErrUnsupportedVersion → 4.12 Precondition Failed
// (Core 1.1 §6.2.1: the server does not support the client's LwM2M version),
// ErrUnsupportedFormat → 4.15, ErrTooLarge → 4.13 Request Entity Too Large.
var (
	ErrBadRequest         = errors.New("lwm2m registration: bad request")
	ErrUnsupportedVersion = errors.New("lwm2m registration: unsupported LwM2M version")
	ErrUnsupportedFormat  = errors.New("lwm2m registration: unsupported content format")
	ErrTooLarge           = errors.New("lwm2m registration: object list too large")
)

// ParamError describes a rejected Register or Update request.
type ParamError struct {
	Param  string // "ep", "lt", "lwm2m", "b", "sms", "Q", "payload", ...
	Reason string
	Err    error // one of the sentinels above
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("%v: %s: %s", e.Err, e.Param, e.Reason)
}

// Unwrap returns the sentinel error.
func (e *ParamError) Unwrap() error { return e.Err }

func bad(param, format string, args ...any) *ParamError {
	if param == "" {
		param = "(empty query parameter)" // "?&" or "?=x"
	}
	return &ParamError{Param: param, Reason: fmt.Sprintf(format, args...), Err: ErrBadRequest}
}

// Limits bounding what a client may register.
const (
	MaxEndpointLen = 256  // bytes of "ep"
	MaxObjectLinks = 1024 // entries of the object list
	MaxAltPathLen  = 64   // bytes of the alternate root path
	// MaxLinkPayload bounds the object list payload of a Register or
	// Update in bytes (MaxObjectLinks links of the longest form fit in
	// half of it); a larger one is refused with ErrTooLarge before it is
	// parsed.
	MaxLinkPayload = 64 << 10
	// MaxAttrLen bounds one link attribute value in the object list
	// ("ver", "ct", "rt" and whatever else a client sends), in bytes.
	MaxAttrLen = 255
	// DefaultLifetime is the lifetime when "lt" is absent (Core §6.2.1).
	DefaultLifetime = 86400
)

// RegisterParams are the parameters of a Register request (Core 1.1/1.2
// §6.2.1 Table "Register operation parameters").
type RegisterParams struct {
	Endpoint string  // "ep"; may be empty in 1.1+ when the server derives it from the identity
	Lifetime uint32  // "lt", DefaultLifetime when absent
	Version  Version // "lwm2m"; 1.0 when absent (1.0 clients)
	Binding  Binding // "b"; U when absent
	Queue    bool    // "Q" (1.1+) or the Q of a 1.0 binding
	SMS      string  // "sms", "" when absent
	// Domain is "d", a CoRE Resource Directory parameter some clients send;
	// recorded for logs, not interpreted.
	Domain  string
	AltPath string // "/" or the alternate root path
	Formats Formats
	Objects []ObjectLink
	// Ignored lists query parameters that are not part of the operation
	// and were skipped (for a counted log line).
	Ignored []string
	// LenientBinding is set when a 1.1/1.2 "b" carried the 1.0 queue
	// letter Q ("UQS", "UQ") and ParseOptions.LenientBinding accepted it as
	// queue mode.
	LenientBinding bool
}

// ParseOptions relax the Register and Update parsers for what deployed
// clients send. The zero value is strict (the letter of the
// specification).
type ParseOptions struct {
	// LenientBinding accepts the LwM2M 1.0 spelling of queue mode inside
	// a 1.1 or 1.2 binding ("b=UQS", "b=UQ", "b=SQ": a Q after the
	// letters) as the Q parameter. Real 1.1 clients (and Wakaama's server,
	// which accepts them) send it; the parsed params report it in
	// LenientBinding so the server can count it.
	LenientBinding bool
}

// UpdateParams are the parameters of an Update request (Core §6.2.2). A nil
// field was absent and leaves the registration unchanged.
type UpdateParams struct {
	Lifetime *uint32
	Binding  *Binding
	Queue    *bool // only from a 1.0 binding ("UQ")
	SMS      *string
	// Objects is non-nil when the Update carried an object list; AltPath
	// and Formats come with it.
	Objects []ObjectLink
	AltPath string
	Formats Formats
	Ignored []string
	// LenientBinding: as in RegisterParams.
	LenientBinding bool
}

// splitQuery splits one Uri-Query option value "k=v" (or "k").
func splitQuery(q string) (key, val string, hasVal bool) {
	k, v, ok := strings.Cut(q, "=")
	return k, v, ok
}

// ParseRegister parses the Uri-Query option values and the CoRE link-format
// payload of a Register request. The payload is the object list; an empty
// payload is accepted (a client with no objects to announce beyond the
// mandatory ones is malformed, but the object list is the server's business).
func ParseRegister(queries []string, payload []byte) (*RegisterParams, error) {
	return ParseRegisterWith(ParseOptions{}, queries, payload)
}

// ParseRegisterWith is ParseRegister with the relaxations of o.
func ParseRegisterWith(o ParseOptions, queries []string, payload []byte) (*RegisterParams, error) {
	p := &RegisterParams{Lifetime: DefaultLifetime, Version: V1_0, Binding: BindingU, AltPath: "/"}
	seen := map[string]bool{}
	var rawBinding string
	var haveBinding, haveQ bool
	for _, q := range queries {
		k, v, hasVal := splitQuery(q)
		if seen[k] {
			return nil, bad(k, "repeated parameter")
		}
		seen[k] = true
		switch k {
		case "ep":
			if err := checkEndpoint(v); err != nil {
				return nil, err
			}
			p.Endpoint = v
		case "lt":
			lt, err := parseLifetime(v)
			if err != nil {
				return nil, err
			}
			p.Lifetime = lt
		case "lwm2m":
			ver, err := ParseVersion(v)
			if err != nil {
				return nil, err
			}
			p.Version = ver
		case "b":
			rawBinding, haveBinding = v, true
		case "sms":
			if err := checkMSISDN(v); err != nil {
				return nil, err
			}
			p.SMS = v
		case "Q":
			if hasVal {
				return nil, bad("Q", "Q takes no value")
			}
			haveQ = true
		case "d":
			if len(v) > MaxEndpointLen || !utf8.ValidString(v) {
				return nil, bad("d", "invalid domain")
			}
			p.Domain = v
		default:
			if len(p.Ignored) < 8 {
				p.Ignored = append(p.Ignored, truncate(q, 32))
			}
		}
	}
	if !seen["ep"] && p.Version == V1_0 {
		return nil, bad("ep", "missing Endpoint Client Name")
	}
	if haveQ {
		if p.Version == V1_0 {
			return nil, bad("Q", "the Q parameter is LwM2M 1.1 and later; 1.0 puts Q in the binding")
		}
		p.Queue = true
	}
	if haveBinding {
		b, q, lenient, err := parseBindingWith(o, p.Version, rawBinding)
		if err != nil {
			return nil, err
		}
		p.Binding, p.LenientBinding = b, lenient
		if q {
			p.Queue = true
		}
	}
	if err := p.parseObjects(payload); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *RegisterParams) parseObjects(payload []byte) error {
	if len(payload) == 0 {
		return nil
	}
	ol, err := ParseObjectLinks(payload)
	if err != nil {
		return err
	}
	p.Objects, p.AltPath, p.Formats = ol.Objects, ol.AltPath, ol.Formats
	return nil
}

// ParseUpdate parses the Uri-Query values and payload of an Update for a
// client registered with version v.
func ParseUpdate(v Version, queries []string, payload []byte) (*UpdateParams, error) {
	return ParseUpdateWith(ParseOptions{}, v, queries, payload)
}

// ParseUpdateWith is ParseUpdate with the relaxations of o. A lenient
// 1.1/1.2 binding with Q turns queue mode on; without Q it leaves it as
// it was (1.1 has no way to turn it off in an Update).
func ParseUpdateWith(o ParseOptions, v Version, queries []string, payload []byte) (*UpdateParams, error) {
	u := &UpdateParams{}
	seen := map[string]bool{}
	for _, q := range queries {
		k, val, _ := splitQuery(q)
		if seen[k] {
			return nil, bad(k, "repeated parameter")
		}
		seen[k] = true
		switch k {
		case "lt":
			lt, err := parseLifetime(val)
			if err != nil {
				return nil, err
			}
			u.Lifetime = &lt
		case "b":
			b, queue, lenient, err := parseBindingWith(o, v, val)
			if err != nil {
				return nil, err
			}
			u.Binding = &b
			if v == V1_0 || lenient {
				u.Queue = &queue
			}
			u.LenientBinding = lenient
		case "sms":
			if err := checkMSISDN(val); err != nil {
				return nil, err
			}
			s := val
			u.SMS = &s
		default:
			if len(u.Ignored) < 8 {
				u.Ignored = append(u.Ignored, truncate(q, 32))
			}
		}
	}
	if len(payload) > 0 {
		ol, err := ParseObjectLinks(payload)
		if err != nil {
			return nil, err
		}
		u.Objects, u.AltPath, u.Formats = ol.Objects, ol.AltPath, ol.Formats
		if u.Objects == nil {
			u.Objects = []ObjectLink{}
		}
	}
	return u, nil
}

// ParseVersion parses the "lwm2m" parameter: "1.0", "1.1" or "1.2". A
// well-formed but unknown version ("1.3", "2.0") wraps ErrUnsupportedVersion.
func ParseVersion(s string) (Version, error) {
	switch s {
	case "1.0":
		return V1_0, nil
	case "1.1":
		return V1_1, nil
	case "1.2":
		return V1_2, nil
	}
	maj, min, ok := strings.Cut(s, ".")
	if ok && isDigits(maj) && isDigits(min) && len(maj) <= 3 && len(min) <= 3 {
		return 0, &ParamError{Param: "lwm2m", Reason: "version " + s + " not supported", Err: ErrUnsupportedVersion}
	}
	return 0, bad("lwm2m", "malformed version %q", truncate(s, 16))
}

// ParseBinding parses "b" for a client of version v. LwM2M 1.0 allows exactly
// U, UQ, S, SQ, US and UQS (queue mode inside the binding); 1.1 and 1.2 allow
// any non-empty set of the letters U, T, S, N, each at most once, queue mode
// being the separate Q parameter.
func ParseBinding(v Version, s string) (b Binding, queue bool, err error) {
	if v == V1_0 {
		switch s {
		case "U":
			return BindingU, false, nil
		case "UQ":
			return BindingU, true, nil
		case "S":
			return BindingS, false, nil
		case "SQ":
			return BindingS, true, nil
		case "US":
			return BindingU | BindingS, false, nil
		case "UQS":
			return BindingU | BindingS, true, nil
		}
		return 0, false, bad("b", "LwM2M 1.0 binding %q is not one of U, UQ, S, SQ, US, UQS", truncate(s, 16))
	}
	if s == "" {
		return 0, false, bad("b", "empty binding")
	}
	for _, c := range []byte(s) {
		var bit Binding
		switch c {
		case 'U':
			bit = BindingU
		case 'T':
			bit = BindingT
		case 'S':
			bit = BindingS
		case 'N':
			bit = BindingN
		case 'Q':
			return 0, false, bad("b", "Q is not a binding in LwM2M %s; use the Q parameter", v)
		default:
			return 0, false, bad("b", "unknown binding letter %q", string(rune(c)))
		}
		if b&bit != 0 {
			return 0, false, bad("b", "binding letter %q repeated", string(rune(c)))
		}
		b |= bit
	}
	return b, false, nil
}

// parseBindingWith is ParseBinding, and with o.LenientBinding a 1.1/1.2
// binding holding one Q (the 1.0 spelling of queue mode) is read as its
// other letters plus queue mode; lenient reports that it happened.
func parseBindingWith(o ParseOptions, v Version, s string) (b Binding, queue, lenient bool, err error) {
	b, queue, err = ParseBinding(v, s)
	if err == nil || !o.LenientBinding || v == V1_0 || strings.Count(s, "Q") != 1 {
		return b, queue, false, err
	}
	rest := strings.Replace(s, "Q", "", 1)
	b, _, err2 := ParseBinding(v, rest)
	if err2 != nil {
		return 0, false, false, err // the strict reason is the clearer one
	}
	return b, true, true, nil
}

func parseLifetime(s string) (uint32, error) {
	if !isDigits(s) || len(s) > 10 {
		return 0, bad("lt", "lifetime %q is not an unsigned integer", truncate(s, 16))
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, bad("lt", "lifetime %q out of range", truncate(s, 16))
	}
	if n == 0 {
		return 0, bad("lt", "lifetime must be positive")
	}
	return uint32(n), nil
}

// checkEndpoint applies the server's rules for an Endpoint Client Name:
// non-empty, at most MaxEndpointLen bytes, valid UTF-8, no control
// characters and no '/' (it names a resource in the server's API).
func checkEndpoint(s string) error {
	if s == "" {
		return bad("ep", "empty Endpoint Client Name")
	}
	if len(s) > MaxEndpointLen {
		return bad("ep", "Endpoint Client Name longer than %d bytes", MaxEndpointLen)
	}
	if !utf8.ValidString(s) {
		return bad("ep", "Endpoint Client Name is not UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '/' {
			return bad("ep", "Endpoint Client Name contains %q", r)
		}
	}
	return nil
}

// checkMSISDN accepts an E.164 MSISDN: an optional '+' and 1 to 15 digits.
func checkMSISDN(s string) error {
	d := strings.TrimPrefix(s, "+")
	if d == "" || len(d) > 15 || !isDigits(d) {
		return bad("sms", "%q is not an MSISDN", truncate(s, 20))
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
