// Package poolbench measures SMS throughput through a modem.Pool of
// simulated modems against the physical limit of those modems.
//
// # Usage
//
//	res, err := poolbench.Measure(ctx, 16, 50*time.Millisecond, 40, 64)
//	// 16 modems, 50 ms a +CMGS, 40 SMS per modem, 64 senders; res: measured vs ideal
//
// The Go benchmark in package modem and the modem/cmd/poolbench command
// (which prints the table for the docs) share it.
//
// # Design
//
// Each simulated modem takes a fixed time per +CMGS, so N modems can at
// best send N/T messages a second. The ratio measured/ideal ([Result])
// shows what the driver and the pool lose to overhead and imbalance. A
// [Rig] is the pool and its modems, reusable across measurements.
package poolbench
