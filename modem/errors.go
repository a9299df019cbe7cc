package modem

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/m2mbearer/m2mbearer/modem/at"
)

// kindError is the type of the sentinel errors: each says of itself
// whether it is worth retrying, so that callers in other packages (the SMS
// outbox) can decide with errors.As on interface{ Retryable() bool }
// without importing this package.
type kindError struct {
	msg   string
	retry bool
}

func (e *kindError) Error() string { return e.msg }

// Retryable reports whether an operation that failed with e may succeed
// later.
func (e *kindError) Retryable() bool { return e.retry }

// Sentinel errors. Callers branch on them with errors.Is; each has a
// Retryable() bool method.
var (
	// ErrClosed is returned by operations on a Modem or Pool after Close.
	// It is retryable: a message refused at shutdown may go after a restart.
	ErrClosed error = &kindError{"modem: closed", true}
	// ErrNotCreated is returned by a zero Modem or Pool (not made by
	// Open, New or NewPool). It is permanent: a programming error.
	ErrNotCreated error = &kindError{"modem: zero value, not made by Open, New or NewPool", false}
	// ErrInvalidOption is returned by NewPool, Pool.Add and Open for an
	// option or Config field out of its range (WithMaxQueue(0),
	// WithRate(1, 0), a negative Config.InboxSize).
	// It is permanent: a programming or configuration error.
	ErrInvalidOption error = &kindError{"modem: invalid option", false}
	// ErrNotConnected is returned while the serial link is down (unplugged,
	// re-opening). It is retryable.
	ErrNotConnected error = &kindError{"modem: not connected", true}
	// ErrLinkLost is returned by a command that was in flight when the link
	// was lost (EOF/EIO on the port). It is retryable: the message may or may
	// not have left the modem.
	ErrLinkLost error = &kindError{"modem: link lost", true}
	// ErrTimeout is returned when the modem did not complete a command in
	// time. It is retryable.
	ErrTimeout error = &kindError{"modem: command timeout", true}
	// ErrATError is a bare "ERROR" final result code (no +CMS/+CME detail).
	// It is retryable.
	ErrATError error = &kindError{"modem: ERROR", true}
	// ErrBadResponse wraps every parse failure of an AT response or URC.
	// It is retryable (the modem may have sent the message; a duplicate is
	// better than a loss).
	ErrBadResponse error = &kindError{"modem: bad response", true}
	// ErrBadPDU is returned for a TPDU that cannot be sent or a received
	// PDU that cannot be split (empty, too long, truncated). Permanent.
	ErrBadPDU error = &kindError{"modem: bad PDU", false}
	// ErrStorageFull is matched (errors.Is) when the message storage of the
	// modem or SIM is full (+CMS ERROR 322, +CME ERROR 20, or +CPMS used ==
	// total). Retryable.
	ErrStorageFull error = &kindError{"modem: message storage full", true}
	// ErrNoModem is returned by Pool.Send when no allowed modem can take the
	// message now (none is connected or registered, or all queues are
	// full). Retryable.
	ErrNoModem error = &kindError{"modem: no allowed modem available", true}
	// ErrSIMPIN is returned by Open when the SIM needs a PIN (or PUK) that
	// the configuration does not give or that the SIM refused. Permanent.
	ErrSIMPIN error = &kindError{"modem: SIM PIN required", false}
)

// Retryable reports whether err is worth retrying later (possibly on
// another modem that may legally send for the destination): the first
// error in the chain with a Retryable() bool method decides (every
// sentinel of this package, *CMSError and *CMEError have one); a context
// deadline is retryable; anything else is not.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// CMSError is a "+CMS ERROR: <err>" final result code (3GPP TS 27.005
// §3.2.5). Code is the numeric value, or -1 when the modem sent text that
// is not a known message.
type CMSError struct {
	Code int
	Text string // the raw value as the modem sent it
}

func (e *CMSError) Error() string {
	if d := cmsText(e.Code); d != "" {
		return fmt.Sprintf("+CMS ERROR %d (%s)", e.Code, d)
	}
	return "+CMS ERROR: " + e.Text
}

