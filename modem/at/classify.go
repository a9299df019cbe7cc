package at

import (
	"strings"
)

// Dialect is what a modem family adds to the lines every modem sends: its
// own final result codes and unsolicited result codes. The zero value adds
// nothing.
type Dialect struct {
	// Finals are extra final result codes: a text that must match the whole
	// line, or a prefix when it ends with ':' ("+EXT ERROR:").
	Finals []string
	// URCPrefixes are extra prefixes of unsolicited result codes, with
	// their ':' ("+WIND:", "+QIND:").
	URCPrefixes []string
	// URCTexts are unsolicited lines without parameters, matched whole and
	// case-insensitively ("RDY", "Call Ready").
	URCTexts []string
}

// Merge returns d with the lists of o appended.
func (d Dialect) Merge(o Dialect) Dialect {
	return Dialect{
		Finals:      append(append([]string(nil), d.Finals...), o.Finals...),
		URCPrefixes: append(append([]string(nil), d.URCPrefixes...), o.URCPrefixes...),
		URCTexts:    append(append([]string(nil), d.URCTexts...), o.URCTexts...),
	}
}

// stdFinals are the final result codes every modem may send besides OK:
// V.250 §5.7.1 (ERROR, NO CARRIER, NO DIALTONE, BUSY, NO ANSWER), TS 27.007
// §9.2 (+CME ERROR), TS 27.005 §3.2.5 (+CMS ERROR), and vendor codes seen
// before a modem's profile is known: COMMAND NOT SUPPORT and TOO MANY
// PARAMETERS (Huawei AT Command Interface Specification §1.3, also sent by
// ZTE firmware), MODEM ERROR: <n> (reported from the field in issue 13).
var stdFinals = []string{
	"ERROR", "+CME ERROR:", "+CMS ERROR:", "NO CARRIER", "NO DIALTONE", "BUSY", "NO ANSWER",
	"COMMAND NOT SUPPORT", "TOO MANY PARAMETERS", "MODEM ERROR:",
}

// stdURCPrefixes are the unsolicited result codes of TS 27.005 §3.4.1 and
// TS 27.007 (registration §7.2/§10.1.19/§10.1.22, ring and caller id §6.11
// and §7.6, USSD §7.15, indicators §8.10, SIM state §8.3, time zone §8.41,
// packet domain events §10.1.19, supplementary services §7.17).
var stdURCPrefixes = []string{
	"+CMTI:", "+CMT:", "+CDSI:", "+CDS:", "+CBM:", "+CBMI:",
	"+CREG:", "+CGREG:", "+CEREG:", "+C5GREG:",
	"+CRING:", "+CLIP:", "+CCWA:", "+CUSD:", "+CIEV:", "+CPIN:", "+CFUN:",
	"+CTZV:", "+CTZE:", "+CTZEU:", "+CGEV:", "+CSSI:", "+CSSU:",
}

// stdURCTexts are unsolicited lines without parameters: RING (V.250) and
// the power-up and power-down texts of common modules.
var stdURCTexts = []string{
	"RING", "RDY", "Call Ready", "SMS Ready", "SMS DONE", "PB DONE",
	"NORMAL POWER DOWN", "POWERED DOWN", "POWER DOWN",
	"UNDER-VOLTAGE WARNNING", "OVER-VOLTAGE WARNNING",
	"UNDER-VOLTAGE POWER DOWN", "OVER-VOLTAGE POWER DOWN",
}

// vendorMarks are the first characters of vendor-specific commands and
// their result codes (Huawei ^, Sierra Wireless * and !, Telit #, Nordic %,
// Qualcomm $).
const vendorMarks = "^*#%$!"

// IsFinal reports whether line is a final result code: OK, one of the
// standard error codes, or one of d.Finals. ok tells OK from the errors.
func IsFinal(line string, d Dialect) (final, ok bool) {
	if line == "OK" {
		return true, true
	}
	if matchFinal(line, stdFinals) || matchFinal(line, d.Finals) {
		return true, false
	}
	return false, false
}

