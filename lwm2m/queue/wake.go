package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// WakeTarget says how to wake one device by SMS. The zero WakeTarget
// names no number: Wake fails with ErrBadTarget.
type WakeTarget struct {
	// MSISDN is the device's number (any form bearer/sms.ParseMSISDN
	// accepts; the "sms=" registration parameter or configuration).
	MSISDN string
	// Version is the device's LwM2M version: "1.0", "1.1" or "1.2".
	Version string
	// Binding is the registered binding. LwM2M 1.0 devices are wakeable
	// with binding "UQS" (UDP queue mode plus SMS) or "SQ".
	Binding string
	// Trigger is the value of /1/x/21 (LwM2M 1.1/1.2): true lets the server
	// trigger the device over SMS.
	Trigger bool
	// ServerInstance is x in /1/x/8.
	ServerInstance uint16
	// WAPPush frames the trigger as WAP Push (LwM2M 1.1 Core appendix)
	// rather than raw CoAP; the SMS waker (lwm2m/smswake) applies it.
	WAPPush bool
	// TransportArg, if set, is the binding letter ("U", "T", "S" or "N")
	// passed as Execute argument 0 of /1/x/8 (LwM2M 1.1 "0='U'"): the
	// transport the device should send its Update over.
	TransportArg string
	// SIM is the server number the device knows (its SMS is only accepted
	// from it); "" lets the SMS bearer choose.
	SIM string
	// Deadline is the earliest Expires of the device's queued requests, set
	// by the Manager: a wake-up is worth nothing after it, and an SMS
	// bearer that knows it sends the most urgent wake-ups first.
	Deadline time.Time
}

// Wakeable reports whether the LwM2M rules allow an SMS wake-up: a number,
// and binding UQS/SQ (1.0) or Trigger true (1.1, 1.2).
func (t *WakeTarget) Wakeable() bool {
	if t == nil || t.MSISDN == "" {
		return false
	}
	switch t.Version {
	case "1.0":
		b := strings.ToUpper(t.Binding)
		return strings.Contains(b, "S") && strings.Contains(b, "Q")
	case "1.1", "1.2":
		return t.Trigger
	}
	return false
}

// Waker sends a wake-up to a device. Wake returns once the wake-up is
// handed to the bearer (for SMS: stored in the durable outbox); whether
// the device shows up is learned from Manager.Seen.
type Waker interface {
	Wake(ctx context.Context, ep string, t WakeTarget) error
}

// WakerFunc adapts a function to Waker.
type WakerFunc func(ctx context.Context, ep string, t WakeTarget) error

// Wake calls f.
func (f WakerFunc) Wake(ctx context.Context, ep string, t WakeTarget) error { return f(ctx, ep, t) }

// ErrBadTarget is wrapped by errors about an unusable WakeTarget.
var ErrBadTarget = errors.New("queue: bad wake target")

// TriggerArgs returns the Execute argument payload of the Registration
// Update Trigger: "" for none, or "0='U'" for TransportArg "U" (LwM2M 1.1
// Core, Execute operation, argument syntax: arg = DIGIT ["=" "'" *CHAR "'"]).
func TriggerArgs(transport string) (string, error) {
	switch transport {
	case "":
		return "", nil
	case "U", "T", "S", "N":
		return "0='" + transport + "'", nil
	}
	return "", fmt.Errorf("%w: transport argument %q is not one of U, T, S, N", ErrBadTarget, transport)
}

// NoResponseSuccess is the No-Response option value (RFC 7967 §2.1) the
// trigger carries: "not interested in 2.xx responses". The device's
// answer to the trigger is of no use to the server (the device shows up by
// its Update), and on SMS it costs one more message; errors (4.xx, 5.xx)
// are still answered. A device that does not know the option (it is
// elective) answers anyway, and the server's Endpoint.Fire matches that
// answer and drops it without a Reset.
const NoResponseSuccess = 0x02

