// Package route sends the SMS bearer's traffic over several transports (a
// modem pool, SMPP links) by the number each message must leave from, with
// failover between the transports that may send for that number.
//
// # Usage
//
//	mux, err := route.New([]route.Route{
//		{Name: "modems", Transport: modemLink, Numbers: []string{"+4915100000001"}},
//		{Name: "smpp:op1", Transport: smppLink, Numbers: []string{"+4915100000001", "+15550100"}},
//	}, route.WithStateFile(filepath.Join(dir, "mr.db")))
//	if err != nil { ... }
//	b, err := sms.New(mux, sms.Config{StateDir: dir, ...})
//
// # Design
//
// Routed by the sending number. A device accepts SMS only from the server
// number it was provisioned with (LwM2M SMS binding), so the route is
// chosen by that number: every [Route] lists the numbers it can send from
// (a modem pool its SIMs, an SMPP link the source numbers of its account)
// and a number reachable both ways (an operator's long number on its SMSC
// account and on a SIM) fails over between them ([ErrNoRoute] when none
// can send).
//
// Transparent. A [Mux] is itself an sms.Transport: the bearer, its outbox
// and status-report correlation sit above it unchanged.
//
// TP-MRs that cannot collide. For a number with several routes, whose
// TP-MR spaces would collide, the Mux hands out the TP-MRs and maps each
// route's own durably ([WithStateFile], [MRStats]). A status report that
// overtakes the mapping of its own send is held until the mapping is
// stored.
package route
