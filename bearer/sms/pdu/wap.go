package pdu

import (
	"errors"
	"fmt"
)

// WAP Push framing of the LwM2M SMS trigger, as in the informative example
// of LwM2M 1.1 Core (OMA-TS-LightweightM2M_Core-V1_1), Appendix L "Example
// of Trigger Message from Server", which follows WAP-259-WDP (port IE,
// destination port 2948, "WAP Push connectionless session service") and
// WAP-230-WSP §8.2.4.1 (Push PDU: TID, PDU type 0x06, HeadersLen as uintvar,
// Content-Type, headers, data):
//
//	UDH   06 05 04 0B 84 C0 02   UDHL 6; IE 0x05: dst port 2948, src port
//	WSP   01                     transaction ID
//	      06                     PDU type Push
//	      03                     headers length (content type + headers)
//	      C4                     content type 0x44, well-known short-integer
//	      AF 9A                  X-WAP-Application-ID (field 0x2F) = 0x1A,
//	                             x-wap-application:lwm2m.dm
//	CoAP  44 02 ...              the CoAP message (e.g. POST /1/0/8)
const (
	// WAPPushPort is the WDP destination port of connectionless WAP Push.
	WAPPushPort = 2948
	// WAPPushSourcePort is the source port BuildWAPPush's callers use by
	// default (WAP-259 connectionless WSP, 9200); the sender may choose any.
	WAPPushSourcePort = 9200
	// LwM2MAppID is the OMNA push application ID of
	// x-wap-application:lwm2m.dm (0x1A, sent as short-integer 0x9A).
	LwM2MAppID = 0x1A
	// LwM2MAppURI is the URI form of the same application ID.
	LwM2MAppURI = "x-wap-application:lwm2m.dm"
	// WSPContentTypeSyncMLNotification is the well-known content type 0x44
	// (sent as 0xC4) of the Appendix L example.
	WSPContentTypeSyncMLNotification = 0x44

	wspPDUPush       = 0x06
	wspFieldAppID    = 0x2F
	maxWSPHeadersLen = 1 << 16
)

// ErrWAPPush is wrapped by ParseTrigger errors for a malformed WSP push or a
// push for another application.
var ErrWAPPush = errors.New("pdu: bad WAP push")

// TriggerForm tells how a trigger or CoAP message was framed.
type TriggerForm uint8

// Trigger forms.
const (
	// FormCoAP: the SMS user data is the CoAP message itself.
	FormCoAP TriggerForm = iota
	// FormWAPPush: the CoAP message sits inside a WSP push sent to WDP
	// port 2948 with X-WAP-Application-ID lwm2m.dm.
	FormWAPPush
)

func (f TriggerForm) String() string {
	if f == FormWAPPush {
		return "wap-push"
	}
	return "coap"
}

// Trigger is a received message with its framing removed.
type Trigger struct {
	Form TriggerForm
	// CoAP is the CoAP message (aliases the input).
	CoAP []byte
	// For FormWAPPush: the WSP transaction ID, the content type (a
	// well-known code, or -1 with ContentTypeText set) and the application
	// ID as sent (code, or -1 with AppURI set).
	TID             byte
	ContentType     int
	ContentTypeText string
	AppID           int
	AppURI          string
}

// BuildWAPPush returns the WSP push PDU carrying coap, framed as LwM2M 1.1
// Core Appendix L shows. Send it with WithPorts(WAPPushPort, src).
func BuildWAPPush(tid byte, coap []byte) []byte {
	b := make([]byte, 0, 6+len(coap))
	b = append(b, tid, wspPDUPush, 3, 0x80|WSPContentTypeSyncMLNotification, 0x80|wspFieldAppID, 0x80|LwM2MAppID)
	return append(b, coap...)
}

// WAPPushOptions returns the options that send a BuildWAPPush body to the
// WAP Push port from src.
func WAPPushOptions(src uint16) Option { return WithPorts(WAPPushPort, src) }

// ParseTrigger removes the framing of a received message: with a port IE
// whose destination is 2948 the data must be an LwM2M WSP push
// (FormWAPPush); anything else is taken as raw CoAP (FormCoAP). Errors wrap
// ErrWAPPush.
func ParseTrigger(ports Ports, data []byte) (Trigger, error) {
	if !ports.Present || ports.Dst != WAPPushPort {
		return Trigger{Form: FormCoAP, CoAP: data, ContentType: -1, AppID: -1}, nil
	}
	return ParseWAPPush(data)
}

