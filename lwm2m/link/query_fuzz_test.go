package link

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzParseQuery: Write-Attributes queries (attacker input on the device
// side, operator input on the server side) either parse into attributes
// that pass Check and survive Params → queries → ParseQuery unchanged, or
// fail with an error wrapping ErrAttribute.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"pmin=10&pmax=60", "gt=50&lt=42.2&st=2", "pmin&pmax", "epmin=1&epmax=5&edge=1&con=0&hqmax=8",
		"dim=8", "ssid=101&uri=coaps://s.example.com", "ver=1.1", "pmin=10&pmin=11", "pmax=5&pmin=10",
		"gt=1e308&lt=-1e308", "st=-1", "gt=NaN", "edge=2", "ssid=0", "x=1", "", "lt=1&gt=2&st=0.4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		var qs []string
		if query != "" {
			qs = strings.Split(query, "&")
		}
		a, unset, err := ParseQuery(qs)
		if err != nil {
			if !errors.Is(err, ErrAttribute) {
				t.Fatalf("error %v does not wrap ErrAttribute", err)
			}
			return
		}
		if err := a.Check(); err != nil {
			t.Fatalf("accepted attributes fail Check: %v", err)
		}
		for _, n := range unset {
			if !isAttribute(n) || strings.Contains(n, "=") {
				t.Fatalf("unset %q is not an attribute name", n)
			}
		}
		var again []string
		for _, p := range a.Params() {
			again = append(again, p.Name+"="+p.Value)
		}
		b, unset2, err := ParseQuery(again)
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", again, query, err)
		}
		if !reflect.DeepEqual(a, b) || len(unset2) != 0 {
			t.Fatalf("unstable: %q -> %+v -> %q -> %+v", query, a, again, b)
		}
		// The attributes survive a link too (Discover answers carry them).
		l := Link{Target: "/3/0/1", Params: a.Params()}
		links, err := Parse(Encode([]Link{l}))
		if err != nil || len(links) != 1 {
			t.Fatalf("link %s: %v", Encode([]Link{l}), err)
		}
		c, err := links[0].Attributes()
		if err != nil || !reflect.DeepEqual(a, c) {
			t.Fatalf("link round trip: %+v -> %s -> %+v (%v)", a, Encode([]Link{l}), c, err)
		}
		_ = slices.Clone(unset)
	})
}
