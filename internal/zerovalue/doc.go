// Package zerovalue holds the test that keeps the zero values of the
// library's exported types safe: for every exported struct type with
// methods in bearer/..., lwm2m/... and modem/..., each method called on a
// pointer to the zero value (with zero arguments) returns: it does not
// panic and does not block. A type whose zero value is not usable must
// refuse with an error (or do nothing); the types not yet there are listed
// in the test's constructorOnly table, each with its constructor, and the
// list may only shrink. TestTableComplete reads the sources, so a new
// exported type is covered without anyone remembering to add it.
package zerovalue
