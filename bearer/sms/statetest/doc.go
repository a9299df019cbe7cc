// Package statetest is the conformance suite of the SMS bearer's shared
// state, [sms.StateStore] (inbox and daily budgets) and [sms.RateLimiter].
//
// # Usage
//
// In an implementation's tests:
//
//	statetest.Run(t, statetest.Factory{
//		New:    func(t *testing.T) sms.StateStore { ... },
//		Reopen: func(t *testing.T, s sms.StateStore) sms.StateStore { ... }, // a restart
//		Peer:   func(t *testing.T, s sms.StateStore) sms.StateStore { ... }, // another node
//	})
//	statetest.RunLimiter(t, statetest.LimiterFactory{New: ..., Peer: ...})
//
// # Design
//
// Named cases run with t.Run against every implementation: bbolt and
// memory in bearer/sms, Redis in redisstore. [Factory].Reopen and Peer,
// when set, add the restart and shared-counter cases (two gateway nodes
// spending one budget).
package statetest
