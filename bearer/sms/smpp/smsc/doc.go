// Package smsc is a simulated SMSC that speaks SMPP 3.4 on loopback in
// front of a modem/sim Network, so that an SMPP client exchanges SMS with
// the simulated devices and modems on that network.
//
// # Usage
//
//	net, err := sim.NewNetwork()
//	srv, err := smsc.Start(smsc.Config{Network: net, Accounts: []smsc.Account{
//		{SystemID: "city", Password: "secret", Numbers: []string{"+15550100"}},
//	}})
//	if err != nil { ... }
//	defer srv.Close()
//	link, err := smpp.Dial(smpp.Config{Addr: srv.Addr(), SystemID: "city", ...})
//
// # Design
//
// A submit_sm becomes an SMS-SUBMIT from the account's number, what the
// network delivers to that number becomes a deliver_sm, and the network's
// status reports become SMPP delivery receipts.
//
// It lives beside the client (not in modem/sim) because it converts with
// the bearer's TPDU codec; it uses the Network only through its exported
// Endpoint API. Faults can be injected at any time ([Faults],
// [Server.SetFaults]): throttling (a rate above which submit_sm is
// answered ESME_RTHROTTLED, or a random share), bind refusal, dropped
// links ([Server.DropSessions]), receipts late or missing.
package smsc
