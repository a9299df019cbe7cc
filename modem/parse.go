package modem

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/m2mbearer/m2mbearer/modem/at"
)

// This file holds the parsers of AT information responses and unsolicited
// result codes (URCs) of 3GPP TS 27.005 and TS 27.007 that the driver uses.
// Each takes one line (without CR LF) and returns a typed value or an error
// wrapping ErrBadResponse; none panics on any input (see the fuzz targets).
//
// They are lenient where real modems are sloppy (the field corpus of issue
// 13 holds the lines): spaces around fields, missing spaces after the
// colon, zero-padded numbers, unquoted strings, a broken or unterminated
// quote, extra trailing fields, a field left empty. A malformed field that
// the caller can do without degrades to its "unknown" value (an empty
// <stat> of +CMGR becomes StatUnknown, a garbled <AcT> -1); only the
// fields a result cannot be used without (the index of +CMGL, a <length>,
// the <stat> of a registration) make a line fail.

// maxLine bounds the lines the parsers accept; longer lines are refused.
const maxLine = 4096

// splitParams splits the parameter part of an information response at
// commas outside double quotes, trims spaces and removes the quotes. A
// quote left open (mismatched quotes, a truncated line) does not fail the
// line: the quotes are then ignored and the text split at every comma, so
// that the fields before the break stay readable.
func splitParams(s string) ([]string, error) {
	if len(s) > maxLine {
		return nil, fmt.Errorf("%w: line of %d bytes", ErrBadResponse, len(s))
	}
	out, ok := splitQuoted(s)
	if !ok {
		out = strings.Split(strings.ReplaceAll(s, `"`, ""), ",")
		for i := range out {
			out[i] = strings.TrimSpace(out[i])
		}
	}
	return out, nil
}

func splitQuoted(s string) ([]string, bool) {
	var out []string
	var b strings.Builder
	inQ := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQ = !inQ
		case c == ',' && !inQ:
			out = append(out, strings.TrimSpace(b.String()))
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	out = append(out, strings.TrimSpace(b.String()))
	return out, !inQ
}

// params checks the prefix (e.g. "+CMTI:") and splits what follows.
func params(line, prefix string, min, max int) ([]string, error) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, prefix) {
		return nil, fmt.Errorf("%w: want %s, got %q", ErrBadResponse, prefix, clip(line))
	}
	p, err := splitParams(line[len(prefix):])
	if err != nil {
		return nil, err
	}
	if len(p) < min || len(p) > max {
		return nil, fmt.Errorf("%w: %s with %d parameters", ErrBadResponse, prefix, len(p))
	}
	return p, nil
}

// atoiRange parses a decimal integer (leading zeros allowed) in [lo, hi].
func atoiRange(s, what string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s %q not in [%d, %d]", ErrBadResponse, what, clip(s), lo, hi)
	}
	return n, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// maxTPDU is the largest TPDU length a modem may announce (TS 23.040: an
// SMS-DELIVER is at most 164 octets; 232 leaves room for odd firmwares).
const maxTPDU = 232

// StoredIndication is a +CMTI or +CDSI URC: a message was stored at Index
// in memory Storage ("SM", "ME", "MT", "SR", ...).
type StoredIndication struct {
	Storage string
	Index   int
}

// ParseCMTI parses `+CMTI: <mem>,<index>` (TS 27.005 §3.4.1).
func ParseCMTI(line string) (StoredIndication, error) { return parseStored(line, "+CMTI:") }

// ParseCDSI parses `+CDSI: <mem>,<index>` (TS 27.005 §3.4.1).
func ParseCDSI(line string) (StoredIndication, error) { return parseStored(line, "+CDSI:") }

