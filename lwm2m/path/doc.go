// Package path implements LwM2M paths: the root "/", an object "/o", an
// object instance "/o/i", a resource "/o/i/r" and a resource instance
// "/o/i/r/ri".
//
// It follows OMA LwM2M 1.1/1.2 Core §6.1 ("Resource Model") and the §7.4.1
// content-format path rules.
//
// # Usage
//
//	p, err := path.Parse("/3311/0/5850") // a *Error (errors.Is ErrSyntax) when malformed
//	p = path.Resource(3311, 0, 5850)     // the same, built
//	if path.Overlaps(p, path.Object(3311)) { ... }
//	sort.Slice(ps, func(i, j int) bool { return path.Compare(ps[i], ps[j]) < 0 })
//
// # Design
//
// A [Path] is a small comparable value (usable as a map key), totally
// ordered ([Compare]) so trees of values sort the way LwM2M encoders
// expect: an object before its instances, instance 0 before instance 1,
// and so on.
//
// Each ID is an unsigned 16-bit integer; 65535 (MAX_ID) is reserved by
// the specification (Core §7.1 "ID 65535 ... MUST NOT be used for
// identifying an Object Instance") and is refused everywhere ([MaxID]).
//
// Hand-written: the path grammar is tiny and the LwM2M libraries for Go
// do not expose a comparable, allocation-free path value.
package path
