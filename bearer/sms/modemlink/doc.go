// Package modemlink connects the SMS bearer to real (or simulated) AT
// modems: it adapts a modem.Pool to sms.Transport.
//
// # Usage
//
//	pool, err := modem.NewPool()
//	_ = pool.Add(m) // each *modem.Modem, one per SIM
//	link, err := modemlink.New(pool, modemlink.WithQuarantine(q))
//	b, err := sms.New(link, sms.Config{StateDir: dir, ...})
//
// # Design
//
// It is the only package that knows both sides, so neither modem nor
// bearer/sms depends on the other. A [Link] sends each TPDU from the SIM
// the bearer names ([Link.SendTPDU]) and passes each received one up as an
// sms.Inbound whose Ack and Reject reach the modem (+CMGD or +CNMA only
// after the bearer stored it). With [WithQuarantine], a TPDU the bearer
// cannot decode is kept in the quarantine before it is acknowledged,
// instead of being dropped.
package modemlink
