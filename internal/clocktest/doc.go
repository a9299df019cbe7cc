// Package clocktest is a manual clock for tests: time moves only by
// Advance, and a wait fires when Advance reaches its instant.
//
// # Usage
//
//	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
//	m, err := queue.New(queue.Config{Store: st, Clock: clk, ...})
//	clk.Advance(100 * time.Second) // the device has slept 100 s, at once
//
// # Design
//
// [Manual] has the methods of the queue Manager's Clock (Now, After), so
// a test can put a request 100 s after a device fell asleep without
// waiting 100 s.
package clocktest
