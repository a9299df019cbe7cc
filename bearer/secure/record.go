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
// DTLS version (1.0 0xFEFF or 1.2 0xFEFD), and a length that fits b. An
// epoch-0 ClientHello record may carry any {254, xx} version (see
// legacyHelloVersion).
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
	ri.epoch = binary.BigEndian.Uint16(b[3:5])
	if b[1] != 0xFE || (b[2] != 0xFF && b[2] != 0xFD && !isHelloRecord(b)) {
		return ri, fmt.Errorf("%w: version %#02x%02x", errBadRecord, b[1], b[2])
	}
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

// isHelloRecord reports whether the record at the start of b is an epoch-0
// handshake record whose body starts a ClientHello (its header and first
// body byte are there; the length is checked by the caller).
func isHelloRecord(b []byte) bool {
	return len(b) > recordHeaderLen && b[0] == contentHandshake && b[3] == 0 && b[4] == 0 &&
		b[recordHeaderLen] == handshakeClientHello
}

// helloRecordVersion is the record-layer version legacyHelloVersion
// writes into a ClientHello record: DTLS 1.0, what RFC 6347 §4.1 lets a
// client send before it knows the server's version.
const helloRecordVersion = 0xFF // minor byte of 0xFEFF

// legacyHelloVersion rewrites, in place, the record-layer version of every
// epoch-0 ClientHello record of datagram b whose version is {254, xx} but
// neither DTLS 1.0 (0xFEFF) nor 1.2 (0xFEFD) to 0xFEFF, and returns how
// many it rewrote. Records it does not understand end the walk untouched.
//
// Why: a TLS server accepts any {03, xx} record version on a ClientHello
// (RFC 5246 Appendix E.1) because the client does not know the server's
// version yet; DTLS peers do the same with {254, xx}. mbedTLS 2.x (Anjay's
// default build) sends its first ClientHello with record version 0xFE00,
// which OpenSSL and GnuTLS accept; pion/dtls refuses any record whose
// version is not 0xFEFF or 0xFEFD. The record header of an epoch-0
// handshake record is covered by no MAC and is not part of the handshake
// transcript (RFC 6347 §4.2.6 hashes handshake messages only), so
// rewriting it changes nothing either side authenticates; the version the
// client offers, client_version inside the ClientHello, is left alone and
// pion negotiates from it as before. Records of any other kind keep the
// strict check (parseRecord and pion refuse them).
func legacyHelloVersion(b []byte) int {
	n := 0
	for len(b) >= recordHeaderLen {
		length := int(binary.BigEndian.Uint16(b[11:13]))
		if b[0] == contentTLS12CID || recordHeaderLen+length > len(b) {
			return n
		}
		if b[1] == 0xFE && b[2] != 0xFF && b[2] != 0xFD && length > 0 && isHelloRecord(b) {
			b[2] = helloRecordVersion
			n++
		}
		b = b[recordHeaderLen+length:]
	}
	return n
}

// hasRecord reports whether datagram b holds a record of content type ct
// (walking the records of an unencrypted-header datagram; CID records end
// the walk, their length field sits elsewhere).
func hasRecord(b []byte, ct byte) bool {
	for len(b) >= recordHeaderLen {
		if b[0] == ct {
			return true
		}
		if b[0] == contentTLS12CID {
			return false
		}
		b = b[recordHeaderLen+min(int(binary.BigEndian.Uint16(b[11:13])), len(b)-recordHeaderLen):]
	}
	return false
}

// helloSessionID returns the session ID a ClientHello offers (RFC 5246
// §7.4.1.2: a client that wants to resume sends the session's ID) when
// datagram b starts with an epoch-0 ClientHello record holding the start
// of the message; nil otherwise (no ID offered, or not there).
func helloSessionID(b []byte) []byte {
	if !isHelloRecord(b) {
		return nil
	}
	length := int(binary.BigEndian.Uint16(b[11:13]))
	rec := b[recordHeaderLen:min(len(b), recordHeaderLen+length)]
	// handshake header (12): type, length(3), message_seq(2),
	// fragment_offset(3), fragment_length(3); then client_version (2),
	// random (32), session_id <0..32>.
	const idAt = 12 + 2 + 32
	if len(rec) <= idAt || rec[6] != 0 || rec[7] != 0 || rec[8] != 0 {
		return nil
	}
	n := int(rec[idAt])
	if n == 0 || n > 32 || len(rec) < idAt+1+n {
		return nil
	}
	return bytes.Clone(rec[idAt+1 : idAt+1+n])
}

// maxHelloLen bounds the ClientHello a helloAssembler reassembles.
const maxHelloLen = 4096

// helloAssembler puts a fragmented ClientHello back together (RFC 6347
// §4.2.3) far enough to read its extensions; the demultiplexer feeds it
// the ClientHello records of one peer. It is bounded by maxHelloLen.
type helloAssembler struct {
	seq     uint16
	body    []byte
	covered []bool
	left    int
}

// add feeds the ClientHello fragments of datagram b and returns the whole
// message body when the last fragment came.
func (h *helloAssembler) add(b []byte) *handshake.MessageClientHello {
	var done *handshake.MessageClientHello
	for len(b) >= recordHeaderLen {
		length := int(binary.BigEndian.Uint16(b[11:13]))
		if b[0] == contentTLS12CID || recordHeaderLen+length > len(b) {
			return done
		}
		rec := b[recordHeaderLen : recordHeaderLen+length]
		b = b[recordHeaderLen+length:]
		if len(rec) < handshake.HeaderLength || rec[0] != handshakeClientHello {
			continue
		}
		var hh handshake.Header
		if hh.Unmarshal(rec) != nil || hh.Length > maxHelloLen || hh.FragmentOffset+hh.FragmentLength > hh.Length ||
			int(hh.FragmentLength) > len(rec)-handshake.HeaderLength {
			continue
		}
		if h.body == nil || h.seq != hh.MessageSequence || len(h.body) != int(hh.Length) {
			h.seq, h.body, h.covered, h.left = hh.MessageSequence, make([]byte, hh.Length), make([]bool, hh.Length), int(hh.Length)
		}
		frag := rec[handshake.HeaderLength : handshake.HeaderLength+int(hh.FragmentLength)]
		for i, c := range frag {
			j := int(hh.FragmentOffset) + i
			if !h.covered[j] {
				h.covered[j] = true
				h.left--
			}
			h.body[j] = c
		}
		if h.left == 0 {
			var m handshake.MessageClientHello
			if m.Unmarshal(h.body) == nil {
				done = &m
			}
			h.body = nil
		}
	}
	return done
}

// wantsOwnCID reports whether a ClientHello asks the server to send it
// records with a non-empty connection ID of its own (RFC 9146 §3).
func wantsOwnCID(m *handshake.MessageClientHello) bool {
	for _, e := range m.Extensions {
		if c, ok := e.(*extension.ConnectionID); ok && len(c.CID) > 0 {
			return true
		}
	}
	return false
}
