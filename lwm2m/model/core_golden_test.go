package model

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/core.golden from Core and OSCORE")

// dumpObjects writes every field of every object and resource, one line
// each, so that a change to any definition shows in a diff.
func dumpObjects(objs []*Object) string {
	var b strings.Builder
	for _, o := range objs {
		fmt.Fprintf(&b, "object ID=%d Name=%q URN=%q Version=%q LwM2MVersion=%q Multiple=%t Mandatory=%t Description=%q\n",
			o.ID, o.Name, o.URN, o.Version, o.LwM2MVersion, o.Multiple, o.Mandatory, o.Description)
		for _, r := range o.Resources {
			fmt.Fprintf(&b, "  resource ID=%d Name=%q Operations=%d Multiple=%t Mandatory=%t Type=%d Range=%q Units=%q Description=%q\n",
				r.ID, r.Name, r.Operations, r.Multiple, r.Mandatory, r.Type, r.Range, r.Units, r.Description)
		}
	}
	return b.String()
}

// TestCoreGolden compares the built-in definitions (Core and OSCORE) field
// by field with testdata/core.golden, written from the definitions as they
// were when they were first checked against the OMNA files.
func TestCoreGolden(t *testing.T) {
	got := dumpObjects(append(Core(), OSCORE()))
	const file = "testdata/core.golden"
	if *updateGolden {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Errorf("line %d:\n got %s\nwant %s", i+1, g, w)
			}
		}
	}
}
