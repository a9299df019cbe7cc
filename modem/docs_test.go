package modem

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// profileTable renders the built-in profiles as the Markdown table of
// docs/modems.md: each quirk with its source.
func profileTable() string {
	esc := strings.NewReplacer("<", "&lt;", ">", "&gt;", "|", `\|`).Replace
	var b strings.Builder
	b.WriteString("| profile | modems | +CNMI | storage | quirk handled | source |\n|---|---|---|---|---|---|\n")
	for _, p := range Profiles() {
		storage := p.Storage
		switch {
		case p.NoStorage:
			storage = "none (" + p.Storage + ")"
		case p.StorageMems == 2:
			storage += " (2 memories)"
		}
		ack := ""
		if p.NeedsCNMA() {
			ack = ", " + p.ackCommand()
		}
		for i, q := range p.Quirks {
			if i == 0 {
				fmt.Fprintf(&b, "| `%s` | %s | `%s`%s | %s | %s | %s |\n", p.Name, esc(p.Vendor), p.CNMI, ack, storage, esc(q.What), esc(q.Source))
			} else {
				fmt.Fprintf(&b, "| | | | | %s | %s |\n", esc(q.What), esc(q.Source))
			}
		}
	}
	return b.String()
}

// The profile table of docs/modems.md is the one the code holds. Run with
// M2M_UPDATE_DOCS=1 to rewrite it.
func TestProfileTableInDocs(t *testing.T) {
	path := filepath.Join("..", "docs", "modems.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- profiles:begin -->\n", "<!-- profiles:end -->"
	i, j := strings.Index(string(doc), begin), strings.Index(string(doc), end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the %q ... %q markers", path, begin, end)
	}
	want := profileTable()
	if got := string(doc[i+len(begin) : j]); got != want {
		if os.Getenv("M2M_UPDATE_DOCS") != "" {
			out := string(doc[:i+len(begin)]) + want + string(doc[j:])
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatalf("%s: the profile table differs from modem.Profiles(); run with M2M_UPDATE_DOCS=1.\nwant:\n%s", path, want)
	}
	for _, p := range Profiles() {
		if len(p.Quirks) == 0 || p.Vendor == "" {
			t.Errorf("profile %s names no quirk or vendor", p.Name)
		}
		for _, q := range p.Quirks {
			if q.What == "" || q.Source == "" {
				t.Errorf("profile %s: quirk %+v without its source", p.Name, q)
			}
		}
	}
}
