package model

import "fmt"

// ResourceKey names a resource definition: an object ID and a resource ID
// (every instance of the object shares the definition).
type ResourceKey struct {
	Object, Resource uint16
}

// Typed is a [Resolver] that knows a type for resources its Base does not
// define: explicit types given by whoever asks for a resource outside every
// loaded model (an API caller reading Wakaama's test object 31024 "as
// Integer"). Base wins where it defines the resource, so an explicit type
// never overrides the model. The zero Typed resolves nothing.
type Typed struct {
	// Base is the model; nil resolves nothing.
	Base Resolver
	// Types are the explicit types; None entries are ignored.
	Types map[ResourceKey]Type
}

// Resource implements [Resolver]: Base's definition, or a readable and
// writable single-instance resource of the explicit type.
func (t Typed) Resource(obj, res uint16) (*Resource, bool) {
	if t.Base != nil {
		if r, ok := t.Base.Resource(obj, res); ok {
			return r, true
		}
	}
	typ, ok := t.Types[ResourceKey{obj, res}]
	if !ok || typ == None {
		return nil, false
	}
	return &Resource{ID: res, Name: fmt.Sprintf("resource %d of object %d", res, obj), Operations: RW, Type: typ}, true
}
