package smppwire

import (
	"encoding/binary"
	"fmt"
)

// ESM class bits (SMPP 3.4 §5.2.12).
const (
	// ESMTypeMask selects the message type bits (2-5).
	ESMTypeMask byte = 0x3C
	// ESMDeliveryReceipt: the deliver_sm is an SMSC delivery receipt.
	ESMDeliveryReceipt byte = 0x04
	// ESMSMEAck and ESMUserAck: SME delivery / manual acknowledgements.
	ESMSMEAck  byte = 0x08
	ESMUserAck byte = 0x10
	// ESMIntermediate: an intermediate delivery notification.
	ESMIntermediate byte = 0x20
	// ESMUDHI: short_message starts with a TS 23.040 user data header.
	ESMUDHI byte = 0x40
	// ESMReplyPath: TP-Reply-Path.
	ESMReplyPath byte = 0x80
)

// IsReceipt reports whether an esm_class marks a receipt or an
// acknowledgement rather than a short message.
func IsReceipt(esm byte) bool {
	switch esm & ESMTypeMask {
	case ESMDeliveryReceipt, ESMSMEAck, ESMUserAck, ESMIntermediate:
		return true
	}
	return false
}

// registered_delivery values (§5.2.17).
const (
	RegDeliveryNone    byte = 0x00
	RegDeliveryAlways  byte = 0x01 // receipt on success or failure
	RegDeliveryFailure byte = 0x02 // receipt on failure only
)

// data_coding values used here (§5.2.19).
const (
	DataCodingDefault byte = 0x00
	DataCodingBinary  byte = 0x04 // 8-bit binary
	DataCodingUCS2    byte = 0x08
)

// Type of number and numbering plan values (§5.2.5, §5.2.6).
const (
	TONUnknown       byte = 0x00
	TONInternational byte = 0x01
	TONNational      byte = 0x02
	TONAlphanumeric  byte = 0x05
	NPIUnknown       byte = 0x00
	NPIISDN          byte = 0x01 // E.163/E.164
)

// SM is the body of submit_sm and deliver_sm, which share their layout.
type SM struct {
	ServiceType          string
	SourceTON, SourceNPI byte
	SourceAddr           string
	DestTON, DestNPI     byte
	DestAddr             string
	ESMClass             byte
	ProtocolID           byte
	PriorityFlag         byte
	ScheduleDeliveryTime string
	ValidityPeriod       string
	RegisteredDelivery   byte
	ReplaceIfPresent     byte
	DataCoding           byte
	SMDefaultMsgID       byte
	ShortMessage         []byte
	TLVs                 TLVs
}

// Marshal encodes the body. It refuses a short_message over 254 octets
// (long data goes in the message_payload TLV, with an empty short_message)
// and any field over its size.
func (s *SM) Marshal() ([]byte, error) {
	if len(s.ShortMessage) > MaxShortMessage {
		return nil, fmt.Errorf("smpp: short_message of %d octets (max %d; use message_payload)", len(s.ShortMessage), MaxShortMessage)
	}
	if len(s.ShortMessage) > 0 && s.TLVs.Get(TagMessagePayload) != nil {
		return nil, fmt.Errorf("smpp: short_message and message_payload are exclusive")
	}
	b := make([]byte, 0, 64+len(s.ShortMessage))
	var err error
	if b, err = appendCString(b, s.ServiceType, sizeServiceType); err != nil {
		return nil, err
	}
	b = append(b, s.SourceTON, s.SourceNPI)
	if b, err = appendCString(b, s.SourceAddr, sizeAddr); err != nil {
		return nil, err
	}
	b = append(b, s.DestTON, s.DestNPI)
	if b, err = appendCString(b, s.DestAddr, sizeAddr); err != nil {
		return nil, err
	}
	b = append(b, s.ESMClass, s.ProtocolID, s.PriorityFlag)
	if b, err = appendCString(b, s.ScheduleDeliveryTime, sizeTime); err != nil {
		return nil, err
	}
	if b, err = appendCString(b, s.ValidityPeriod, sizeTime); err != nil {
		return nil, err
	}
	b = append(b, s.RegisteredDelivery, s.ReplaceIfPresent, s.DataCoding, s.SMDefaultMsgID, byte(len(s.ShortMessage)))
	b = append(b, s.ShortMessage...)
	for _, t := range s.TLVs {
		if len(t.Value) > 0xFFFF {
			return nil, fmt.Errorf("smpp: TLV 0x%04X of %d octets", t.Tag, len(t.Value))
		}
		b = t.Append(b)
	}
	return b, nil
}

