package docs

import (
	"os"
	"strings"
	"testing"
)

// TestReadme keeps README.md what issue 16 asked for: the two set-up
// commands at the very top (the daemon with its embedded default, and the
// test command .ci/run runs, character for character), and at most 150
// lines; reference material goes to a page under docs/.
func TestReadme(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(readme), "\n"), "\n")
	if len(lines) > 150 {
		t.Errorf("README.md has %d lines, more than 150: move reference material to a page under docs/ and link it", len(lines))
	}
	blocks, err := codeBlocks(readme)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) == 0 || blocks[0].lang != "sh" || blocks[0].line > 3 {
		t.Fatalf("README.md does not start with the sh block of the two set-up commands")
	}
	var cmds []string
	for _, l := range strings.Split(blocks[0].text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			cmds = append(cmds, l)
		}
	}
	// The test command of .ci/run is the line after its "Keep this line
	// identical" comment.
	var ciTest string
	ciLines := strings.Split(string(ci), "\n")
	for i, l := range ciLines {
		if strings.Contains(l, "Keep this line identical") && i+1 < len(ciLines) {
			ciTest = strings.TrimSpace(ciLines[i+1])
		}
	}
	if ciTest == "" {
		t.Fatal(".ci/run has no test command marked \"Keep this line identical\"")
	}
	want := []string{"go run ./cmd/smsgw", ciTest}
	if strings.Join(cmds, "\n") != strings.Join(want, "\n") {
		t.Errorf("README.md's set-up commands are %q, want %q (the daemon with its embedded default, then .ci/run's test command)", cmds, want)
	}
}