// Retryable reports whether the failure is temporary: network congestion or
// timeout, no service, SC busy, SIM busy, ME failure, unknown and
// manufacturer-specific codes. Unknown codes count as temporary because
// dropping an accepted message for an unexplained reason is worse than a
// bounded retry.
func (e *CMSError) Retryable() bool {
	c := e.Code
	switch {
	case c < 0:
		return true
	case c <= 127: // TS 24.011 Annex E-2 RP-cause
		switch c {
		case 22, 27, 38, 41, 42, 47, 98, 111:
			return true
		}
		return false
	case c <= 255: // TS 23.040 §9.2.3.22 TP-FCS
		switch c {
		case 0xC0, 0xC2, 0xD4, 0xFF:
			return true
		}
		return false
	}
	switch c {
	case 300, 314, 320, 331, 332, 500:
		return true
	case 301, 302, 303, 304, 305, 310, 311, 312, 313, 315, 316, 317, 318, 321, 322, 330, 340:
		return false
	}
	return true // 512.. manufacturer specific
}

// Is makes errors.Is(err, ErrStorageFull) true for memory-full codes and
// errors.Is(err, ErrSIMPIN) true for the PIN/PUK codes (311, 312, 316,
// 317, 318).
func (e *CMSError) Is(target error) bool {
	switch target {
	case ErrStorageFull:
		return e.Code == 322 || e.Code == 0xD0 || e.Code == 0xD3
	case ErrSIMPIN:
		switch e.Code {
		case 311, 312, 316, 317, 318:
			return true
		}
	}
	return false
}

// CMEError is a "+CME ERROR: <err>" final result code (3GPP TS 27.007
// §9.2). Code is the numeric value or -1 for unknown text.
type CMEError struct {
	Code int
	Text string
}

func (e *CMEError) Error() string {
	if d := cmeText(e.Code); d != "" {
		return fmt.Sprintf("+CME ERROR %d (%s)", e.Code, d)
	}
	return "+CME ERROR: " + e.Text
}

// Retryable reports whether the failure is temporary (phone failure, SIM
// busy, no network service, network timeout, unknown).
func (e *CMEError) Retryable() bool {
	switch e.Code {
	case 0, 1, 14, 30, 31, 100:
		return true
	case -1:
		return true
	}
	return e.Code >= 256 // manufacturer specific
}

// Is makes errors.Is(err, ErrStorageFull) true for +CME ERROR 20 and
// errors.Is(err, ErrSIMPIN) true for the PIN/PUK codes.
func (e *CMEError) Is(target error) bool {
	switch target {
	case ErrStorageFull:
		return e.Code == 20
	case ErrSIMPIN:
		switch e.Code {
		case 5, 11, 12, 16, 17, 18:
			return true
		}
	}
	return false
}

var cmsTexts = map[int]string{
	1: "unassigned number", 8: "operator determined barring", 10: "call barred",
	21: "short message transfer rejected", 22: "memory capacity exceeded",
	27: "destination out of service", 28: "unidentified subscriber",
	29: "facility rejected", 30: "unknown subscriber", 38: "network out of order",
	41: "temporary failure", 42: "congestion", 47: "resources unavailable",
	50: "facility not subscribed", 69: "facility not implemented",
	81: "invalid short message transfer reference value", 95: "invalid message",
	96: "invalid mandatory information", 97: "message type non-existent",
	98: "message not compatible with protocol state", 99: "information element non-existent",
	111: "protocol error", 127: "interworking unspecified",
	0x80: "telematic interworking not supported", 0x81: "short message type 0 not supported",
	0x82: "cannot replace short message", 0x8F: "unspecified TP-PID error",
	0x90: "data coding scheme not supported", 0x91: "message class not supported",
	0x9F: "unspecified TP-DCS error", 0xA0: "command cannot be actioned",
	0xA1: "command unsupported", 0xAF: "unspecified TP-Command error",
	0xB0: "TPDU not supported", 0xC0: "SC busy", 0xC1: "no SC subscription",
	0xC2: "SC system failure", 0xC3: "invalid SME address", 0xC4: "destination SME barred",
	0xC5: "SM rejected-duplicate SM", 0xC6: "TP-VPF not supported", 0xC7: "TP-VP not supported",
	0xD0: "SIM SMS storage full", 0xD1: "no SMS storage capability in SIM",
	0xD2: "error in MS", 0xD3: "memory capacity exceeded", 0xD4: "SIM application toolkit busy",
	0xD5: "SIM data download error", 0xFF: "unspecified error cause",
	300: "ME failure", 301: "SMS service of ME reserved", 302: "operation not allowed",
	303: "operation not supported", 304: "invalid PDU mode parameter",
	305: "invalid text mode parameter", 310: "SIM not inserted", 311: "SIM PIN required",
	312: "PH-SIM PIN required", 313: "SIM failure", 314: "SIM busy", 315: "SIM wrong",
	316: "SIM PUK required", 317: "SIM PIN2 required", 318: "SIM PUK2 required",
	320: "memory failure", 321: "invalid memory index", 322: "memory full",
	330: "SMSC address unknown", 331: "no network service", 332: "network timeout",
	340: "no +CNMA acknowledgement expected", 500: "unknown error",
}