func matchFinal(line string, codes []string) bool {
	for _, c := range codes {
		if c == "" {
			continue
		}
		switch {
		case c == "ERROR":
			// "ERROR" alone, or followed by a detail some firmwares add
			// ("ERROR: 3"); never a word that merely starts with it.
			if line == c || strings.HasPrefix(line, "ERROR:") || strings.HasPrefix(line, "ERROR ") {
				return true
			}
		case strings.HasSuffix(c, ":"):
			if strings.HasPrefix(line, c) {
				return true
			}
		default:
			if line == c {
				return true
			}
		}
	}
	return false
}

// Prefix returns the prefix of an information line or URC: the text up to
// and including the first ':' when what precedes it is a command name
// ("+CMGR:", "^RSSI:"), else "".
func Prefix(line string) string {
	i := strings.IndexByte(line, ':')
	if i < 2 || i > 32 {
		return ""
	}
	if !strings.ContainsRune("+"+vendorMarks, rune(line[0])) {
		return ""
	}
	for j := 1; j < i; j++ {
		c := line[j]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return ""
		}
	}
	return line[:i+1]
}

// IsUnsolicited reports whether line is an unsolicited result code of
// TS 27.005/27.007, of dialect d, or of a vendor (a line starting with one
// of ^ * # % $ !), or a known unsolicited text (RING, RDY, SMS Ready, ...).
func IsUnsolicited(line string, d Dialect) bool {
	if line == "" {
		return false
	}
	if strings.ContainsRune(vendorMarks, rune(line[0])) && len(line) > 1 {
		return true
	}
	for _, p := range stdURCPrefixes {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	for _, p := range d.URCPrefixes {
		if p != "" && strings.HasPrefix(line, p) {
			return true
		}
	}
	for _, t := range stdURCTexts {
		if strings.EqualFold(line, t) {
			return true
		}
	}
	for _, t := range d.URCTexts {
		if t != "" && strings.EqualFold(line, t) {
			return true
		}
	}
	return false
}

// hasTrailingPDU reports whether a URC line is followed by a PDU line in
// PDU mode (TS 27.005 §3.4.1: +CMT, +CDS and +CBM).
func hasTrailingPDU(line string) bool {
	return strings.HasPrefix(line, "+CMT:") || strings.HasPrefix(line, "+CDS:") || strings.HasPrefix(line, "+CBM:")
}

// IsHex reports whether line is a non-empty run of hexadecimal digits (a
// PDU line), ignoring surrounding spaces and a stray pair of quotes.
func IsHex(line string) bool {
	s := strings.Trim(strings.TrimSpace(line), `"`)
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Shape says which lines belong to a command's answer besides its final
// result code; see the package documentation.
type Shape int

// Answer shapes.
const (
	// ShapePrefixed: only lines that carry the command's own prefix
	// ("+CSQ: 20,99" for AT+CSQ). The default.
	ShapePrefixed Shape = iota
	// ShapePDU: prefixed lines and the lines in PDU position, i.e. every
	// line but URCs and other commands' information responses (AT+CMGR,
	// AT+CMGL).
	ShapePDU
	// ShapeText: every line that is not a URC or a final result code
	// (AT+CGMI, AT+CGSN, ATI, commands the caller does not know).
	ShapeText
)

// commandPrefix returns the prefix the answer lines of cmd carry: "+CMGR:"
// for "+CMGR=3", "^SCFG:" for "^SCFG?"; "" for basic commands (Z, E0, I).
func commandPrefix(cmd string) string {
	if cmd == "" || !strings.ContainsRune("+"+vendorMarks, rune(cmd[0])) {
		return ""
	}
	name := cmd
	if i := strings.IndexAny(name, "=?"); i >= 0 {
		name = name[:i]
	}
	return strings.ToUpper(name) + ":"
}

// belongs reports whether line (not a final result code, not an echo) is
// part of the answer of a command with prefix and shape.
func belongs(line, prefix string, shape Shape, d Dialect) bool {
	if prefix != "" && strings.HasPrefix(strings.ToUpper(line), prefix) {
		return true
	}
	if IsUnsolicited(line, d) {
		return false
	}
	switch shape {
	case ShapeText:
		return true
	case ShapePDU:
		// PDU lines and whatever the modem put there that is not shaped
		// like an information response of another command: the driver
		// needs the line it got, even garbage, to quarantine it.
		return Prefix(line) == ""
	}
	return false
}
