package modem

import (
	"context"
	"time"
)

// Quarantined is a received message the driver could not hand to the
// consumer (its PDU line is not hex, its SMSC part or its TPDU does not
// decode, a received slot holds an SMS-SUBMIT, ...), as the modem showed
// it. A stored message leaves the modem only after it is in the consumer's
// durable store or, as a Quarantined, in the Quarantine.
type Quarantined struct {
	ID      uint64    `json:"id"`                // assigned by the Quarantine
	Time    time.Time `json:"time"`              // when the driver read it
	Modem   string    `json:"modem"`             // the modem's name (its MSISDN when known)
	Storage string    `json:"storage,omitempty"` // memory it was stored in; "" for a direct +CMT/+CDS
	Index   int       `json:"index"`             // storage index; -1 for a direct delivery
	Lines   []string  `json:"lines"`             // the lines the modem sent for it (header and PDU line)
	Reason  string    `json:"reason"`            // why it could not be delivered
}

// Quarantine keeps what the driver could not deliver. Put returns the
// entry's ID once it is durably stored (fsync'd); on any error the driver
// leaves a stored message on the modem (and a direct one unacknowledged
// under +CSMS=1, so that the network delivers it again). A bounded store
// returns an error wrapping ErrQuarantineFull when full.
//
// Package modem/quarantine provides a bbolt file; modemlink puts the TPDUs
// the SMS bearer cannot decode in the same one.
type Quarantine interface {
	Put(ctx context.Context, q Quarantined) (uint64, error)
}

// ErrQuarantineFull is returned by a Quarantine that holds its maximum
// number of entries. It is retryable: the message stays on the modem until
// an operator has dealt with the quarantine.
var ErrQuarantineFull error = &kindError{"modem: quarantine full", true}

// errNoQuarantine is returned when no Quarantine is configured: the message
// stays on the modem.
var errNoQuarantine error = &kindError{"modem: no quarantine configured (WithQuarantine); the message stays on the modem", true}

// WithQuarantine sets where undeliverable received messages go before they
// are deleted from the modem. Without one they stay on the modem (and are
// reported once per slot as EventBadInput).
func WithQuarantine(q Quarantine) Option { return func(m *Modem) { m.quar = q } }

// maxQuarantineLines and maxQuarantineLine bound what one entry records.
const (
	maxQuarantineLines = 8
	maxQuarantineLine  = 1024
)

func quarantineLines(lines []string) []string {
	out := make([]string, 0, min(len(lines), maxQuarantineLines))
	for i, l := range lines {
		if i == maxQuarantineLines {
			break
		}
		if len(l) > maxQuarantineLine {
			l = l[:maxQuarantineLine]
		}
		out = append(out, l)
	}
	return out
}
