// Package server is an LwM2M server (1.0, 1.1, 1.2) that runs over any
// bearer: UDP, DTLS, OSCORE or SMS.
//
// A [Server] takes registrations on /rd (Register, Update, De-register,
// lifetime expiry; Core §6.2), publishes each as an [Event], and gives a Go
// API for device management and information reporting: [Server.Read],
// [Server.Write], [Server.Execute], [Server.Observe] and the rest.
//
// # Usage
//
// The Server is the [bearer.Handler] of one [bearer.Endpoint] per
// transport, and sends its own requests through the Endpoint the device
// last used:
//
//	srv, err := server.New(new(registry.Memory))
//	defer srv.Close()
//	ep, err := bearer.NewEndpoint(conn, bearer.WithHandler(srv.Handler("udp")))
//	if err != nil { ... }
//	srv.Attach("udp", ep)
//
//	events := srv.Subscribe(1024)
//	for ev := range events.C {
//		if ev.Kind == server.Registered {
//			c, err := srv.Read(ctx, ev.Registration.Endpoint, path.MustParse("/3/0"))
//			...
//		}
//	}
//
// [Server.ReadValues] and [Server.WriteValues] decode and encode the
// payload (lwm2m/content) for you; [Server.Read] and [Server.Write] work
// with a raw [Content].
//
// # Design
//
// Any bearer. Existing Go LwM2M servers are tied to their own CoAP stacks;
// this one is written over bearer.Endpoint and go-coap's message types, so
// the same Server serves every transport at once ([Server.Attach] one
// Endpoint per transport name).
//
// Who may register as whom. An [IdentityBinding] (or [Bindings], the operator's
// table, with [StaticSecurity] in memory) binds each endpoint name to a
// DTLS, OSCORE or SMS identity: a device authenticated as A cannot register
// or update as B ([Authorize], [ErrForbidden]). NoSec is refused unless
// allowed ([WithNoSec], [NoSecRule]).
//
// Queue mode. [Server.EnableQueue] puts lwm2m/queue under the Go API: a
// call for a device registered in queue mode is stored durably and sent
// while the device is awake, after an SMS wake-up where the device allows
// one. A call whose context ends while its request waits returns a
// [*QueuedError]; the request stays queued and [Queue.Wait] gets its result
// later. The queue, its store and the trigger are
// lwm2m/queue's; the mapping of DM calls to queued requests is here. The
// server knows no SMS bearer: the SMS waker (lwm2m/smswake) comes in as
// the queue's Waker, the SMS peers it learns go out through a
// [PeerAdder] (smswake.Peers), and SMS numbers are compared by the
// module's one E.164 rule set.
//
// Registrations live in a registry.Store (in memory, bbolt or Redis).
// Bootstrap is served by [BootstrapServer]. A device's error response is an
// [*Error] ([Code] gives its CoAP code); [Unavailable] says a store is out of
// reach for now (answer 5.03 and retry later).
package server