func parseStored(line, prefix string) (StoredIndication, error) {
	p, err := params(line, prefix, 2, 2)
	if err != nil {
		return StoredIndication{}, err
	}
	mem := strings.ToUpper(p[0])
	if mem == "" || len(mem) > 8 || !printable(mem) {
		return StoredIndication{}, fmt.Errorf("%w: %s storage %q", ErrBadResponse, prefix, clip(p[0]))
	}
	idx, err := atoiRange(p[1], "index", 0, 65535)
	if err != nil {
		return StoredIndication{}, err
	}
	return StoredIndication{Storage: mem, Index: idx}, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// ParseCMT parses the header line of a +CMT URC in PDU mode,
// `+CMT: [<alpha>],<length>` (TS 27.005 §3.4.1), and returns <length>, the
// TPDU length in octets (the SMSC address is not counted). A header
// without the <alpha> field (`+CMT: 22`) is accepted.
func ParseCMT(line string) (int, error) {
	p, err := params(line, "+CMT:", 1, 2)
	if err != nil {
		return 0, err
	}
	return atoiRange(p[len(p)-1], "+CMT length", 1, maxTPDU)
}

// ParseCDS parses the header line of a +CDS URC in PDU mode,
// `+CDS: <length>`, and returns the TPDU length.
func ParseCDS(line string) (int, error) {
	p, err := params(line, "+CDS:", 1, 1)
	if err != nil {
		return 0, err
	}
	return atoiRange(p[0], "+CDS length", 1, maxTPDU)
}

// MessageStat is the <stat> of a stored message in PDU mode (TS 27.005 §3.1).
type MessageStat int

// Message status values.
const (
	// StatUnknown: the modem left <stat> empty or sent a value outside the
	// specification (ZTE prints "+CMGR: ,,27" for stored status reports).
	// What the message is must then be told from its TPDU.
	StatUnknown   MessageStat = -1
	StatRecUnread MessageStat = 0
	StatRecRead   MessageStat = 1
	StatStoUnsent MessageStat = 2
	StatStoSent   MessageStat = 3
)

// Received reports whether the stored message was received (not one of
// ours waiting to be sent). StatUnknown is not: see MaybeReceived.
func (s MessageStat) Received() bool { return s == StatRecUnread || s == StatRecRead }

// MaybeReceived reports whether the message may be a received one: a
// received <stat>, or an unknown one.
func (s MessageStat) MaybeReceived() bool { return s.Received() || s == StatUnknown }

func (s MessageStat) String() string {
	switch s {
	case StatRecUnread:
		return "REC UNREAD"
	case StatRecRead:
		return "REC READ"
	case StatStoUnsent:
		return "STO UNSENT"
	case StatStoSent:
		return "STO SENT"
	}
	return "?"
}

var statText = map[string]MessageStat{
	"REC UNREAD": StatRecUnread, "REC READ": StatRecRead,
	"STO UNSENT": StatStoUnsent, "STO SENT": StatStoSent,
}

// parseStat degrades: an empty or unknown value is StatUnknown.
func parseStat(s string) MessageStat {
	if v, ok := statText[strings.ToUpper(strings.TrimSpace(s))]; ok {
		return v
	}
	n, err := atoiRange(s, "stat", 0, 3)
	if err != nil {
		return StatUnknown
	}
	return MessageStat(n)
}

// CMGRHeader is the header of a +CMGR response in PDU mode.
type CMGRHeader struct {
	Stat   MessageStat
	Length int
}

// ParseCMGR parses the +CMGR header line in PDU mode, `+CMGR: <stat>,
// [<alpha>],<length>` (TS 27.005 §3.4.3), and the forms real modems and
// phones print instead: `<stat>,<length>` (no <alpha> field), `<length>`
// alone, `<index>,<stat>,[<alpha>],<length>` (old Siemens phones repeat
// the index; gammu tests/at-sms/26.dump), and an empty <stat> (ZTE status
// reports). <length> must be an integer; <stat> degrades to StatUnknown.
func ParseCMGR(line string) (CMGRHeader, error) {
	p, err := params(line, "+CMGR:", 1, 4)
	if err != nil {
		return CMGRHeader{}, err
	}
	n, err := atoiRange(p[len(p)-1], "+CMGR length", 1, maxTPDU)
	if err != nil {
		return CMGRHeader{}, err
	}
	h := CMGRHeader{Stat: StatUnknown, Length: n}
	switch len(p) {
	case 2, 3:
		h.Stat = parseStat(p[0])
	case 4:
		h.Stat = parseStat(p[1])
	}
	return h, nil
}

// CMGLHeader is one entry header of a +CMGL response in PDU mode:
// `+CMGL: <index>,<stat>,[<alpha>],<length>`.
type CMGLHeader struct {
	Index  int
	Stat   MessageStat
	Length int
}

// ParseCMGL parses a +CMGL entry header line (TS 27.005 §3.4.2), also
// without the <alpha> field (`<index>,<stat>,<length>`, Pantech). <index>
// and <length> must be integers; <stat> degrades to StatUnknown. A
// text-mode line (five or more fields) is refused.
func ParseCMGL(line string) (CMGLHeader, error) {
	p, err := params(line, "+CMGL:", 3, 4)
	if err != nil {
		return CMGLHeader{}, err
	}
	idx, err := atoiRange(p[0], "index", 0, 65535)
	if err != nil {
		return CMGLHeader{}, err
	}
	n, err := atoiRange(p[len(p)-1], "+CMGL length", 1, maxTPDU)
	if err != nil {
		return CMGLHeader{}, err
	}
	return CMGLHeader{Index: idx, Stat: parseStat(p[1]), Length: n}, nil
}

// ParseCMGS parses `+CMGS: <mr>[,<ackpdu>]` (TS 27.005 §3.5.1) and returns
// the TP-Message-Reference.
func ParseCMGS(line string) (int, error) {
	p, err := params(line, "+CMGS:", 1, 2)
	if err != nil {
		return 0, err
	}
	return atoiRange(p[0], "message reference", 0, 255)
}

// Signal is a +CSQ result (TS 27.007 §8.5).
//
// The zero Signal is RSSI 0 (−113 dBm or less) with BER 0, a valid reading.
type Signal struct {
	RSSI int // 0..31, 99 = unknown
	BER  int // 0..7, 99 = unknown
}

// DBm returns the received signal strength in dBm (-113 + 2·RSSI) and
// false when unknown.
func (s Signal) DBm() (int, bool) {
	if s.RSSI < 0 || s.RSSI > 31 {
		return 0, false
	}
	return -113 + 2*s.RSSI, true
}

// ParseCSQ parses `+CSQ: <rssi>,<ber>`. A value outside its range
// degrades to 99 (unknown); the line fails only when neither is readable.
func ParseCSQ(line string) (Signal, error) {
	p, err := params(line, "+CSQ:", 2, 2)
	if err != nil {
		return Signal{}, err
	}
	s := Signal{RSSI: 99, BER: 99}
	r, rerr := strconv.Atoi(p[0])
	if rerr == nil && (r >= 0 && r <= 31 || r == 99) {
		s.RSSI = r
	}
	b, berr := strconv.Atoi(p[1])
	if berr == nil && (b >= 0 && b <= 7 || b == 99) {
		s.BER = b
	}
	if rerr != nil && berr != nil {
		return Signal{}, fmt.Errorf("%w: +CSQ %q", ErrBadResponse, clip(line))
	}
	return s, nil
}

// RegStat is a network registration state (TS 27.007 §7.2, §10.1.22 <stat>).
type RegStat int

// Registration states.
const (
	RegNotSearching    RegStat = 0
	RegHome            RegStat = 1
	RegSearching       RegStat = 2
	RegDenied          RegStat = 3
	RegUnknown         RegStat = 4
	RegRoaming         RegStat = 5
	RegSMSOnlyHome     RegStat = 6
	RegSMSOnlyRoam     RegStat = 7
	RegEmergencyOnly   RegStat = 8
	RegCSFBNotPrefHome RegStat = 9  // +CEREG: registered, "CSFB not preferred", home
	RegCSFBNotPrefRoam RegStat = 10 // +CEREG: registered, "CSFB not preferred", roaming
)

// Registered reports whether the state lets the modem send SMS (home or
// roaming, including "SMS only" and "CSFB not preferred" registrations).
func (s RegStat) Registered() bool {
	switch s {
	case RegHome, RegRoaming, RegSMSOnlyHome, RegSMSOnlyRoam, RegCSFBNotPrefHome, RegCSFBNotPrefRoam:
		return true
	}
	return false
}

// Registration is a +CREG/+CGREG/+CEREG/+C5GREG read response or URC.
type Registration struct {
	Stat RegStat
	LAC  string // location or tracking area code, hex as sent, if given
	CI   string // cell id, hex as sent, if given
	AcT  int    // access technology, -1 if not given or unreadable
}

// ParseCREG parses +CREG, +CGREG, +CEREG or +C5GREG lines, in both the
// read-command form `+CREG: <n>,<stat>[,<lac>,<ci>[,<AcT>...]]` (fromRead)
// and the URC form `+CREG: <stat>[,<lac>,<ci>[,<AcT>...]]`. Besides the
// standard forms it reads what the field corpus shows real modems send:
// unquoted, space-padded and zero-padded fields, mismatched quotes, extra
// fields, a routing area code put between <lac> and <ci> (Novatel and
// other LTE modems: `+CEREG: 2,1, 1F00, 20 ,79D903 ,7`), and a URC that
// repeats <n> (Altair: `+CEREG: 1, 2, 0001, 00000100, 7`). <stat> must be
// readable; a garbled <AcT> is -1.
func ParseCREG(line string, fromRead bool) (Registration, error) {
	line = strings.TrimSpace(line)
	var prefix string
	for _, pf := range []string{"+CREG:", "+CGREG:", "+CEREG:", "+C5GREG:"} {
		if strings.HasPrefix(line, pf) {
			prefix = pf
			break
		}
	}
	if prefix == "" {
		return Registration{}, fmt.Errorf("%w: not a registration line: %q", ErrBadResponse, clip(line))
	}
	p, err := params(line, prefix, 1, 16)
	if err != nil {
		return Registration{}, err
	}
	// A URC with five fields is not a standard form for +CREG and +CEREG
	// (stat[,lac,ci[,AcT[,cause_type,reject_cause]]]: 1, 3, 4 or 6): it
	// carries <n> first, as Altair modems send it.
	if !fromRead && len(p) == 5 && (prefix == "+CEREG:" || prefix == "+CREG:") {
		if _, err := atoiRange(p[0], "<n>", 0, 5); err == nil {
			fromRead = true
		}
	}
	if fromRead {
		if len(p) < 2 {
			return Registration{}, fmt.Errorf("%w: %s read response with %d parameters", ErrBadResponse, prefix, len(p))
		}
		if _, err := atoiRange(p[0], "<n>", 0, 5); err != nil {
			return Registration{}, err
		}
		p = p[1:]
	}
	st, err := atoiRange(p[0], "<stat>", 0, 11)
	if err != nil {
		return Registration{}, err
	}
	r := Registration{Stat: RegStat(st), AcT: -1}
	rest := p[1:]
	// A routing area code between <lac> and <ci>: a field of at most two
	// hex digits followed by a longer one, where the standard form has
	// <ci> and then <AcT> (a small integer).
	if len(rest) >= 4 && len(rest[1]) <= 2 && len(rest[2]) > len(rest[1]) && at.IsHex(rest[1]) && at.IsHex(rest[2]) {
		if _, err := atoiRange(rest[3], "<AcT>", 0, 15); err == nil {
			rest = append([]string{rest[0]}, rest[2:]...)
		}
	}
	if len(rest) >= 1 {
		r.LAC = regField(rest[0])
	}
	if len(rest) >= 2 {
		r.CI = regField(rest[1])
	}
	if len(rest) >= 3 && rest[2] != "" {
		if a, err := atoiRange(rest[2], "<AcT>", 0, 15); err == nil {
			r.AcT = a
		}
	}
	return r, nil
}

// regField keeps a <lac>/<ci> as sent (trimmed, without quotes), or ""
// when it is not printable or too long to be one.
func regField(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 16 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return ""
		}
	}
	return s
}

