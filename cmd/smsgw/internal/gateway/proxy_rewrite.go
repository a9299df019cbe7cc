package gateway

import (
	"crypto/rand"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// rewriteRegistration adapts a Register or Update that an SMS-only device
// sends through the proxy to what the external server will see: a UDP
// client at the proxy's socket for that device. The binding's S becomes U
// (1.0: S→U, SQ→UQ; 1.1/1.2: the letter S is replaced by U, Q stays its own
// parameter) and the sms= parameter is removed, so the external server
// talks UDP to the proxy instead of trying SMS itself (LwM2M 1.1 Core
// §6.2.1: the binding says how the server reaches the client). Anything
// else is returned unchanged, as is a datagram that does not decode.
func rewriteRegistration(d []byte) ([]byte, bool) {
	var m message.Message
	m.Options = make(message.Options, 0, 64)
	if _, err := coder.DefaultCoder.Decode(d, &m); err != nil || m.Code != codes.POST {
		return d, false
	}
	path, err := m.Options.Path()
	if err != nil || (path != "/rd" && !strings.HasPrefix(path, "/rd/")) {
		return d, false
	}
	queries, err := m.Options.Queries()
	if err != nil || len(queries) == 0 {
		return d, false
	}
	v10 := true
	for _, q := range queries {
		if strings.HasPrefix(q, "lwm2m=") && q != "lwm2m=1.0" {
			v10 = false
		}
	}
	if strings.HasPrefix(path, "/rd/") {
		v10 = false // an Update has no lwm2m=; its b= follows the same letters either way
	}
	changed := false
	out := make([]string, 0, len(queries))
	for _, q := range queries {
		switch {
		case strings.HasPrefix(q, "sms="):
			changed = true
			continue
		case strings.HasPrefix(q, "b="):
			b := q[2:]
			nb := b
			switch {
			case v10 && b == "S":
				nb = "U"
			case v10 && b == "SQ":
				nb = "UQ"
			case !strings.Contains(b, "U"):
				nb = strings.Replace(b, "S", "U", 1)
			default:
				nb = strings.Replace(b, "S", "", 1)
			}
			if nb != b {
				changed = true
				q = "b=" + nb
			}
		}
		out = append(out, q)
	}
	if !changed {
		return d, false
	}
	opts := make(message.Options, 0, len(m.Options))
	for _, o := range m.Options {
		if o.ID != message.URIQuery {
			opts = append(opts, o)
		}
	}
	for _, q := range out {
		opts = opts.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	m.Options = opts
	n, err := coder.DefaultCoder.Size(m)
	if err != nil {
		return d, false
	}
	buf := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(m, buf); err != nil {
		return d, false
	}
	return buf, true
}

// registerEndpoint reports whether d is an LwM2M Register (CoAP POST to
// /rd) and the endpoint name of its ep= parameter ("" when absent).
func registerEndpoint(d []byte) (ep string, isRegister bool) {
	var m message.Message
	m.Options = make(message.Options, 0, 64)
	if _, err := coder.DefaultCoder.Decode(d, &m); err != nil || m.Code != codes.POST {
		return "", false
	}
	if path, err := m.Options.Path(); err != nil || path != "/rd" {
		return "", false
	}
	queries, _ := m.Options.Queries()
	for _, q := range queries {
		if v, ok := strings.CutPrefix(q, "ep="); ok {
			return v, true
		}
	}
	return "", true
}

// forbidden builds the 4.03 answer to request d: a piggybacked ACK for a
// CON, a NON for a NON (RFC 7252 §5.2), with reason as diagnostic payload.
func forbidden(d []byte, reason string) ([]byte, error) {
	var req message.Message
	req.Options = make(message.Options, 0, 64)
	if _, err := coder.DefaultCoder.Decode(d, &req); err != nil {
		return nil, err
	}
	resp := message.Message{Token: req.Token, Code: codes.Forbidden, Payload: []byte(reason), MessageID: req.MessageID, Type: message.Acknowledgement}
	if req.Type != message.Confirmable {
		resp.Type = message.NonConfirmable
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		resp.MessageID = int32(b[0])<<8 | int32(b[1])
	}
	n, err := coder.DefaultCoder.Size(resp)
	if err != nil {
		return nil, err
	}
	out := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(resp, out); err != nil {
		return nil, err
	}
	return out, nil
}
