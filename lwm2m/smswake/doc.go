// Package smswake wakes sleeping LwM2M devices by SMS: it is the
// [queue.Waker] that sends the Registration Update Trigger (an Execute of
// /1/x/8 as a CoAP NON) over the SMS bearer, so that lwm2m/queue and
// lwm2m/server know no SMS.
//
// # Usage
//
//	w := smswake.New(smsBearer, nil)  // smsBearer: *sms.Bearer
//	w.Endpoint = smsEndpoint          // optional: the server's SMS bearer.Endpoint
//	m, err := queue.New(queue.Config{Store: store, Executor: srv, Waker: w})
//
//	// lwm2m/server queue mode: learn the configured numbers of devices
//	// that registered over UDP as SMS peers.
//	q, err := srv.EnableQueue(server.QueueConfig{Config: cfg,
//		Peers: smswake.Peers{Setter: smsBearer, Security: sms.ModeNoSec}})
//
// [Waker.Wake] returns once the trigger is in the SMS bearer's durable
// outbox; the device shows up by its Update ([queue.Manager.Seen]).
//
// # Design
//
// One edge. The queue core sees a [queue.WakeTarget] (number, version,
// binding, Trigger, WAP Push or raw CoAP) and a [queue.Waker]; this
// package turns it into an SMS: [sms.ParseMSISDN] for the number,
// [Framing] for the peer's framing, [queue.TriggerMessage] or
// [queue.TriggerRequest] for the datagram.
//
// Final refusals marked. The SMS bearer's refusals that retrying will not
// cure (the day's budget spent, an unknown number, a security mode that
// refuses the trigger) are returned through [queue.RefuseWake], so they
// match [queue.ErrWakeRefused] and the Manager fails the device's requests
// at once with [queue.ErrNotWoken], the SMS error as the cause.
//
// Never downgraded. A peer the bearer knows as DTLS or OSCORE gets its
// trigger only through [Waker].Endpoint, under its security; without it
// the trigger is refused with [queue.ErrUnprotectedTrigger], costs no SMS
// and is counted ([Waker.Refused]). [Peers] adds server-learned peers in
// the mode the operator chose, DTLS unless told otherwise.
package smswake