// ParseWAPPush parses a connectionless WSP Push PDU and checks that it is
// for the LwM2M application.
func ParseWAPPush(b []byte) (Trigger, error) {
	t := Trigger{Form: FormWAPPush, ContentType: -1, AppID: -1}
	if len(b) < 3 {
		return t, fmt.Errorf("%w: %d bytes", ErrWAPPush, len(b))
	}
	t.TID = b[0]
	if b[1] != wspPDUPush {
		return t, fmt.Errorf("%w: PDU type 0x%02X is not Push (0x06)", ErrWAPPush, b[1])
	}
	hl, i, err := uintvar(b, 2)
	if err != nil {
		return t, err
	}
	if hl > len(b)-i {
		return t, fmt.Errorf("%w: headers length %d past the end", ErrWAPPush, hl)
	}
	end := i + hl
	hdr := b[:end]
	// Content-Type value (WSP §8.4.2.24): short-integer, text, or general form.
	v, err := wspValue(hdr, i)
	if err != nil {
		return t, fmt.Errorf("%w: content type: %w", ErrWAPPush, err)
	}
	t.ContentType, t.ContentTypeText = v.code, v.text
	if v.general != nil {
		// Content-general-form: Media-type is a well-known integer or text,
		// followed by parameters we skip.
		if mv, err := wspValue(v.general, 0); err == nil {
			t.ContentType, t.ContentTypeText = mv.code, mv.text
		}
	}
	i = v.end
	// Headers (WSP §8.4.2.6): well-known field (short-integer) + value, or
	// application header (text + text).
	for i < end {
		name, err := wspValue(hdr, i)
		if err != nil {
			return t, fmt.Errorf("%w: header name: %w", ErrWAPPush, err)
		}
		val, err := wspValue(hdr, name.end)
		if err != nil {
			return t, fmt.Errorf("%w: header value: %w", ErrWAPPush, err)
		}
		if name.code == wspFieldAppID {
			// Push-app-Id = URI-value | App-assigned-code (integer).
			switch {
			case val.text != "":
				t.AppID, t.AppURI = -1, val.text
			case val.code >= 0:
				t.AppID, t.AppURI = val.code, ""
			case val.general != nil && len(val.general) <= 4: // Long-integer
				n := 0
				for _, c := range val.general {
					n = n<<8 | int(c)
				}
				t.AppID, t.AppURI = n, ""
			}
		}
		i = val.end
	}
	if t.AppID != LwM2MAppID && t.AppURI != LwM2MAppURI {
		return t, fmt.Errorf("%w: X-WAP-Application-ID %d %q is not lwm2m.dm", ErrWAPPush, t.AppID, t.AppURI)
	}
	t.CoAP = b[end:]
	return t, nil
}

// uintvar decodes a WSP variable-length unsigned integer (§8.1.2): up to
// five octets, seven bits each, high bit set on all but the last.
func uintvar(b []byte, i int) (int, int, error) {
	n := 0
	for k := 0; k < 5; k++ {
		if i >= len(b) {
			return 0, i, fmt.Errorf("%w: uintvar truncated", ErrWAPPush)
		}
		c := b[i]
		i++
		n = n<<7 | int(c&0x7f)
		if c&0x80 == 0 {
			if n > maxWSPHeadersLen {
				return 0, i, fmt.Errorf("%w: uintvar %d too large", ErrWAPPush, n)
			}
			return n, i, nil
		}
	}
	return 0, i, fmt.Errorf("%w: uintvar longer than 5 octets", ErrWAPPush)
}

type wspVal struct {
	code    int    // short-integer value, or -1
	text    string // text-string value
	general []byte // value-length form contents
	end     int
}

// wspValue decodes one WSP field name or value (§8.4.1.2, §8.4.2.1):
// 0..30 short length + data, 31 + uintvar length + data, 32..127 a
// NUL-terminated text string, 128..255 a short-integer.
func wspValue(b []byte, i int) (wspVal, error) {
	v := wspVal{code: -1}
	if i >= len(b) {
		return v, errors.New("truncated")
	}
	c := b[i]
	switch {
	case c >= 0x80:
		v.code, v.end = int(c&0x7f), i+1
	case c >= 32:
		j := i
		for j < len(b) && b[j] != 0 {
			j++
		}
		if j == len(b) {
			return v, errors.New("text string not terminated")
		}
		s := b[i:j]
		if s[0] == 127 { // Quote before text starting with 128..255
			s = s[1:]
		}
		v.text, v.end = string(s), j+1
		if v.text == "" {
			v.text = "\x00" // present but empty: keep "text" distinguishable
		}
	default:
		l, j := int(c), i+1
		if c == 31 {
			var err error
			if l, j, err = uintvar(b, j); err != nil {
				return v, err
			}
		}
		if l > len(b)-j {
			return v, errors.New("value length past the headers")
		}
		v.general, v.end = b[j:j+l], j+l
	}
	return v, nil
}