var cmeTexts = map[int]string{
	0: "phone failure", 1: "no connection to phone", 2: "phone-adaptor link reserved",
	3: "operation not allowed", 4: "operation not supported", 5: "PH-SIM PIN required",
	10: "SIM not inserted", 11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure",
	14: "SIM busy", 15: "SIM wrong", 16: "incorrect password", 17: "SIM PIN2 required",
	18: "SIM PUK2 required", 20: "memory full", 21: "invalid index", 22: "not found",
	23: "memory failure", 24: "text string too long", 25: "invalid characters in text string",
	26: "dial string too long", 27: "invalid characters in dial string",
	30: "no network service", 31: "network timeout", 32: "network not allowed - emergency calls only",
	40: "network personalization PIN required", 41: "network personalization PUK required",
	42: "network subset personalization PIN required", 43: "network subset personalization PUK required",
	44: "service provider personalization PIN required", 45: "service provider personalization PUK required",
	46: "corporate personalization PIN required", 47: "corporate personalization PUK required",
	48: "hidden key required", 49: "EAP method not supported", 50: "incorrect parameters",
	100: "unknown",
}

func cmsText(c int) string { return cmsTexts[c] }
func cmeText(c int) string { return cmeTexts[c] }

// codeFromText maps a numeric or verbose (+CMEE=2) error value to a code.
func codeFromText(s string, table map[int]string) int {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return n
	}
	ls := strings.ToLower(strings.TrimRight(s, ". "))
	for c, t := range table {
		if strings.ToLower(t) == ls {
			return c
		}
	}
	return -1
}

// ResultCodeError is a final result code other than OK, ERROR, +CMS ERROR
// and +CME ERROR: a V.250 code (NO CARRIER, BUSY, ...), a vendor code
// (Huawei's COMMAND NOT SUPPORT and TOO MANY PARAMETERS, MODEM ERROR: <n>)
// or one of a Profile's FinalCodes. The command ended at once, as for
// ERROR: errors.Is(err, ErrATError) is true, and it is retryable.
type ResultCodeError struct {
	Line string // the code as the modem sent it
}

func (e *ResultCodeError) Error() string { return "modem: final result code " + strconv.Quote(e.Line) }

// Is makes errors.Is(err, ErrATError) true.
func (e *ResultCodeError) Is(target error) bool { return target == ErrATError }

// Retryable reports true: the modem answered, for a reason it does not
// explain in 27.005/27.007 terms.
func (e *ResultCodeError) Retryable() bool { return true }

// ParseErrorLine parses a final error result line: "ERROR" (also with a
// detail, "ERROR: 3"), "+CMS ERROR: <err>", "+CME ERROR: <err>" (numeric or
// verbose, +CMEE=1 or 2), or another final result code other than OK
// (*ResultCodeError). It returns nil when line is not an error result.
func ParseErrorLine(line string) error {
	return parseFinal(line, at.Dialect{})
}

func parseFinal(line string, d at.Dialect) error {
	line = strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(line, "+CMS ERROR:"):
		v := strings.TrimSpace(line[len("+CMS ERROR:"):])
		return &CMSError{Code: codeFromText(v, cmsTexts), Text: v}
	case strings.HasPrefix(line, "+CME ERROR:"):
		v := strings.TrimSpace(line[len("+CME ERROR:"):])
		return &CMEError{Code: codeFromText(v, cmeTexts), Text: v}
	case line == "ERROR" || strings.HasPrefix(line, "ERROR:") || strings.HasPrefix(line, "ERROR "):
		return ErrATError
	}
	if final, ok := at.IsFinal(line, d); final && !ok {
		return &ResultCodeError{Line: line}
	}
	return nil
}

// mapEngineError turns an error of the AT engine into ours: typed
// +CMS/+CME errors, ErrATError, *ResultCodeError, ErrTimeout, ErrLinkLost.
// Context errors pass through.
func mapEngineError(err error) error {
	if err == nil {
		return nil
	}
	var re *at.ResultError
	switch {
	case errors.As(err, &re):
		if e := parseFinal(re.Line, at.Dialect{Finals: []string{re.Line}}); e != nil {
			return e
		}
		return &ResultCodeError{Line: re.Line}
	case errors.Is(err, at.ErrTimeout):
		return ErrTimeout
	case errors.Is(err, at.ErrClosed):
		return fmt.Errorf("%w: %w", ErrLinkLost, err)
	}
	return err
}