// ParseCNUM parses `+CNUM: [<alpha>],<number>,<type>[,...]` (TS 27.007
// §7.1) and returns the number, with a leading '+' for international
// numbers (type 145). The alpha may be unquoted; a missing <type> is
// accepted.
func ParseCNUM(line string) (string, error) {
	p, err := params(line, "+CNUM:", 2, 6)
	if err != nil {
		return "", err
	}
	num := p[1]
	typ := -1
	if len(p) >= 3 {
		if t, err := atoiRange(p[2], "number type", 0, 255); err == nil {
			typ = t
		}
	}
	if num == "" || len(num) > 24 {
		return "", fmt.Errorf("%w: +CNUM number %q", ErrBadResponse, clip(num))
	}
	digits := strings.TrimPrefix(num, "+")
	if digits == "" {
		return "", fmt.Errorf("%w: +CNUM number %q", ErrBadResponse, clip(num))
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if (c < '0' || c > '9') && c != '*' && c != '#' {
			return "", fmt.Errorf("%w: +CNUM number %q", ErrBadResponse, clip(num))
		}
	}
	if typ == 145 && !strings.HasPrefix(num, "+") {
		num = "+" + num
	}
	return num, nil
}

// StorageUse is one memory of a +CPMS response: used and total slots.
//
// The zero StorageUse has no slots and is not Full.
type StorageUse struct {
	Mem   string // empty in the set-command response, which has no names
	Used  int
	Total int
}

