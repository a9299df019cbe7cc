package oscore

import (
	"errors"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

var timeNow = time.Now

// encodeDatagram returns the wire form of m.
func encodeDatagram(m *message.Message) ([]byte, error) {
	n, err := coder.DefaultCoder.Size(*m)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(*m, b); err != nil {
		return nil, err
	}
	return b, nil
}

// decodeDatagram parses a CoAP datagram, keeping every option raw (no
// option definitions: the layer above applies its own rules).
func decodeDatagram(b []byte) (*message.Message, error) {
	m := &message.Message{Options: make(message.Options, 0, 16)}
	for {
		_, err := coder.DefaultCoder.Decode(b, m)
		if errors.Is(err, message.ErrOptionsTooSmall) && cap(m.Options) < 512 {
			m.Options = make(message.Options, 0, 4*cap(m.Options))
			continue
		}
		if err != nil {
			return nil, err
		}
		return m, nil
	}
}
