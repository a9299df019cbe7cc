// Package record is the small binary record format the durable stores of
// m2mbearer share (the SMS outbox, the LwM2M registry and the queue-mode
// queue).
//
// # Usage
//
//	b = binary.AppendUvarint(b, r.ID)
//	b = record.AppendString(b, r.Endpoint)
//	b = record.AppendTime(b, r.Created)
//
//	d := record.NewDecoder(data, ErrCorrupt) // the store's own sentinel
//	id := d.Uvarint()
//	ep := d.String(MaxEndpointLen)
//	created := d.Time()
//	if err := d.Finish(); err != nil { ... } // wraps ErrCorrupt
//
// # Design
//
// Varints, length-prefixed strings and bytes, and times as Unix
// nanoseconds, read by a [Decoder] that never panics, bounds every length
// by the bytes that remain, and reports the first problem as an error
// wrapping the caller's own "corrupt record" sentinel.
//
// Hand-written because each store's record is a few fields that
// encoding/binary covers, and a schema library would add more than it
// saves.
package record
