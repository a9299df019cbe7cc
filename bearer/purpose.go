package bearer

import (
	"net"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// Purpose says what a datagram is for, for cost accounting on bearers
// where every message costs money (SMS).
type Purpose uint8

// Purposes. An LwM2M wake-up trigger is an Execute of the Registration
// Update Trigger /1/x/8 sent as NON; a datagram carrying Block1 or Block2
// is a block of a block-wise transfer; Empty is an ACK, a Reset or a
// CoAP ping; Handshake is a DTLS handshake, ChangeCipherSpec or alert
// record; Secured is DTLS application data whose CoAP purpose is not
// known (the security layer tells it with PurposeHinter where it can).
const (
	PurposeRequest Purpose = iota
	PurposeResponse
	PurposeTrigger
	PurposeBlock
	PurposeHandshake
	PurposeEmpty
	PurposeSecured
	NumPurposes
)

var purposeNames = [NumPurposes]string{"request", "response", "trigger", "block", "handshake", "empty", "secured"}

// String returns the purpose's name, usable as a metric label.
func (p Purpose) String() string {
	if p < NumPurposes {
		return purposeNames[p]
	}
	return "unknown"
}

// Classify tells the purpose of a plain CoAP datagram (RFC 7252 framing).
// Bytes that are not CoAP are PurposeSecured when they look like a DTLS
// record (handshake records: PurposeHandshake) and PurposeRequest
// otherwise.
func Classify(data []byte) Purpose {
	if len(data) >= 13 && data[1] == 254 && data[0] >= 20 && data[0] <= 25 {
		if data[0] == 23 || data[0] == 25 {
			return PurposeSecured
		}
		return PurposeHandshake
	}
	var opts [16]message.Option
	m := message.Message{Options: opts[:0]}
	if _, err := coder.DefaultCoder.Decode(data, &m); err != nil {
		if len(data) >= 4 && data[0]>>6 == 1 && data[1] == 0 {
			return PurposeEmpty
		}
		return PurposeRequest
	}
	if m.Code == codes.Empty {
		return PurposeEmpty
	}
	if m.Options.HasOption(message.Block1) || m.Options.HasOption(message.Block2) || isQBlockPart(&m) {
		return PurposeBlock
	}
	if m.Code>>5 != 0 {
		return PurposeResponse
	}
	if m.Code == codes.POST && m.Type == message.NonConfirmable {
		if p, err := m.Options.Path(); err == nil && isTriggerPath(p) {
			return PurposeTrigger
		}
	}
	return PurposeRequest
}

// isQBlockPart reports whether m is part of an RFC 9177 transfer of a body
// in several blocks: a Q-Block1 block or its 2.31 and final answer, a
// Q-Block2 block of a body in several, a request for missing blocks or
// 'Continue', a 4.08 listing missing blocks. A Q-Block2 option asking
// for (or answering with) a body in one block is only the probe of
// RFC 9177 §4.1: that message keeps its purpose.
func isQBlockPart(m *message.Message) bool {
	if m.Options.HasOption(message.QBlock1) {
		return true
	}
	if cf, err := m.Options.ContentFormat(); err == nil && cf == message.AppMissingBlocksCBORSeq && m.Code == codes.RequestEntityIncomplete {
		return true
	}
	b, bad := qbOptions(m.Options, message.QBlock2)
	if bad || len(b) == 0 {
		return false
	}
	if m.Code>>5 == 0 {
		return len(b) > 1 || b[0].num > 0
	}
	return b[0].more || b[0].num > 0
}

// isTriggerPath reports whether p is /1/<instance>/8.
func isTriggerPath(p string) bool {
	if len(p) < 6 || p[:3] != "/1/" || p[len(p)-2:] != "/8" {
		return false
	}
	inst := p[3 : len(p)-2]
	for i := 0; i < len(inst); i++ {
		if inst[i] < '0' || inst[i] > '9' {
			return false
		}
	}
	return inst != ""
}

// Directions of a datagram, for PurposeHinter.
const (
	Sent     = false
	Received = true
)

// PurposeHinter is implemented by bearers that account costs by purpose
// (bearer/sms). A security layer over such a bearer, which alone sees the
// plain CoAP datagram, tells it the purpose of the record it is about to
// write to addr (received false) or of the record it just decrypted from
// addr (received true).
type PurposeHinter interface {
	HintPurpose(addr net.Addr, received bool, p Purpose)
}
