// Package registry holds the LwM2M server's registrations: the parameters
// a client sends with Register and Update, their validation, and the
// [Store] that keeps them.
//
// It follows OMA LwM2M 1.0/1.1/1.2 Core §6.2 and the Transport §6.4
// bindings.
//
// # Usage
//
// Parse what a client sent, then keep the [Registration] in a Store:
//
//	p, err := registry.ParseRegister(queries, payload) // "ep=...", "lt=300", "lwm2m=1.1", "b=U"
//	if err != nil { ... }                               // a *ParamError: answer 4.00
//
//	s, err := registry.NewMemory(registry.Options{Grace: 2 * time.Second})
//	// or: s, err := registry.OpenBolt(path, registry.BoltOptions{})
//	prev, err := s.Add(ctx, reg)                        // reg.Location(): /rd/<64 random bits>
//	gone, err := s.Expire(ctx, time.Now(), 100)         // lifetimes run out
//
// [ParseUpdate] reads an Update; [ParseObjectLinks] the object links of
// the payload; [ParseBinding] and [ParseVersion] single parameters.
//
// # Design
//
// One interface, several stores. [Memory] keeps registrations in memory,
// [Bolt] in a bbolt file, and redisstore.Registry in Redis for a cluster of
// gateways; all satisfy [Store], and lwm2m/server works with any of them.
// bbolt transactions are fsync'd on commit, so a registration acknowledged
// with 2.01 survives a crash.
//
// Small records. A Registration is designed to stay under 512 bytes of
// heap per registered device (measured over 100k registrations): object
// links are packed into 8-byte values, times are int64 nanoseconds, a UDP
// peer address is a netip.AddrPort held inline and the alternate path is
// interned. [MarshalRegistration] and [UnmarshalRegistration] give the
// stored binary form.
//
// Hand-written. The LwM2M rules (which query parameters exist in which
// version, the 1.0 versus 1.1 binding grammar, the alternate root path)
// are small and have no Go library worth depending on; the CoRE
// link-format payload is parsed by lwm2m/link, the project's RFC 6690
// parser, and only interpreted here.
package registry
