// Package registrytest is the conformance suite of [registry.Store], run
// against every implementation so that nothing above the store depends on
// which one it has.
//
// # Usage
//
// In an implementation's tests:
//
//	registrytest.Run(t, registrytest.Factory{
//		New: func(t *testing.T, o registry.Options) registry.Store {
//			m, err := registry.NewMemory(o)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return m
//		},
//	})
//
// [NewReg] builds a registration (times from [T0]); [Same] compares two.
//
// # Design
//
// One table of named cases, each run with t.Run, against Memory and Bolt
// in lwm2m/registry and Redis in redisstore; [Factory].Reopen and Peer,
// when set, add the restart and two-node cases. Registrations are compared
// by value (their encoded form), never by pointer: a store that keeps them
// elsewhere hands back copies.
package registrytest
