package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCollectFixture counts the fixture module in testdata/mod, whose every
// number is known: a change to a heuristic shows here first.
func TestCollectFixture(t *testing.T) {
	s, err := collect("testdata/mod", 5, 6)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"long functions", len(s.longFuncs), 1},
		{"functions with >= 6 parameters", len(s.manyParams), 1},
		{"packages defining content formats", len(s.formatPkgs), 2},
		{"packages declaring Security", len(s.securityPkgs), 2},
		{"package docs", len(s.pkgDocs), 2},
		{"package docs with # Usage", len(s.usageDocs), 1},
		{"package docs with # Design", len(s.designDocs), 1},
		{"unresolved links", len(s.badLinks), 1},
		{"Test functions", s.tests, 4},
		{"t.Run calls", s.tRuns, 1},
		{"table loops without t.Run", len(s.plainLoops), 2},
		{"value-list loops without t.Run", len(s.valueLoops), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
			}
		})
	}
	if len(s.badLinks) == 1 && s.badLinks[0] != "alpha: [Missing]" {
		t.Errorf("unresolved link %q, want alpha: [Missing]", s.badLinks[0])
	}
	var out bytes.Buffer
	s.print(&out, true)
	for _, want := range []string{
		"functions over 5 lines (product): 1",
		"exported type names declared in more than one package: 2",
		"  Shared: [alpha beta]",
		"loop alpha/alpha_test.go:15 TestPlainTable",
		"loop alpha/alpha_test.go:23 TestFileTable",
		"value-list loop alpha/alpha_test.go:41 TestValues",
	} {
		t.Run(want, func(t *testing.T) {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		})
	}
}
