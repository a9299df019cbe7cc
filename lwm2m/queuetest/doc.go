// Package queuetest holds the end-to-end proofs of LwM2M queue mode (issue
// 8): the LwM2M server with lwm2m/queue (server.EnableQueue) and sleeping
// clients (client.StartQueueMode) on real UDP over loopback and on the
// simulated SMS network of modem/sim, each modem reached through a pty by
// the real AT driver (modem, bearer/sms/modemlink). It has no API: the
// package is its tests and benchmarks.
package queuetest
