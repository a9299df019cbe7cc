// Package pipe provides in-memory bearers for tests, with seeded loss,
// duplication, reordering and delay.
//
// # Usage
//
//	srvConn, cliConn, err := pipe.New(pipe.WithNames("server", "device"),
//		pipe.WithParams(sms.DefaultParams()), // imitate an SMS bearer
//		pipe.WithFaults(pipe.Faults{Loss: 0.1}), pipe.WithSeed(7))
//	server, _ := bearer.NewEndpoint(srvConn, bearer.WithHandler(mux))
//	client, _ := bearer.NewEndpoint(cliConn)
//	resp, err := client.Get(ctx, pipe.Addr("server"), "/3/0/0")
//
// [New] returns the common pair; a [Hub] ([NewHub], [Hub.Conn]) connects
// any number of named endpoints. Each [Conn] is a bearer.Bearer with the
// size limit and RFC 7252 parameters of the bearer it imitates
// ([WithParams]) and counts what it did ([Stats]).
//
// # Design
//
// Deterministic faults. Fault decisions ([Faults]) come from a
// math/rand/v2 PCG source seeded per sender, so a given seed and send
// order give the same losses and duplicates on every run; delivery times
// still depend on the scheduler.
//
// Hand-written: it is a test double for bearer.Bearer and has no library
// counterpart.
package pipe