// ParseSM decodes a submit_sm or deliver_sm body.
func ParseSM(body []byte) (*SM, error) {
	r := &reader{b: body}
	s := &SM{ServiceType: r.cstring("service_type", sizeServiceType)}
	s.SourceTON = r.u8("source_addr_ton")
	s.SourceNPI = r.u8("source_addr_npi")
	s.SourceAddr = r.cstring("source_addr", sizeAddr)
	s.DestTON = r.u8("dest_addr_ton")
	s.DestNPI = r.u8("dest_addr_npi")
	s.DestAddr = r.cstring("destination_addr", sizeAddr)
	s.ESMClass = r.u8("esm_class")
	s.ProtocolID = r.u8("protocol_id")
	s.PriorityFlag = r.u8("priority_flag")
	s.ScheduleDeliveryTime = r.cstring("schedule_delivery_time", sizeTime)
	s.ValidityPeriod = r.cstring("validity_period", sizeTime)
	s.RegisteredDelivery = r.u8("registered_delivery")
	s.ReplaceIfPresent = r.u8("replace_if_present_flag")
	s.DataCoding = r.u8("data_coding")
	s.SMDefaultMsgID = r.u8("sm_default_msg_id")
	n := int(r.u8("sm_length"))
	if r.err == nil && n > MaxShortMessage {
		r.fail("sm_length 255 (reserved)")
	}
	s.ShortMessage = r.bytes("short_message", n)
	if r.err != nil {
		return nil, r.err
	}
	tlvs, err := ParseTLVs(r.rest())
	if err != nil {
		return nil, err
	}
	s.TLVs = tlvs
	if len(s.ShortMessage) > 0 && tlvs.Get(TagMessagePayload) != nil {
		return nil, fmt.Errorf("%w: both short_message and message_payload", ErrMalformed)
	}
	return s, nil
}

// Payload returns the message data: short_message, or the message_payload
// TLV when short_message is empty.
func (s *SM) Payload() []byte {
	if len(s.ShortMessage) == 0 {
		if v := s.TLVs.Get(TagMessagePayload); v != nil {
			return v
		}
	}
	return s.ShortMessage
}

// TLV tags used here (§5.3.2).
const (
	TagDestAddrSubunit      uint16 = 0x0005
	TagReceiptedMessageID   uint16 = 0x001E
	TagUserMessageReference uint16 = 0x0204
	TagSourcePort           uint16 = 0x020A
	TagDestinationPort      uint16 = 0x020B
	TagSarMsgRefNum         uint16 = 0x020C
	TagSarTotalSegments     uint16 = 0x020E
	TagSarSegmentSeqnum     uint16 = 0x020F
	TagSCInterfaceVersion   uint16 = 0x0210
	TagNetworkErrorCode     uint16 = 0x0423
	TagMessagePayload       uint16 = 0x0424
	TagMessageState         uint16 = 0x0427
)

// TLV is one optional parameter.
type TLV struct {
	Tag   uint16
	Value []byte
}

// Append appends the encoded TLV to b.
func (t TLV) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, t.Tag)
	b = binary.BigEndian.AppendUint16(b, uint16(len(t.Value)))
	return append(b, t.Value...)
}

// U8 and U16 build integer TLVs; CString a C-Octet String one.
func U8(tag uint16, v byte) TLV { return TLV{Tag: tag, Value: []byte{v}} }
func U16(tag uint16, v uint16) TLV {
	return TLV{Tag: tag, Value: binary.BigEndian.AppendUint16(nil, v)}
}
func CString(tag uint16, s string) TLV {
	return TLV{Tag: tag, Value: append([]byte(s), 0)}
}

// TLVs is a PDU's optional parameters in order.
type TLVs []TLV

// maxTLVs bounds the count of optional parameters in one PDU.
const maxTLVs = 64

// ParseTLVs decodes a sequence of TLVs filling b exactly.
func ParseTLVs(b []byte) (TLVs, error) {
	var out TLVs
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return nil, fmt.Errorf("%w: truncated TLV header at %d", ErrMalformed, off)
		}
		tag := binary.BigEndian.Uint16(b[off:])
		n := int(binary.BigEndian.Uint16(b[off+2:]))
		off += 4
		if n > len(b)-off {
			return nil, fmt.Errorf("%w: TLV 0x%04X length %d past the end", ErrMalformed, tag, n)
		}
		if len(out) >= maxTLVs {
			return nil, fmt.Errorf("%w: more than %d TLVs", ErrMalformed, maxTLVs)
		}
		out = append(out, TLV{Tag: tag, Value: append([]byte(nil), b[off:off+n]...)})
		off += n
	}
	return out, nil
}

// Get returns the value of the first TLV with tag, or nil.
func (ts TLVs) Get(tag uint16) []byte {
	for _, t := range ts {
		if t.Tag == tag {
			if t.Value == nil {
				return []byte{}
			}
			return t.Value
		}
	}
	return nil
}

// U8 returns a one-octet TLV's value.
func (ts TLVs) U8(tag uint16) (byte, bool) {
	v := ts.Get(tag)
	if len(v) != 1 {
		return 0, false
	}
	return v[0], true
}

// U16 returns a two-octet TLV's value.
func (ts TLVs) U16(tag uint16) (uint16, bool) {
	v := ts.Get(tag)
	if len(v) != 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(v), true
}

// CString returns a C-Octet String TLV's value without its NUL (a value
// missing its NUL is accepted as it is: some SMSCs omit it).
func (ts TLVs) CString(tag uint16) (string, bool) {
	v := ts.Get(tag)
	if v == nil {
		return "", false
	}
	for i, c := range v {
		if c == 0 {
			return string(v[:i]), true
		}
	}
	return string(v), true
}
