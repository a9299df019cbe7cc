package modem

import (
	"fmt"
	"strconv"
	"strings"
)

// This file holds the parsers of AT information responses and unsolicited
// result codes (URCs) of 3GPP TS 27.005 and TS 27.007 that the driver uses.
// Each takes one line (without CR LF) and returns a typed value or an error
// wrapping ErrBadResponse; none panics on any input (see the fuzz targets).

// maxLine bounds the lines the parsers accept; longer lines are refused.
const maxLine = 4096

// splitParams splits the parameter part of an information response at
// commas that are not inside double quotes, trims spaces and removes the
// quotes of quoted values. An unterminated quote is an error.
func splitParams(s string) ([]string, error) {
	if len(s) > maxLine {
		return nil, fmt.Errorf("%w: line of %d bytes", ErrBadResponse, len(s))
	}
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
	if inQ {
		return nil, fmt.Errorf("%w: unterminated quote in %q", ErrBadResponse, s)
	}
	out = append(out, strings.TrimSpace(b.String()))
	return out, nil
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
	if p[0] == "" || len(p[0]) > 8 {
		return StoredIndication{}, fmt.Errorf("%w: %s storage %q", ErrBadResponse, prefix, clip(p[0]))
	}
	idx, err := atoiRange(p[1], "index", 0, 65535)
	if err != nil {
		return StoredIndication{}, err
	}
	return StoredIndication{Storage: p[0], Index: idx}, nil
}

// ParseCMT parses the header line of a +CMT URC in PDU mode,
// `+CMT: [<alpha>],<length>` (TS 27.005 §3.4.1), and returns <length>, the
// TPDU length in octets (the SMSC address is not counted).
func ParseCMT(line string) (int, error) {
	p, err := params(line, "+CMT:", 2, 2)
	if err != nil {
		return 0, err
	}
	return atoiRange(p[1], "+CMT length", 1, maxTPDU)
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
	StatRecUnread MessageStat = 0
	StatRecRead   MessageStat = 1
	StatStoUnsent MessageStat = 2
	StatStoSent   MessageStat = 3
)

// Received reports whether the stored message was received (not one of
// ours waiting to be sent).
func (s MessageStat) Received() bool { return s == StatRecUnread || s == StatRecRead }

var statText = map[string]MessageStat{
	"REC UNREAD": StatRecUnread, "REC READ": StatRecRead,
	"STO UNSENT": StatStoUnsent, "STO SENT": StatStoSent,
}

func parseStat(s string) (MessageStat, error) {
	if v, ok := statText[strings.ToUpper(s)]; ok {
		return v, nil
	}
	n, err := atoiRange(s, "stat", 0, 3)
	return MessageStat(n), err
}

// CMGRHeader is the header of a +CMGR response in PDU mode:
// `+CMGR: <stat>,[<alpha>],<length>`.
type CMGRHeader struct {
	Stat   MessageStat
	Length int
}

// ParseCMGR parses the +CMGR header line (TS 27.005 §3.4.3).
func ParseCMGR(line string) (CMGRHeader, error) {
	p, err := params(line, "+CMGR:", 2, 3)
	if err != nil {
		return CMGRHeader{}, err
	}
	st, err := parseStat(p[0])
	if err != nil {
		return CMGRHeader{}, err
	}
	n, err := atoiRange(p[len(p)-1], "+CMGR length", 1, maxTPDU)
	if err != nil {
		return CMGRHeader{}, err
	}
	return CMGRHeader{Stat: st, Length: n}, nil
}

// CMGLHeader is one entry header of a +CMGL response in PDU mode:
// `+CMGL: <index>,<stat>,[<alpha>],<length>`.
type CMGLHeader struct {
	Index  int
	Stat   MessageStat
	Length int
}

