// Package smstest is an in-memory SMS network for tests of the SMS bearer.
//
// # Usage
//
//	net := smstest.NewNetwork(1, smstest.Faults{Loss: 0.1}) // seed 1
//	defer net.Close()
//	server, device := net.AddSIM("+4915100000001"), net.AddSIM("+4917000000042")
//	b, err := sms.New(server, sms.Config{StateDir: t.TempDir(), ...})
//
// # Design
//
// Each [SIM] implements sms.Transport; the network's SMSC turns each
// SMS-SUBMIT into the SMS-DELIVER the recipient receives, with seeded
// loss, duplication and reordering of segments ([Faults]) and status
// reports. It is a test double; the simulator of real AT modems is
// modem/sim.
package smstest
