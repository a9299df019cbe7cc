package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	htmlID   = regexp.MustCompile(`<a id="([^"]+)"></a>`)
	slugDrop = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
)

// slug is GitHub's anchor for a heading: lower case, punctuation dropped,
// spaces as hyphens.
func slug(h string) string {
	return strings.ReplaceAll(slugDrop.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), ""), " ", "-")
}

// anchors returns the anchors of a Markdown file: its headings' slugs (with
// GitHub's -1, -2 for repeats) and explicit <a id> tags.
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	infence := false
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "```") {
			infence = !infence
			continue
		}
		if infence {
			continue
		}
		if h, ok := strings.CutPrefix(strings.TrimLeft(l, "#"), " "); ok && strings.HasPrefix(l, "#") {
			s := slug(h)
			if n := seen[s]; n > 0 {
				out[s+"-"+itoa(n)] = true
			} else {
				out[s] = true
			}
			seen[s]++
		}
		for _, m := range htmlID.FindAllStringSubmatch(l, -1) {
			out[m[1]] = true
		}
	}
	return out
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// TestLinks checks every relative link of the Markdown documentation
// (README.md, SECURITY.md, CHANGELOG.md, docs/, deploy/): the file exists,
// and an anchor into a Markdown file names one of its headings.
func TestLinks(t *testing.T) {
	files := []string{"../README.md", "../SECURITY.md", "../CHANGELOG.md"}
	for _, g := range []string{"*.md", "packages/*.md", "../deploy/*.md"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			t.Fatal(err)
		}
		text := string(b)
		// Links inside code blocks are code, not links.
		var prose strings.Builder
		infence := false
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, "```") {
				infence = !infence
				continue
			}
			if !infence {
				prose.WriteString(l + "\n")
			}
		}
		for _, m := range mdLink.FindAllStringSubmatch(prose.String(), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := f
			if file != "" {
				path = filepath.Join(filepath.Dir(f), file)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: link %s: %v", f, target, err)
					continue
				}
			}
			checked++
			if anchor == "" || !strings.HasSuffix(path, ".md") {
				continue
			}
			tb, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%s: link %s: %v", f, target, err)
				continue
			}
			if !anchors(string(tb))[anchor] {
				t.Errorf("%s: link %s: no heading or anchor %q in %s", f, target, anchor, path)
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d links checked", checked)
	}
}

func TestSlug(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Firmware through smsgw", "firmware-through-smsgw"},
		{"The simulator's dialects", "the-simulators-dialects"},
		{"`smpp[].tls`", "smpptls"},
		{"1. Start the gateway", "1-start-the-gateway"},
		{"GET `/api/v1/devices/{ep}`", "get-apiv1devicesep"},
	} {
		t.Run(c.in, func(t *testing.T) {
			if got := slug(c.in); got != c.want {
				t.Errorf("slug(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}