// ParseCMGL parses a +CMGL entry header line (TS 27.005 §3.4.2).
func ParseCMGL(line string) (CMGLHeader, error) {
	p, err := params(line, "+CMGL:", 3, 4)
	if err != nil {
		return CMGLHeader{}, err
	}
	idx, err := atoiRange(p[0], "index", 0, 65535)
	if err != nil {
		return CMGLHeader{}, err
	}
	st, err := parseStat(p[1])
	if err != nil {
		return CMGLHeader{}, err
	}
	n, err := atoiRange(p[len(p)-1], "+CMGL length", 1, maxTPDU)
	if err != nil {
		return CMGLHeader{}, err
	}
	return CMGLHeader{Index: idx, Stat: st, Length: n}, nil
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

// ParseCSQ parses `+CSQ: <rssi>,<ber>`.
func ParseCSQ(line string) (Signal, error) {
	p, err := params(line, "+CSQ:", 2, 2)
	if err != nil {
		return Signal{}, err
	}
	r, err := strconv.Atoi(p[0])
	if err != nil || !(r >= 0 && r <= 31 || r == 99) {
		return Signal{}, fmt.Errorf("%w: rssi %q", ErrBadResponse, clip(p[0]))
	}
	b, err := strconv.Atoi(p[1])
	if err != nil || !(b >= 0 && b <= 7 || b == 99) {
		return Signal{}, fmt.Errorf("%w: ber %q", ErrBadResponse, clip(p[1]))
	}
	return Signal{RSSI: r, BER: b}, nil
}

// RegStat is a network registration state (TS 27.007 §7.2 <stat>).
type RegStat int

// Registration states.
const (
	RegNotSearching RegStat = 0
	RegHome         RegStat = 1
	RegSearching    RegStat = 2
	RegDenied       RegStat = 3
	RegUnknown      RegStat = 4
	RegRoaming      RegStat = 5
	RegSMSOnlyHome  RegStat = 6
	RegSMSOnlyRoam  RegStat = 7
)

// Registered reports whether the state lets the modem send SMS (home or
// roaming, including "SMS only" registrations).
func (s RegStat) Registered() bool {
	switch s {
	case RegHome, RegRoaming, RegSMSOnlyHome, RegSMSOnlyRoam:
		return true
	}
	return false
}

// Registration is a +CREG/+CGREG/+CEREG read response or URC.
type Registration struct {
	Stat RegStat
	LAC  string // location or tracking area code, hex, if given
	CI   string // cell id, hex, if given
	AcT  int    // access technology, -1 if not given
}

// ParseCREG parses +CREG, +CGREG or +CEREG lines, in both the read-command
// form `+CREG: <n>,<stat>[,<lac>,<ci>[,<AcT>...]]` and the URC form
// `+CREG: <stat>[,<lac>,<ci>[,<AcT>]]`. The read form is assumed when
// fromRead is true.
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
	p, err := params(line, prefix, 1, 12)
	if err != nil {
		return Registration{}, err
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
	if len(p) >= 3 {
		r.LAC, r.CI = p[1], p[2]
	}
	if len(p) >= 4 && p[3] != "" {
		if a, err := atoiRange(p[3], "<AcT>", 0, 15); err == nil {
			r.AcT = a
		}
	}
	return r, nil
}

// ParseCNUM parses `+CNUM: [<alpha>],<number>,<type>[,...]` (TS 27.007
// §7.1) and returns the number, with a leading '+' for international
// numbers (type 145).
func ParseCNUM(line string) (string, error) {
	p, err := params(line, "+CNUM:", 3, 6)
	if err != nil {
		return "", err
	}
	num := p[1]
	typ, err := atoiRange(p[2], "number type", 0, 255)
	if err != nil {
		return "", err
	}
	if num == "" || len(num) > 24 {
		return "", fmt.Errorf("%w: +CNUM number %q", ErrBadResponse, clip(num))
	}
	digits := strings.TrimPrefix(num, "+")
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
type StorageUse struct {
	Mem   string // empty in the set-command response, which has no names
	Used  int
	Total int
}

// Full reports whether no slot is free.
func (s StorageUse) Full() bool { return s.Total > 0 && s.Used >= s.Total }

// ParseCPMS parses the +CPMS read response
// `+CPMS: <mem1>,<used1>,<total1>,<mem2>,...` or the set response
// `+CPMS: <used1>,<total1>,<used2>,<total2>...` (TS 27.005 §3.2.2).
func ParseCPMS(line string) ([]StorageUse, error) {
	p, err := params(line, "+CPMS:", 2, 9)
	if err != nil {
		return nil, err
	}
	if _, err := strconv.Atoi(p[0]); err == nil {
		if len(p)%2 != 0 {
			return nil, fmt.Errorf("%w: +CPMS set response with %d values", ErrBadResponse, len(p))
		}
		var out []StorageUse
		for i := 0; i < len(p); i += 2 {
			u, err := atoiRange(p[i], "used", 0, 65535)
			if err != nil {
				return nil, err
			}
			t, err := atoiRange(p[i+1], "total", 0, 65535)
			if err != nil {
				return nil, err
			}
			out = append(out, StorageUse{Used: u, Total: t})
		}
		return out, nil
	}
	if len(p)%3 != 0 {
		return nil, fmt.Errorf("%w: +CPMS read response with %d values", ErrBadResponse, len(p))
	}
	var out []StorageUse
	for i := 0; i < len(p); i += 3 {
		if p[i] == "" || len(p[i]) > 8 {
			return nil, fmt.Errorf("%w: +CPMS memory %q", ErrBadResponse, clip(p[i]))
		}
		u, err := atoiRange(p[i+1], "used", 0, 65535)
		if err != nil {
			return nil, err
		}
		t, err := atoiRange(p[i+2], "total", 0, 65535)
		if err != nil {
			return nil, err
		}
		out = append(out, StorageUse{Mem: p[i], Used: u, Total: t})
	}
	return out, nil
}
