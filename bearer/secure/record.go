package secure

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// DTLS 1.2 record layer constants (RFC 6347 §4.1, RFC 9146 §4).
const (
	contentChangeCipherSpec = 20
	contentAlert            = 21
	contentHandshake        = 22
	contentApplicationData  = 23
	contentTLS12CID         = 25

	handshakeClientHello = 1
	handshakeServerHello = 2

	recordHeaderLen = 13 // type(1) version(2) epoch(2) sequence_number(6) length(2)
)

// Record-layer overhead of the AEAD suites this package uses by default
// (RFC 6655, RFC 7925): 8-byte explicit nonce and 8-byte CCM_8 tag.
const (
	ccm8ExplicitNonce = 8
	ccm8Tag           = 8
)

// errBadRecord is wrapped by parseRecord errors: the datagram does not start
// with a well-formed DTLS record and is dropped by the demultiplexer.
var errBadRecord = errors.New("secure: malformed DTLS record")

// recordInfo is what the demultiplexer needs from the first record of a
// datagram to route it: content type, epoch, the connection ID of a
// tls12_cid record and whether the record starts a ClientHello.
type recordInfo struct {
	contentType byte
	epoch       uint16
	cid         []byte // aliases the datagram; set for tls12_cid records
	clientHello bool
}

// parseRecord inspects the first DTLS record of datagram b. cidLen is the
// length of the connection IDs this side issued (0 when it issues none);
// RFC 9146 records carry no CID length, so the receiver must know it.
// parseRecord validates only what routing needs: a known content type, a
// DTLS version (1.0 0xFEFF or 1.2 0xFEFD), and a length that fits b.
func parseRecord(b []byte, cidLen int) (recordInfo, error) {
	var ri recordInfo
	if len(b) < recordHeaderLen {
		return ri, fmt.Errorf("%w: %d bytes, shorter than a record header", errBadRecord, len(b))
	}
	ri.contentType = b[0]
	switch ri.contentType {
	case contentChangeCipherSpec, contentAlert, contentHandshake, contentApplicationData:
	case contentTLS12CID:
		if cidLen <= 0 {
			return ri, fmt.Errorf("%w: tls12_cid record but no connection IDs issued", errBadRecord)
		}
	default:
		return ri, fmt.Errorf("%w: content type %d", errBadRecord, ri.contentType)
	}
	if b[1] != 0xFE || (b[2] != 0xFF && b[2] != 0xFD) {
		return ri, fmt.Errorf("%w: version %#02x%02x", errBadRecord, b[1], b[2])
	}
	ri.epoch = binary.BigEndian.Uint16(b[3:5])
	hdr := recordHeaderLen
	if ri.contentType == contentTLS12CID {
		hdr += cidLen
		if len(b) < hdr {
			return ri, fmt.Errorf("%w: tls12_cid record shorter than its header", errBadRecord)
		}
		// RFC 9146 §4: the CID sits between sequence_number and length.
		ri.cid = b[11 : 11+cidLen]
	}
	length := int(binary.BigEndian.Uint16(b[hdr-2 : hdr]))
	if length == 0 || hdr+length > len(b) {
		return ri, fmt.Errorf("%w: record length %d, %d bytes left", errBadRecord, length, len(b)-hdr)
	}
	ri.clientHello = ri.contentType == contentHandshake && ri.epoch == 0 && b[hdr] == handshakeClientHello
	return ri, nil
}

// serverHelloCID looks for a ServerHello in datagram b and returns the
// connection ID it carries (RFC 9146 §3): the CID the client must put in
// its records. found is false when b holds no ServerHello; cid is empty
// when the server issued none. The parsing is pion/dtls's.
func serverHelloCID(b []byte) (cid []byte, found bool) {
	pkts, err := recordlayer.UnpackDatagram(b)
	if err != nil {
		return nil, false
	}
	for _, pkt := range pkts {
		var h recordlayer.Header
		if h.Unmarshal(pkt) != nil || h.ContentType != protocol.ContentTypeHandshake || h.Epoch != 0 {
			continue
		}
		var hh handshake.Header
		body := pkt[recordlayer.FixedHeaderSize:]
		if hh.Unmarshal(body) != nil || hh.Type != handshake.TypeServerHello {
			continue
		}
		if hh.FragmentOffset != 0 || hh.FragmentLength != hh.Length {
			continue // fragmented ServerHello: not worth reassembling here
		}
		var sh handshake.MessageServerHello
		if sh.Unmarshal(body[handshake.HeaderLength:]) != nil {
			continue
		}
		for _, ext := range sh.Extensions {
			if e, ok := ext.(*extension.ConnectionID); ok {
				return bytes.Clone(e.CID), true
			}
		}
		return nil, true
	}
	return nil, false
}

// isServerHello reports whether datagram b starts with an epoch-0 record
// carrying a ServerHello: a pion server sends one only after the client
// echoed a valid HelloVerifyRequest cookie, i.e. proved it receives at its
// address.
func isServerHello(b []byte) bool {
	return len(b) > recordHeaderLen && b[0] == contentHandshake && b[3] == 0 && b[4] == 0 &&
		b[recordHeaderLen] == handshakeServerHello
}
