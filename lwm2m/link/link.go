package link

import (
	"errors"
	"fmt"
	"strings"
)

// Limits applied by Parse.
const (
	// DefaultMaxLinks is the most links Parse accepts (a registration listing
	// every instance of a large client stays far below it).
	DefaultMaxLinks = 4096
	// MaxParams is the most parameters one link may carry.
	MaxParams = 64
	// MaxInput is the largest payload Parse accepts, in bytes.
	MaxInput = 1 << 20
)

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("link format: syntax error")

// ErrLimit is wrapped by errors for inputs over a size limit.
var ErrLimit = errors.New("link format: limit exceeded")

// SyntaxError reports where and why a payload was refused.
type SyntaxError struct {
	Offset int    // byte offset of the problem
	Reason string // what was expected
	Err    error  // ErrSyntax or ErrLimit
}

// Error implements error.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%v at byte %d: %s", e.Err, e.Offset, e.Reason)
}

// Unwrap returns ErrSyntax or ErrLimit.
func (e *SyntaxError) Unwrap() error { return e.Err }

// Param is one link parameter. A parameter may have no value ("obs"), a
// token value (ver=1.1) or a quoted-string value (rt="oma.lwm2m").
type Param struct {
	Name string
	// Value is the unescaped value.
	Value string
	// HasValue is false for a bare parameter name such as "obs".
	HasValue bool
	// Quoted records that the value was (or must be) written as a
	// quoted-string. Values that are not valid ptokens are always quoted.
	Quoted bool
}

// Link is one link-value: a target URI reference and its parameters, in order.
//
// The zero Link has an empty target and no parameters.
type Link struct {
	Target string
	Params []Param
}

// Get returns the value of the first parameter called name.
func (l Link) Get(name string) (string, bool) {
	for _, p := range l.Params {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// Has reports whether the link has a parameter called name.
func (l Link) Has(name string) bool {
	_, ok := l.Get(name)
	return ok
}

// Set replaces the first parameter called name (keeping its position) or
// appends a new one. Quoting follows the value (see Param.Quoted).
func (l *Link) Set(name, value string) {
	for k := range l.Params {
		if l.Params[k].Name == name {
			l.Params[k].Value, l.Params[k].HasValue = value, true
			return
		}
	}
	l.Params = append(l.Params, Param{Name: name, Value: value, HasValue: true})
}

// SetQuoted is Set with the value written as a quoted-string, as the LwM2M
// specification writes rt="oma.lwm2m" and uri="coap://...".
func (l *Link) SetQuoted(name, value string) {
	l.Set(name, value)
	for k := range l.Params {
		if l.Params[k].Name == name {
			l.Params[k].Quoted = true
			return
		}
	}
}

// Parse parses a CoRE link format payload with DefaultMaxLinks.
func Parse(data []byte) ([]Link, error) { return ParseN(data, DefaultMaxLinks) }

// ParseN parses a CoRE link format payload accepting at most maxLinks links.
func ParseN(data []byte, maxLinks int) ([]Link, error) {
	if len(data) > MaxInput {
		return nil, &SyntaxError{0, fmt.Sprintf("payload of %d bytes over %d", len(data), MaxInput), ErrLimit}
	}
	p := parser{s: data}
	p.ws()
	if p.eof() {
		return nil, nil
	}
	var links []Link
	for {
		if len(links) >= maxLinks {
			return nil, p.errLimit(fmt.Sprintf("more than %d links", maxLinks))
		}
		l, err := p.link()
		if err != nil {
			return nil, err
		}
		links = append(links, l)
		p.ws()
		if p.eof() {
			return links, nil
		}
		if !p.consume(',') {
			return nil, p.err("expected ',' or end of payload")
		}
		p.ws()
	}
}

type parser struct {
	s   []byte
	pos int
}

func (p *parser) eof() bool { return p.pos >= len(p.s) }

func (p *parser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.pos]
}

func (p *parser) consume(c byte) bool {
	if !p.eof() && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *parser) ws() {
	for !p.eof() {
		switch p.s[p.pos] {
		case ' ', '\t', '\r', '\n':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) err(reason string) error {
	return &SyntaxError{Offset: p.pos, Reason: reason, Err: ErrSyntax}
}

func (p *parser) errLimit(reason string) error {
	return &SyntaxError{Offset: p.pos, Reason: reason, Err: ErrLimit}
}

func (p *parser) link() (Link, error) {
	var l Link
	if !p.consume('<') {
		return l, p.err("expected '<'")
	}
	start := p.pos
	for !p.eof() && p.s[p.pos] != '>' {
		c := p.s[p.pos]
		if !isURIChar(c) {
			return l, p.err(fmt.Sprintf("invalid character 0x%02x in URI reference", c))
		}
		p.pos++
	}
	if !p.consume('>') {
		return l, p.err("unterminated '<'")
	}
	l.Target = string(p.s[start : p.pos-1])
	for {
		save := p.pos
		p.ws()
		if !p.consume(';') {
			p.pos = save
			return l, nil
		}
		p.ws()
		if len(l.Params) >= MaxParams {
			return l, p.errLimit(fmt.Sprintf("more than %d parameters", MaxParams))
		}
		pr, err := p.param()
		if err != nil {
			return l, err
		}
		l.Params = append(l.Params, pr)
	}
}

func (p *parser) param() (Param, error) {
	var pr Param
	start := p.pos
	for !p.eof() && isParmnameChar(p.s[p.pos]) {
		p.pos++
	}
	// RFC 8288 ext-name-star: parmname "*".
	if p.pos > start && p.peek() == '*' {
		p.pos++
	}
	if p.pos == start {
		return pr, p.err("expected parameter name")
	}
	pr.Name = string(p.s[start:p.pos])
	if !p.consume('=') {
		return pr, nil
	}
	pr.HasValue = true
	if p.consume('"') {
		var b strings.Builder
		for {
			if p.eof() {
				return pr, p.err("unterminated quoted-string")
			}
			c := p.s[p.pos]
			p.pos++
			switch {
			case c == '"':
				pr.Value, pr.Quoted = b.String(), true
				return pr, nil
			case c == '\\':
				if p.eof() {
					return pr, p.err("unterminated quoted-pair")
				}
				q := p.s[p.pos]
				if q < 0x20 && q != '\t' || q == 0x7f {
					return pr, p.err("control character in quoted-pair")
				}
				b.WriteByte(q)
				p.pos++
			case c < 0x20 && c != '\t' || c == 0x7f:
				p.pos--
				return pr, p.err("control character in quoted-string")
			default:
				b.WriteByte(c)
			}
		}
	}
	vstart := p.pos
	for !p.eof() && isPtokenChar(p.s[p.pos]) {
		p.pos++
	}
	if p.pos == vstart {
		return pr, p.err("expected parameter value")
	}
	pr.Value = string(p.s[vstart:p.pos])
	return pr, nil
}

// isURIChar accepts the RFC 3986 URI-reference characters (unreserved,
// reserved, '%').
func isURIChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~:/?#[]@!$&'()*+,;=%", c) >= 0
}

// isParmnameChar is RFC 5987 attr-char (without '*' and '%', which are
// handled by the ext-name-star rule).
func isParmnameChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}

// isPtokenChar is RFC 6690 ptokenchar.
func isPtokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'()*+-./:<=>?@[]^_`{|}~", c) >= 0
}

