package model

import "testing"

// TestTyped: explicit types fill in for resources the model does not
// define and never override the model.
func TestTyped(t *testing.T) {
	typed := Typed{Base: DefaultRegistry(), Types: map[ResourceKey]Type{
		{31024, 1}: Integer,
		{3, 0}:     Integer, // /3/x/0 Manufacturer is String in the model
		{31024, 2}: None,
	}}
	tests := []struct {
		name     string
		r        Resolver
		obj, res uint16
		want     Type
		ok       bool
	}{
		{"explicit type outside the model", typed, 31024, 1, Integer, true},
		{"model wins over an explicit type", typed, 3, 0, String, true},
		{"model resource without explicit type", typed, 3311, 5851, Integer, true},
		{"None is no type", typed, 31024, 2, None, false},
		{"unknown resource", typed, 31024, 3, None, false},
		{"nil base", Typed{Types: map[ResourceKey]Type{{9, 9}: Opaque}}, 9, 9, Opaque, true},
		{"zero value", Typed{}, 3, 0, None, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := tc.r.Resource(tc.obj, tc.res)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if ok && (r.Type != tc.want || r.ID != tc.res) {
				t.Fatalf("got %+v, want type %v", r, tc.want)
			}
		})
	}
}
