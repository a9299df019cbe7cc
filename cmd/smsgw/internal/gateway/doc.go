// Package gateway wires m2mbearer into the smsgw daemon: modems, bearers,
// the LwM2M server, queue mode, proxy mode, firmware updates, the HTTP API,
// the web UI and metrics.
//
// # Usage
//
//	g, err := gateway.New(ctx, cfg, log) // cfg from cmd/smsgw/internal/config
//	if err != nil { ... }
//	info := g.Info()                     // where to look: API, token file, listeners, ptys
//	<-ctx.Done()
//	err = g.Shutdown(shutdownCtx)        // stops everything it started
//
// [Gateway.Handler] is the HTTP API (JSON, server-sent events, /metrics,
// the web UI); [FleetPlan] and [StartFleet] run the demo streetlights.
//
// # Design
//
// What it wires. Modems (real ones, or virtual modems of the simulated SMS
// network on pseudo-terminals driven by the real modem driver) and SMPP
// links; the SMS bearer over them; the UDP bearer, DTLS on UDP and over
// SMS, OSCORE; the LwM2M server on all of them; queue mode with SMS
// wake-ups (lwm2m/server EnableQueue over lwm2m/queue); proxy mode (SMS-only
// devices bridged to an external LwM2M server over UDP); the demo fleet;
// the HTTP JSON API with server-sent events, the embedded web UI and
// Prometheus metrics; and firmware updates: the image store under the data
// dir, the Package URI servers (CoAP Block2 under /fw/ on the UDP and DTLS
// listeners, HTTP under /fw/ on the API listener), single-device updates
// and campaigns persisted in <data_dir>/campaigns.db (lwm2m/firmware).
//
// Ours and a library's. HTTP routing is net/http's ServeMux, metrics are
// prometheus/client_golang, state is bbolt (or Redis, redisstore) through
// the stores of lwm2m/registry, lwm2m/queue and bearer/sms. The wiring, the
// API handlers, the OpenAPI document, the web UI, the proxy relay and the
// simulated device transport, the firmware API and the demo lights'
// persistent firmware state are hand-written here, because they are the
// daemon's own policy; the Object 5 procedure, campaigns and image store
// are lwm2m/firmware's. Queue mode itself (durable queues, the executor
// with attempt tokens, wake-ups) is lwm2m/server and lwm2m/queue; the
// gateway only supplies the device table and the SMS bearer.
package gateway