// Full reports whether no slot is free.
func (s StorageUse) Full() bool { return s.Total > 0 && s.Used >= s.Total }

// ParseCPMS parses the +CPMS read response
// `+CPMS: <mem1>,<used1>,<total1>,<mem2>,...` or the set response
// `+CPMS: <used1>,<total1>,<used2>,<total2>...` (TS 27.005 §3.2.2), with
// one, two or three memories. A memory whose numbers are unreadable is
// left out; a line with none readable (a phone without storage answers
// `+CPMS: ,,,,,,,,`), or a test-command answer with parenthesised lists,
// is refused.
func ParseCPMS(line string) ([]StorageUse, error) {
	if strings.Contains(line, "(") {
		return nil, fmt.Errorf("%w: +CPMS test response, not a read response: %q", ErrBadResponse, clip(line))
	}
	p, err := params(line, "+CPMS:", 2, 9)
	if err != nil {
		return nil, err
	}
	var out []StorageUse
	num := func(s string) (int, bool) {
		n, err := atoiRange(s, "count", 0, 65535)
		return n, err == nil
	}
	if _, err := strconv.Atoi(p[0]); err == nil && len(p)%2 == 0 {
		for i := 0; i+1 < len(p); i += 2 {
			u, ok1 := num(p[i])
			t, ok2 := num(p[i+1])
			if ok1 && ok2 {
				out = append(out, StorageUse{Used: u, Total: t})
			}
		}
	} else if len(p)%3 == 0 {
		for i := 0; i+2 < len(p); i += 3 {
			mem := strings.ToUpper(p[i])
			u, ok1 := num(p[i+1])
			t, ok2 := num(p[i+2])
			_, numeric := strconv.Atoi(mem)
			if mem != "" && len(mem) <= 8 && printable(mem) && numeric != nil && ok1 && ok2 {
				out = append(out, StorageUse{Mem: mem, Used: u, Total: t})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no readable memory in %q", ErrBadResponse, clip(line))
	}
	return out, nil
}

// ParseCSCA parses `+CSCA: <sca>[,<tosca>]` (TS 27.005 §3.3.1) and returns
// the SMSC number, with a leading '+' for international numbers (type 145).
// A number sent as UCS2 hex (under +CSCS="UCS2": "002B0039...") is decoded.
// An empty number is refused.
func ParseCSCA(line string) (string, error) {
	p, err := params(line, "+CSCA:", 1, 2)
	if err != nil {
		return "", err
	}
	num := decodeUCS2Digits(p[0])
	typ := -1
	if len(p) == 2 {
		if t, err := atoiRange(p[1], "type", 0, 255); err == nil {
			typ = t
		}
	}
	digits := strings.TrimPrefix(num, "+")
	if digits == "" || len(num) > 24 {
		return "", fmt.Errorf("%w: +CSCA number %q", ErrBadResponse, clip(p[0]))
	}
	for i := 0; i < len(digits); i++ {
		if c := digits[i]; (c < '0' || c > '9') && c != '*' && c != '#' {
			return "", fmt.Errorf("%w: +CSCA number %q", ErrBadResponse, clip(p[0]))
		}
	}
	if typ == 145 && !strings.HasPrefix(num, "+") {
		num = "+" + num
	}
	return num, nil
}

// decodeUCS2Digits turns "002B0034..." (UCS2 hex of ASCII) into "+4...";
// anything else is returned unchanged.
func decodeUCS2Digits(s string) string {
	if len(s) < 8 || len(s)%4 != 0 || !at.IsHex(s) || strings.ContainsAny(s, "\" ") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if s[i:i+2] != "00" {
			return s
		}
		v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
		if err != nil || v < 0x20 || v > 0x7e {
			return s
		}
		b.WriteByte(byte(v))
	}
	return b.String()
}
