// Package outbox is the durable outbox of the SMS bearer: datagrams split
// into SMS-SUBMIT TPDUs, stored, sent, retried and tracked to delivery.
//
// # Usage
//
// The SMS bearer runs one; a test or another transport can too:
//
//	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"))
//	if err != nil { ... }
//	id, err := ob.Enqueue(&outbox.Entry{To: "+4915112345678", Segments: segs,
//		Expires: time.Now().Add(time.Hour)}) // returns once fsync'd
//
//	w, err := outbox.NewWorker(ob, sender, outbox.WorkerConfig{OnDone: report})
//	go w.Run(ctx) // sends, retries, reports
//	_ = w.HandleReport(sim, mr, outbox.ReportDelivered, nil) // a status report arrived
//
// # Design
//
// Nothing lost. [Outbox.Enqueue] returns only after the transaction is
// fsync'd, so an acknowledged datagram survives a crash. A [Worker] sends
// the pending segments through a [Sender] (a modem pool, an SMPP link),
// records each segment the transport accepted (with its TP-MR) before
// moving on, retries errors that are [Retryable] with exponential backoff,
// and removes an [Entry] only when every segment was accepted or, when
// delivery reports were asked for, reported delivered.
//
// At most once per entry. After a crash, only segments not recorded as
// accepted are sent again. The one window that cannot be closed on this
// side is a modem that accepted a segment just before the process died,
// before the record was written: that segment goes out a second time, with
// the same concatenation reference, and the receiver's reassembler drops
// it as a duplicate. A datagram is therefore delivered to the peer's CoAP
// layer at most once per stored entry.
//
// Bounded ([Limits], [ErrFull]) and pluggable: the storage is a [Backend],
// a bbolt file by default ([OpenBolt]) or Redis (redisstore.Outbox). It is
// written by hand on go.etcd.io/bbolt: no queue library in go.mod keeps
// durable per-segment state.
package outbox
