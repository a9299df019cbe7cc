// Package bindingstest is the conformance suite of [server.BindingStore],
// the provisioning store the registration policy reads.
//
// # Usage
//
// In an implementation's tests:
//
//	bindingstest.Run(t, bindingstest.Factory{
//		New: func(t *testing.T, max int) server.BindingStore { return server.NewStaticSecurity(max) },
//	})
//
// # Design
//
// Named cases run with t.Run against StaticSecurity in lwm2m/server and
// Redis in redisstore; [Factory].Peer, when set, adds the cases of two
// gateway nodes sharing one table.
package bindingstest
