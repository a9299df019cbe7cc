// Package zerovalue holds the tests that keep the zero values of the
// library's exported types safe.
//
// # Usage
//
// It has no API: the package is its tests.
//
//	go test ./internal/zerovalue
//
// A new exported struct type with methods in bearer/..., lwm2m/... or
// modem/... must be added to the table in types_test.go
// (TestTableComplete fails otherwise), and every method on its zero value
// must return without panicking or blocking.
//
// # Design
//
// TestZeroValues calls every method of every listed type on a pointer to
// its zero value, once with zero arguments and once with non-zero ones,
// and fails on a panic or a call that does not return. Each type's zero
// value either works (documented "ready to use", as net/http's ServeMux)
// or refuses every call with its package's error (ErrNotCreated,
// documented "not usable: use New"); there is no list of exceptions.
// TestZeroRefusals checks that the refusals carry that error,
// TestZeroUsable that the usable ones work. TestTableComplete reads the
// sources, so a new exported type is not forgotten. TestZeroDocumented
// checks that each listed type's doc says what its zero value is (error
// types excepted: their zero value is an error without detail).
package zerovalue