// triggerMessage returns the trigger as a CoAP message (MID and token
// left to the caller): a NON POST (LwM2M Execute) to /1/<server
// instance>/8 with No-Response 2.xx, carrying the optional transport
// argument as a text/plain payload.
func triggerMessage(t WakeTarget) (message.Message, error) {
	args, err := TriggerArgs(t.TransportArg)
	if err != nil {
		return message.Message{}, err
	}
	buf := make([]byte, 0, 8)
	opts := message.Options{}
	for _, seg := range []string{"1", strconv.Itoa(int(t.ServerInstance)), "8"} {
		opts = opts.Add(message.Option{ID: message.URIPath, Value: []byte(seg)})
	}
	var payload []byte
	if args != "" {
		payload = []byte(args)
		opts, _, err = opts.SetContentFormat(buf[:cap(buf)], message.TextPlain)
		if err != nil {
			return message.Message{}, fmt.Errorf("queue: trigger options: %w", err)
		}
	}
	opts = opts.Add(message.Option{ID: message.NoResponse, Value: []byte{NoResponseSuccess}})
	return message.Message{Options: opts, Code: codes.POST, Payload: payload, Type: message.NonConfirmable}, nil
}

// TriggerMessage encodes the SMS trigger: a CoAP NON POST (LwM2M Execute)
// to /1/<server instance>/8 with message ID mid and token, the No-Response
// option asking for no success answer (NoResponseSuccess), and the
// optional transport argument as a text/plain payload. The SMS bearer
// frames it as raw CoAP or WAP Push. Encoding is go-coap's udp/coder.
func TriggerMessage(t WakeTarget, mid uint16, token []byte) ([]byte, error) {
	if len(token) > message.MaxTokenSize {
		return nil, fmt.Errorf("%w: token of %d bytes", ErrBadTarget, len(token))
	}
	msg, err := triggerMessage(t)
	if err != nil {
		return nil, err
	}
	msg.Token, msg.MessageID = token, int32(mid)
	size, err := coder.DefaultCoder.Size(msg)
	if err != nil {
		return nil, fmt.Errorf("queue: trigger size: %w", err)
	}
	out := make([]byte, size)
	n, err := coder.DefaultCoder.Encode(msg, out)
	if err != nil {
		return nil, fmt.Errorf("queue: trigger encode: %w", err)
	}
	return out[:n], nil
}

// TriggerRequest returns the trigger of TriggerMessage as a request for
// a bearer.Endpoint (bearer.Endpoint.Fire), with token and t.Deadline as
// its expiry; the caller sets Peer. The Endpoint picks the message ID.
func TriggerRequest(t WakeTarget, token []byte) (*bearer.Request, error) {
	if len(token) > message.MaxTokenSize {
		return nil, fmt.Errorf("%w: token of %d bytes", ErrBadTarget, len(token))
	}
	msg, err := triggerMessage(t)
	if err != nil {
		return nil, err
	}
	return &bearer.Request{Code: msg.Code, Type: message.NonConfirmable, Token: token, Options: msg.Options,
		Payload: msg.Payload, Expires: t.Deadline}, nil
}

// RefuseWake marks err, a Waker's error, as one that retrying later will
// not cure (the day's SMS budget spent, a number the bearer does not
// know, a trigger the peer's security mode refuses): the result matches
// ErrWakeRefused and everything err matches, and reads as err. The
// Manager then gives the wake-up up at once (ErrNotWoken). RefuseWake(nil)
// is nil.
func RefuseWake(err error) error {
	if err == nil || errors.Is(err, ErrWakeRefused) {
		return err
	}
	return &refusedError{err}
}

// refusedError is err, matching ErrWakeRefused as well.
type refusedError struct{ err error }

func (e *refusedError) Error() string   { return e.err.Error() }
func (e *refusedError) Unwrap() []error { return []error{ErrWakeRefused, e.err} }

// permanentWakeError reports wake errors that retrying later today will
// not cure: those the Waker refused (ErrWakeRefused: for SMS, budget
// exhausted, unknown peer, wrong security mode), an unprotected trigger
// to a secured peer, a bad target, a waker not made by its constructor.
func permanentWakeError(err error) bool {
	return errors.Is(err, ErrWakeRefused) || errors.Is(err, ErrUnprotectedTrigger) || errors.Is(err, ErrBadTarget) ||
		errors.Is(err, ErrNotCreated)
}
