package sim

import "strconv"

// atError is a final result code other than OK.
type atError struct {
	kind int // errKindPlain, errKindCME, errKindCMS
	code int
	text string // a vendor final result code written as it is
}

// codeErr is a vendor final result code (COMMAND NOT SUPPORT).
func codeErr(text string) *atError { return &atError{kind: errKindPlain, text: text} }

const (
	errKindPlain = iota
	errKindCME
	errKindCMS
)

var errPlain = &atError{kind: errKindPlain}

func cmeErr(code int) *atError { return &atError{kind: errKindCME, code: code} }
func cmsErr(code int) *atError { return &atError{kind: errKindCMS, code: code} }

// TS 27.007 §9.2 +CME ERROR codes used by the simulator.
const (
	cmeNotAllowed    = 3
	cmeNotSupported  = 4
	cmePINRequired   = 11
	cmePUKRequired   = 12
	cmeWrongPassword = 16
	cmeInvalidIndex  = 21
	cmeNoNetwork     = 30
	cmeBadParameters = 50
	cmeUnknown       = 100
)

// TS 27.005 §3.2.5 +CMS ERROR codes used by the simulator; 0..127 are the
// TS 24.011 RP causes (42: congestion).
const (
	cmsCongestion      = 42
	cmsNotAllowed      = 302
	cmsNotSupported    = 303
	cmsInvalidPDUParam = 304
	cmsPINRequired     = 311
	cmsInvalidIndex    = 321
	cmsMemoryFull      = 322
	cmsNoNetwork       = 331
	cmsNoCNMAExpected  = 340
	cmsUnknown         = 500
)

var cmeText = map[int]string{
	cmeNotAllowed: "operation not allowed", cmeNotSupported: "operation not supported",
	cmePINRequired: "SIM PIN required", cmePUKRequired: "SIM PUK required",
	cmeWrongPassword: "incorrect password", cmeInvalidIndex: "invalid index",
	cmeNoNetwork: "no network service", cmeBadParameters: "incorrect parameters",
	cmeUnknown: "unknown",
}

var cmsText = map[int]string{
	cmsCongestion: "Congestion", cmsNotAllowed: "operation not allowed",
	cmsNotSupported: "operation not supported", cmsInvalidPDUParam: "invalid PDU mode parameter",
	cmsPINRequired: "SIM PIN required", cmsInvalidIndex: "invalid memory index",
	cmsMemoryFull: "memory full", cmsNoNetwork: "no network service",
	cmsNoCNMAExpected: "no +CNMA acknowledgement expected", cmsUnknown: "unknown error",
}

// format renders the result code under +CMEE=cmee: 0 bare ERROR, 1
// numeric, 2 verbose (numeric when no text is known).
func (e *atError) format(cmee int) string {
	if e.text != "" {
		return e.text
	}
	if e.kind == errKindPlain || cmee == 0 {
		return "ERROR"
	}
	prefix, texts := "+CME ERROR: ", cmeText
	if e.kind == errKindCMS {
		prefix, texts = "+CMS ERROR: ", cmsText
	}
	if cmee == 2 {
		if t, ok := texts[e.code]; ok {
			return prefix + t
		}
	}
	return prefix + strconv.Itoa(e.code)
}
