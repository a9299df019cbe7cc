package smpp

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/internal/smppwire"
)

// UDH information element IDs (TS 23.040 §9.2.3.24).
const (
	ieConcat8  = 0x00
	iePorts8   = 0x04
	iePorts16  = 0x05
	ieConcat16 = 0x08
)

// dataCoding maps a TP-DCS to SMPP data_coding: 8-bit data is 0x04, UCS-2
// 0x08, the GSM default alphabet 0x00; a DCS with a message class keeps its
// 0xF_ form, which SMPP shares with TS 23.038.
func dataCoding(d pdu.DCS) byte {
	if byte(d)&0xF0 == 0xF0 {
		return byte(d)
	}
	switch d.Alphabet() {
	case pdu.Alphabet8Bit:
		return smppwire.DataCodingBinary
	case pdu.AlphabetUCS2:
		return smppwire.DataCodingUCS2
	}
	return smppwire.DataCodingDefault
}

// dcsOf maps SMPP data_coding back to a TP-DCS for an SMS-DELIVER.
func dcsOf(dc byte) pdu.DCS {
	switch {
	case dc&0xF0 == 0xF0:
		return pdu.DCS(dc)
	case dc == smppwire.DataCodingBinary || dc == 0x02:
		return pdu.DCS(0x04)
	case dc == smppwire.DataCodingUCS2:
		return pdu.DCS(0x08)
	}
	return pdu.DCS(0x00)
}

// relativeValidity renders d in SMPP's relative time format
// "YYMMDDhhmmss000R" (§7.1.1), or "" for none.
func relativeValidity(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	s := int64(d / time.Second)
	days := s / 86400
	years, days := days/365, days%365
	months, days := days/30, days%30
	s %= 86400
	if years > 99 {
		years = 99
	}
	return fmt.Sprintf("%02d%02d%02d%02d%02d%02d000R", years, months, days, s/3600, s/60%60, s%60)
}

// submitParts is what one submit_sm carries, taken from an SMS-SUBMIT.
type submitParts struct {
	sub    *pdu.Submit
	concat pdu.Concat // zero when not concatenated
	others []pdu.IE   // header IEs other than concatenation
}

func parseSubmit(tpdu []byte) (*submitParts, error) {
	sub, err := pdu.ParseSubmit(tpdu)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadTPDU, err)
	}
	p := &submitParts{sub: sub}
	if sub.HasUDH {
		p.concat = sub.UDH.Concat
		for _, ie := range sub.UDH.IEs {
			if ie.ID != ieConcat8 && ie.ID != ieConcat16 {
				p.others = append(p.others, ie)
			}
		}
	}
	return p, nil
}

// buildSM returns the submit_sm body fields common to every concatenation
// mode, without the message itself.
func (l *Link) baseSM(src Address, to string, p *submitParts) *smppwire.SM {
	dst := DestAddress(to)
	sm := &smppwire.SM{
		SourceTON: src.TON, SourceNPI: src.NPI, SourceAddr: src.Addr,
		DestTON: dst.TON, DestNPI: dst.NPI, DestAddr: dst.Addr,
		ProtocolID: p.sub.PID, DataCoding: dataCoding(p.sub.DCS),
		ValidityPeriod: relativeValidity(p.sub.Validity()),
	}
	if p.sub.StatusReport {
		sm.RegisteredDelivery = smppwire.RegDeliveryAlways
	}
	if p.sub.ReplyPath {
		sm.ESMClass |= smppwire.ESMReplyPath
	}
	if l.cfg.SourceTON != nil {
		sm.SourceTON = *l.cfg.SourceTON
	}
	if l.cfg.SourceNPI != nil {
		sm.SourceNPI = *l.cfg.SourceNPI
	}
	return sm
}

// segmentSM builds the submit_sm of one segment in ConcatUDH or ConcatSAR
// mode.
func (l *Link) segmentSM(src Address, to string, p *submitParts) (*smppwire.SM, error) {
	sm := l.baseSM(src, to, p)
	ies := p.sub.UDH.IEs
	if l.cfg.Concat == ConcatSAR && !p.concat.IsZero() {
		ies = p.others
		sm.TLVs = append(sm.TLVs,
			smppwire.U16(smppwire.TagSarMsgRefNum, p.concat.Ref),
			smppwire.U8(smppwire.TagSarTotalSegments, p.concat.Total),
			smppwire.U8(smppwire.TagSarSegmentSeqnum, p.concat.Seq))
	}
	if len(ies) > 0 {
		hdr, err := pdu.AppendUDH(nil, pdu.UDH{IEs: ies})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadTPDU, err)
		}
		sm.ESMClass |= smppwire.ESMUDHI
		sm.ShortMessage = append(hdr, p.sub.Data...)
	} else {
		sm.ShortMessage = append([]byte(nil), p.sub.Data...)
	}
	return sm, nil
}

// payloadSM builds the one submit_sm of a whole set in ConcatPayload mode
// from its segments in order: the data joined in message_payload, the
// application ports as source_port/destination_port, any other header IE
// kept in a UDH before the data.
func (l *Link) payloadSM(src Address, to string, segs []*submitParts) (*smppwire.SM, error) {
	first := segs[0]
	sm := l.baseSM(src, to, first)
	var data []byte
	var others []pdu.IE
	for _, ie := range first.others {
		switch ie.ID {
		case iePorts16:
			if len(ie.Data) == 4 {
				sm.TLVs = append(sm.TLVs,
					smppwire.U16(smppwire.TagDestinationPort, binary.BigEndian.Uint16(ie.Data)),
					smppwire.U16(smppwire.TagSourcePort, binary.BigEndian.Uint16(ie.Data[2:])))
				continue
			}
		case iePorts8:
			if len(ie.Data) == 2 {
				sm.TLVs = append(sm.TLVs,
					smppwire.U16(smppwire.TagDestinationPort, uint16(ie.Data[0])),
					smppwire.U16(smppwire.TagSourcePort, uint16(ie.Data[1])))
				continue
			}
		}
		others = append(others, ie)
	}
	if len(others) > 0 {
		hdr, err := pdu.AppendUDH(nil, pdu.UDH{IEs: others})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadTPDU, err)
		}
		sm.ESMClass |= smppwire.ESMUDHI
		data = hdr
	}
	for _, s := range segs {
		data = append(data, s.sub.Data...)
	}
	if len(data) <= smppwire.MaxShortMessage && len(segs) == 1 {
		sm.ShortMessage = data
	} else {
		sm.TLVs = append(sm.TLVs, smppwire.TLV{Tag: smppwire.TagMessagePayload, Value: data})
	}
	return sm, nil
}
