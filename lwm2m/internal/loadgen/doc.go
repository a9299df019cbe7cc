// Package loadgen measures the LwM2M server's registration interface.
//
// # Usage
//
//	res, err := loadgen.Run(ctx, loadgen.Config{N: 100_000, Checkpoints: []int{10_000, 100_000}})
//	perDevice, err := loadgen.StateBytes(100_000, payload) // the registration state alone
//
// lwm2m/internal/lwm2mload is the command that prints the figures.
//
// # Design
//
// It starts a server on loopback UDP and registers N distinct endpoint
// names from a pool of client sockets, closed-loop (each worker waits for
// its 2.01 before sending the next Register), and reports registrations
// per second at checkpoints and the heap growth per registered device
// ([Result], [Checkpoint]). It drives m2mbearer's own bearer.Endpoint and
// server in one process, so that heap growth can be read with
// runtime.ReadMemStats.
package loadgen
