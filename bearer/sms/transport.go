package sms

import (
	"context"
)

// Transport is what the SMS bearer needs from the modems, and nothing more:
// send a TPDU from a SIM, and receive TPDUs with an explicit acknowledgement.
// An adapter over modem.Pool implements it (bearer/sms/modemlink); so can a
// test double.
type Transport interface {
	// SendTPDU sends one SMS-SUBMIT TPDU (no SMSC prefix) to to. from names
	// the SIM (its MSISDN) it must leave from, or is "" to let the transport
	// choose among SIMs allowed for to. It returns the SIM used and the
	// TP-Message-Reference the modem assigned. Errors say whether they are
	// worth retrying with a Retryable() bool method.
	SendTPDU(ctx context.Context, from, to string, tpdu []byte) (sim string, mr uint8, err error)
	// Inbound delivers received SMS-DELIVER and SMS-STATUS-REPORT TPDUs.
	// The channel is closed when the transport closes.
	Inbound() <-chan Inbound
}

// Inbound is one TPDU taken from a modem. Exactly one of Ack and Reject must
// be called: Ack once the bearer has stored the message or handed it on (the
// modem then deletes it, or acknowledges it to the network with +CNMA);
// Reject leaves it with the modem or the network for redelivery.
type Inbound struct {
	// SIM is the MSISDN of the SIM that received it.
	SIM string
	// TPDU is the SMS-DELIVER or SMS-STATUS-REPORT, without the SMSC prefix.
	TPDU []byte
	// Ack and Reject may be nil for transports with nothing to acknowledge.
	Ack    func(ctx context.Context) error
	Reject func(ctx context.Context) error
}

func (in Inbound) ack(ctx context.Context) error {
	if in.Ack == nil {
		return nil
	}
	return in.Ack(ctx)
}

func (in Inbound) reject(ctx context.Context) error {
	if in.Reject == nil {
		return nil
	}
	return in.Reject(ctx)
}
