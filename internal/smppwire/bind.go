package smppwire

// Field sizes (octets, NUL included) of SMPP 3.4 §4.
const (
	sizeSystemID     = 16
	sizePassword     = 9
	sizeSystemType   = 13
	sizeAddressRange = 41
	sizeServiceType  = 6
	sizeAddr         = 21
	sizeTime         = 17
	sizeMessageID    = 65
)

// Bind is the body of bind_transmitter, bind_receiver and bind_transceiver.
type Bind struct {
	SystemID         string
	Password         string
	SystemType       string
	InterfaceVersion byte
	AddrTON, AddrNPI byte
	AddressRange     string
}

// Marshal encodes the body. Fields longer than their SMPP size are refused.
func (b *Bind) Marshal() ([]byte, error) {
	out := make([]byte, 0, 64)
	var err error
	if out, err = appendCString(out, b.SystemID, sizeSystemID); err != nil {
		return nil, err
	}
	if out, err = appendCString(out, b.Password, sizePassword); err != nil {
		return nil, err
	}
	if out, err = appendCString(out, b.SystemType, sizeSystemType); err != nil {
		return nil, err
	}
	out = append(out, b.InterfaceVersion, b.AddrTON, b.AddrNPI)
	return appendCString(out, b.AddressRange, sizeAddressRange)
}

// ParseBind decodes a bind_* body.
func ParseBind(body []byte) (*Bind, error) {
	r := &reader{b: body}
	b := &Bind{
		SystemID:   r.cstring("system_id", sizeSystemID),
		Password:   r.cstring("password", sizePassword),
		SystemType: r.cstring("system_type", sizeSystemType),
	}
	b.InterfaceVersion = r.u8("interface_version")
	b.AddrTON = r.u8("addr_ton")
	b.AddrNPI = r.u8("addr_npi")
	b.AddressRange = r.cstring("address_range", sizeAddressRange)
	if r.err != nil {
		return nil, r.err
	}
	return b, nil
}

// BindResp is the body of a bind_*_resp: the SMSC's system_id and, when it
// said so, its interface version (TLV sc_interface_version).
type BindResp struct {
	SystemID         string
	InterfaceVersion byte // 0 when absent
}

// Marshal encodes the body.
func (b *BindResp) Marshal() ([]byte, error) {
	out, err := appendCString(nil, b.SystemID, sizeSystemID)
	if err != nil {
		return nil, err
	}
	if b.InterfaceVersion != 0 {
		out = TLV{Tag: TagSCInterfaceVersion, Value: []byte{b.InterfaceVersion}}.Append(out)
	}
	return out, nil
}

// ParseBindResp decodes a bind_*_resp body. An error response may have an
// empty body (SMPP 3.4 §4.1.2 note), which decodes to a zero BindResp.
func ParseBindResp(body []byte) (*BindResp, error) {
	if len(body) == 0 {
		return &BindResp{}, nil
	}
	r := &reader{b: body}
	b := &BindResp{SystemID: r.cstring("system_id", sizeSystemID)}
	if r.err != nil {
		return nil, r.err
	}
	tlvs, err := ParseTLVs(r.rest())
	if err != nil {
		return nil, err
	}
	if v := tlvs.Get(TagSCInterfaceVersion); len(v) == 1 {
		b.InterfaceVersion = v[0]
	}
	return b, nil
}

// SubmitResp is the body of submit_sm_resp: the SMSC's message_id.
type SubmitResp struct{ MessageID string }

// Marshal encodes the body.
func (s *SubmitResp) Marshal() ([]byte, error) {
	return appendCString(nil, s.MessageID, sizeMessageID)
}

// ParseSubmitResp decodes a submit_sm_resp body (empty for an error answer).
func ParseSubmitResp(body []byte) (*SubmitResp, error) {
	if len(body) == 0 {
		return &SubmitResp{}, nil
	}
	r := &reader{b: body}
	s := &SubmitResp{MessageID: r.cstring("message_id", sizeMessageID)}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.rest()) != 0 {
		r.fail("trailing octets")
		return nil, r.err
	}
	return s, nil
}

// OutbindBody is the body of an outbind (§4.1.7.1): the SMSC's system_id and
// the password it presents to the ESME.
type OutbindBody struct {
	SystemID, Password string
}

// Marshal encodes the body.
func (o *OutbindBody) Marshal() ([]byte, error) {
	out, err := appendCString(nil, o.SystemID, sizeSystemID)
	if err != nil {
		return nil, err
	}
	return appendCString(out, o.Password, sizePassword)
}

// ParseOutbind decodes an outbind body.
func ParseOutbind(body []byte) (*OutbindBody, error) {
	r := &reader{b: body}
	o := &OutbindBody{SystemID: r.cstring("system_id", sizeSystemID), Password: r.cstring("password", sizePassword)}
	if r.err != nil {
		return nil, r.err
	}
	return o, nil
}
