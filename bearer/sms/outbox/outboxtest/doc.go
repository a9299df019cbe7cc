// Package outboxtest is the conformance suite of [outbox.Backend], run
// against every implementation so that the SMS outbox works alike on each.
//
// # Usage
//
// In an implementation's tests:
//
//	func TestBackend(t *testing.T) {
//		outboxtest.Run(t, outboxtest.Factory{
//			New:    func(t *testing.T) outbox.Backend { return openMine(t, t.TempDir()) },
//			Reopen: func(t *testing.T, b outbox.Backend) outbox.Backend { return reopenMine(t, b) },
//		})
//	}
//
// [Entry] builds entries for a test of its own.
//
// # Design
//
// One table of named cases, each run with t.Run, against the backend
// directly and through an outbox.Outbox. The implementations are the bbolt
// file of bearer/sms/outbox and Redis in redisstore; [Factory].Reopen,
// when set, adds the cases that need a restart.
package outboxtest
