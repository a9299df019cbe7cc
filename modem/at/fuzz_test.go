package at

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// idle returns an engine without a reader goroutine, for feeding bytes
// directly.
func idle(cfg Config, urc func([]string)) *Engine {
	cfg.OnUnsolicited = urc
	if cfg.MaxLine == 0 {
		cfg.MaxLine = 4096
	}
	if cfg.MaxAnswerLines == 0 {
		cfg.MaxAnswerLines = 2048
	}
	return &Engine{cfg: cfg, sem: make(chan struct{}, 1), done: make(chan struct{}), dialect: cfg.Dialect}
}

// corpusSeeds returns the input column of the field corpus and the gammu
// dumps, when ../shared/field-corpus is there (as in CI).
func corpusSeeds(tb testing.TB) []string {
	root := filepath.Join("..", "..", "..", "shared", "field-corpus")
	var out []string
	if f, err := os.Open(filepath.Join(root, "at-lines.tsv")); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			cols := strings.Split(sc.Text(), "\t")
			if len(cols) >= 5 && cols[0] != "id" {
				out = append(out, strings.NewReplacer(`\r`, "\r", `\n`, "\n", `\t`, "\t", `\\`, `\`).Replace(cols[4])+"\r\nOK\r\n")
			}
		}
	}
	_ = filepath.WalkDir(filepath.Join(root, "gammu-dumps"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".dump") {
			if b, err := os.ReadFile(p); err == nil {
				out = append(out, string(b))
			}
		}
		return nil
	})
	return out
}

// FuzzFeed feeds arbitrary modem output to an engine running +CMGL (PDU
// shape) and checks that it never panics and that the answer holds only
// lines the shape admits: no final result code, no URC, no other
// command's information line, no line break.
func FuzzFeed(f *testing.F) {
	for _, s := range []string{
		"\r\n+CMGL: 1,0,,22\r\n^RSSI: 14\r\n0791AB\r\n\r\nOK\r\n",
		"+CMGL: 1,0,,22\r\r\n+CMT: ,3\r\r\n00AABB\r\r\n0791\r\r\nOK\r\r\n",
		"\r\n> \r\n> ",
		"\n\n\rCOMMAND NOT SUPPORT\r",
		strings.Repeat("A", 5000) + "\r\n",
		"\x00\x1a\x1b+CMGL:\r",
	} {
		f.Add([]byte(s))
	}
	for _, s := range corpusSeeds(f) {
		f.Add([]byte(s))
	}
	d := Dialect{URCPrefixes: []string{"+QIND:"}, Finals: []string{"+EXT ERROR:"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		e := idle(Config{Dialect: d, MaxLine: 1024, MaxAnswerLines: 64}, func([]string) {})
		r := &request{cmd: "+CMGL=4", prefix: "+CMGL:", shape: ShapePDU, done: make(chan struct{}), prompt: make(chan struct{}, 1)}
		e.cur = r
		// Split the input in two reads at an arbitrary point.
		cut := 0
		if len(data) > 0 {
			cut = int(data[0]) % (len(data) + 1)
		}
		e.feed(data[:cut])
		e.feed(data[cut:])
		if r.graceT != nil {
			r.graceT.Stop()
		}
		if len(r.info) > 64 {
			t.Fatalf("%d answer lines", len(r.info))
		}
		for _, l := range r.info {
			if strings.ContainsAny(l, "\r\n\x00\x1a\x1b") || l == "" || len(l) > 1024 {
				t.Fatalf("bad answer line %q", l)
			}
			if final, _ := IsFinal(l, d); final {
				t.Fatalf("final result code in the answer: %q", l)
			}
			// The engine matches an answer's prefix without regard to
			// case, as modems differ ("+cMGL:" is the command's answer).
			if !strings.HasPrefix(strings.ToUpper(l), "+CMGL:") && (IsUnsolicited(l, d) || Prefix(l) != "") {
				t.Fatalf("line outside the PDU shape in the answer: %q", l)
			}
		}
	})
}

// FuzzClassify checks the line predicates on arbitrary lines.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"OK", "ERROR", "+CMS ERROR: 500", "^RSSI: 1", "RDY", "0791", "+CMGR: 0,,22", ""} {
		f.Add(s)
	}
	for _, s := range corpusSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, l string) {
		final, ok := IsFinal(l, Dialect{})
		if ok && !final {
			t.Fatal("ok without final")
		}
		if ok && l != "OK" {
			t.Fatalf("%q taken for OK", l)
		}
		p := Prefix(l)
		if p != "" && !strings.HasPrefix(l, p) {
			t.Fatalf("Prefix(%q) = %q", l, p)
		}
		if IsHex(l) && (final || IsUnsolicited(l, Dialect{})) {
			t.Fatalf("%q is hex and final or unsolicited", l)
		}
	})
}