// Encode returns the link format text of links: links separated by ',',
// parameters by ';', with no whitespace. A value is written as a
// quoted-string when Param.Quoted is set, when it is empty, or when it is not
// a valid ptoken; quotes and backslashes in it are escaped.
func Encode(links []Link) []byte {
	var b []byte
	for k, l := range links {
		if k > 0 {
			b = append(b, ',')
		}
		b = AppendLink(b, l)
	}
	return b
}

// AppendLink appends the text of one link to b.
func AppendLink(b []byte, l Link) []byte {
	b = append(b, '<')
	b = append(b, l.Target...)
	b = append(b, '>')
	for _, p := range l.Params {
		b = append(b, ';')
		b = append(b, p.Name...)
		if !p.HasValue && p.Value == "" {
			continue
		}
		b = append(b, '=')
		if !p.Quoted && isPtoken(p.Value) {
			b = append(b, p.Value...)
			continue
		}
		b = append(b, '"')
		for i := 0; i < len(p.Value); i++ {
			c := p.Value[i]
			if c == '"' || c == '\\' {
				b = append(b, '\\')
			}
			b = append(b, c)
		}
		b = append(b, '"')
	}
	return b
}

func isPtoken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isPtokenChar(s[i]) {
			return false
		}
	}
	return true
}

// Validate checks that l can be encoded and parsed back unchanged: a target
// of URI characters without '>', parameter names of RFC 5987 attr-chars,
// values without control characters.
func (l Link) Validate() error {
	for i := 0; i < len(l.Target); i++ {
		if c := l.Target[i]; !isURIChar(c) || c == '>' {
			return fmt.Errorf("%w: invalid character 0x%02x in target", ErrSyntax, c)
		}
	}
	if len(l.Params) > MaxParams {
		return fmt.Errorf("%w: more than %d parameters", ErrLimit, MaxParams)
	}
	for _, p := range l.Params {
		if p.Name == "" {
			return fmt.Errorf("%w: empty parameter name", ErrSyntax)
		}
		for i := 0; i < len(p.Name); i++ {
			if c := p.Name[i]; !isParmnameChar(c) && (c != '*' || i != len(p.Name)-1 || i == 0) {
				return fmt.Errorf("%w: invalid character 0x%02x in parameter name", ErrSyntax, c)
			}
		}
		for i := 0; i < len(p.Value); i++ {
			if c := p.Value[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return fmt.Errorf("%w: control character in value of %s", ErrSyntax, p.Name)
			}
		}
	}
	return nil
}
