// Package storetest is the conformance suite of [queue.Store], run against
// every implementation so that the queue Manager works alike on each.
//
// # Usage
//
// In an implementation's tests:
//
//	storetest.Run(t, storetest.Factory{
//		New:    func(t *testing.T) queue.Store { return queue.NewMemStore() },
//		Reopen: nil, // not durable: the restart cases are skipped
//	})
//
// [Rec] builds a record for a test of its own.
//
// # Design
//
// One table of named cases, each run with t.Run, against MemStore and
// BoltStore in lwm2m/queue and the Redis store in redisstore.
package storetest
