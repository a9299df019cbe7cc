// Package queuetest holds the end-to-end proofs of LwM2M queue mode: the
// LwM2M server with lwm2m/queue and sleeping clients, on real UDP and on a
// simulated SMS network.
//
// # Usage
//
// It has no API: the package is its tests and benchmarks.
//
//	go test -race -count=1 ./lwm2m/queuetest
//	go test -run '^$' -bench . ./lwm2m/queuetest # wake latency, memory per sleeping device
//
// # Design
//
// The server runs with server.EnableQueue and the clients with
// client.StartQueueMode, on real UDP over loopback and on the simulated SMS
// network of modem/sim, each modem reached through a pty by the real AT
// driver (modem, bearer/sms/modemlink): nothing is mocked between the
// server's Go API and the device's objects. The proofs cover SMS cost,
// crash and restart (exactly once), deduplication of re-sent attempts,
// short timers and SMS-only devices.
package queuetest
