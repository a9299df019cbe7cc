// Package quarantine is a durable, bounded store for received SMS that
// could not be delivered ([modem.Quarantined]).
//
// Operators list the entries (smsgw serves them at GET
// /api/v1/sms/quarantine) and delete those they have dealt with.
//
// # Usage
//
//	q, err := quarantine.Open("/var/lib/smsgw/quarantine.db", quarantine.Options{Max: 1000})
//	if err != nil { ... }
//	defer q.Close()
//	m, err := modem.Open(ctx, cfg, modem.WithQuarantine(q))
//	entries, err := q.List(0, 100) // after ID 0, at most 100
//	ok, err := q.Delete(entries[0].ID)
//
// # Design
//
// A [Store] is a bbolt file in which every [Store.Put] is committed and
// fsync'd before it returns, so that the modem driver deletes a message
// from the SIM only once it is safe here. It is bounded ([Options].Max,
// [DefaultMax]): a full store refuses Put with an error wrapping
// [modem.ErrQuarantineFull], and the driver leaves the message on the modem.
package quarantine
