package modem

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/modem/at"
)

// corpusDir is the field corpus of issue 13, beside the repository (CI has
// it there too).
var corpusDir = filepath.Join("..", "..", "shared", "field-corpus")

func needCorpus(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(corpusDir, "at-lines.tsv")); err != nil {
		t.Skipf("field corpus not found at %s (it sits beside the repository): %v", corpusDir, err)
	}
}

type corpusRow struct {
	id, source, vendor, parser, input, expected, note string
}

func corpusRows(t *testing.T) []corpusRow {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "at-lines.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unescape := strings.NewReplacer(`\r`, "\r", `\n`, "\n", `\t`, "\t", `\\`, `\`)
	var rows []corpusRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 6 || c[0] == "id" {
			continue
		}
		for len(c) < 7 {
			c = append(c, "")
		}
		rows = append(rows, corpusRow{c[0], c[1], c[2], c[3], unescape.Replace(c[4]), c[5], c[6]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// corpusResult runs the parser a row names and renders its result in the
// corpus's expected format (see field-corpus/README.md).
func corpusResult(parser, input string) string {
	head, pduLine, hasPDU := strings.Cut(input, "\r\n")
	regs := func(r Registration) string {
		return fmt.Sprintf("stat=%d lac=%s ci=%s act=%d", r.Stat, r.LAC, r.CI, r.AcT)
	}
	pdu := func(n int) string {
		if !hasPDU {
			return ""
		}
		pl, err := DecodePDULine(pduLine, n)
		if err != nil {
			return " pdu=ERR"
		}
		s := fmt.Sprintf(" smsc=%s kind=%s", pl.SMSC, pl.Kind)
		if pl.Kind == KindStatusReport {
			if sr, err := ParseStatusReport(pl.TPDU); err == nil {
				s += fmt.Sprintf(" mr=%d st=0x%02x", sr.MR, sr.Status)
			}
		}
		return s
	}
	stat := func(s MessageStat) string {
		if s == StatUnknown {
			return "?"
		}
		return fmt.Sprint(int(s))
	}
	var out string
	var err error
	switch parser {
	case "creg", "creg_urc":
		var r Registration
		if r, err = ParseCREG(input, parser == "creg"); err == nil {
			out = regs(r)
		}
	case "cpms":
		var su []StorageUse
		if su, err = ParseCPMS(input); err == nil {
			var parts []string
			for _, u := range su {
				parts = append(parts, fmt.Sprintf("%s:%d/%d", u.Mem, u.Used, u.Total))
			}
			out = strings.Join(parts, ",")
		}
	case "cnum":
		out, err = ParseCNUM(input)
	case "csq":
		var s Signal
		if s, err = ParseCSQ(input); err == nil {
			out = fmt.Sprintf("rssi=%d ber=%d", s.RSSI, s.BER)
		}
	case "cmti", "cdsi":
		var si StoredIndication
		if parser == "cmti" {
			si, err = ParseCMTI(input)
		} else {
			si, err = ParseCDSI(input)
		}
		if err == nil {
			out = fmt.Sprintf("mem=%s idx=%d", si.Storage, si.Index)
		}
	case "cmgs":
		var mr int
		if mr, err = ParseCMGS(input); err == nil {
			out = fmt.Sprintf("mr=%d", mr)
		}
	case "cmt", "cds":
		var n int
		if parser == "cmt" {
			n, err = ParseCMT(head)
		} else {
			n, err = ParseCDS(head)
		}
		if err == nil {
			if p := pdu(n); p == " pdu=ERR" {
				err = errors.New("PDU")
			} else {
				out = fmt.Sprintf("len=%d%s", n, p)
			}
		}
	case "cmgr":
		var h CMGRHeader
		if h, err = ParseCMGR(head); err == nil {
			out = fmt.Sprintf("stat=%s len=%d%s", stat(h.Stat), h.Length, pdu(h.Length))
		}
	case "cmgl":
		var h CMGLHeader
		if h, err = ParseCMGL(head); err == nil {
			out = fmt.Sprintf("idx=%d stat=%s len=%d%s", h.Index, stat(h.Stat), h.Length, pdu(h.Length))
		}
	case "cms_error", "cme_error":
		e := ParseErrorLine(input)
		var cms *CMSError
		var cme *CMEError
		switch {
		case errors.As(e, &cms):
			out = fmt.Sprintf("CMS %d", cms.Code)
		case errors.As(e, &cme):
			out = fmt.Sprintf("CME %d", cme.Code)
		default:
			return fmt.Sprintf("not an error line: %v", e)
		}
		out += fmt.Sprintf(" retry=%v", Retryable(e))
		if errors.Is(e, ErrSIMPIN) {
			out += " pin=true"
		}
		if errors.Is(e, ErrStorageFull) {
			out += " full=true"
		}
	default:
		return "unknown parser " + parser
	}
	if err != nil {
		if !errors.Is(err, ErrBadResponse) && !errors.Is(err, ErrBadPDU) {
			return fmt.Sprintf("ERR not typed: %v", err)
		}
		return "ERR"
	}
	return out
}

var comment = regexp.MustCompile(`\s*\([^)]*\)`)

// matchExpected reports whether got holds the expected result ("A result
// may carry more fields after the ones given"; text in parentheses is a
// comment). Results made of key=value fields are compared field by field;
// others (numbers, storage lists, "CMS 330 retry=false") as a prefix.
func matchExpected(expected, got string) bool {
	want := strings.Fields(comment.ReplaceAllString(expected, ""))
	if len(want) == 1 && want[0] == "ERR" {
		return got == "ERR"
	}
	keyed := true
	for _, w := range want {
		keyed = keyed && strings.Contains(w, "=")
	}
	if !keyed {
		return strings.HasPrefix(got, strings.Join(want, " "))
	}
	have := map[string]string{}
	for _, f := range strings.Fields(got) {
		if k, v, ok := strings.Cut(f, "="); ok {
			have[k] = v
		}
	}
	for _, w := range want {
		k, v, _ := strings.Cut(w, "=")
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// Every row of the field corpus: the expected column holds, and no row
// panics.
func TestFieldCorpusLines(t *testing.T) {
	needCorpus(t)
	rows := corpusRows(t)
	if len(rows) < 80 {
		t.Fatalf("only %d rows read", len(rows))
	}
	for _, r := range rows {
		t.Run(r.id, func(t *testing.T) {
			got := corpusResult(r.parser, r.input)
			if !matchExpected(r.expected, got) {
				t.Errorf("%s %q (%s, %s)\n got  %s\n want %s", r.parser, r.input, r.vendor, r.source, got, r.expected)
			}
		})
	}
}

// dumpAnswer replays a gammu dump through the AT engine: the engine sends
// the dump's command, the "modem" answers with the rest of the file (echo,
// answer, final result code, with the file's own line endings), and the
// answer lines and unsolicited lines come back.
func dumpAnswer(t *testing.T, path string) (cmd string, info, unsolicited []string, err error) {
	t.Helper()
	b, rerr := os.ReadFile(path)
	if rerr != nil {
		t.Fatal(rerr)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	cmd = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(first), "AT"))
	er, mw := io.Pipe()
	mr, ew := io.Pipe()
	e, err := at.New(struct {
		io.Reader
		io.Writer
	}{er, ew}, at.Config{Dialect: allURCs(), Timeout: 2 * time.Second,
		OnUnsolicited: func(l []string) { unsolicited = append(unsolicited, l...) }})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		br := bufio.NewReader(mr)
		if _, err := br.ReadString('\r'); err == nil {
			_, _ = mw.Write(b)
		}
		_, _ = io.Copy(io.Discard, br)
	}()
	info, err = e.Exec(context.Background(), cmd, at.WithShape(shapeOf(cmd)))
	mw.Close()
	mr.Close()
	<-e.Done()
	return cmd, info, unsolicited, mapEngineError(err)
}

// Every gammu dump of the corpus, replayed through the engine and read by
// the driver's parser for that command. The expectations follow the
// corpus README: at-sms/ holds messages gammu decodes (the driver delivers
// the received ones and leaves the stored outgoing ones; a received slot
// holding an SMS-SUBMIT goes to the quarantine), at-sms-failing/ messages
// gammu refuses (the driver never delivers them), at-sms-txt/ text-mode
// answers (left on the modem, never deleted).
func TestGammuDumps(t *testing.T) {
	needCorpus(t)
	root := filepath.Join(corpusDir, "gammu-dumps")
	var paths []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".dump") {
			paths = append(paths, p)
		}
		return nil
	})
	sort.Strings(paths)
	if len(paths) < 70 {
		t.Fatalf("only %d dumps found", len(paths))
	}
	creg := map[string]string{"huawei": "stat=1", "none": "stat=0", "siemens": "stat=1", "sierra312u": "stat=5",
		"telit": "stat=1", "empty-lac": "stat=1", "mismatched-quotes": "stat=1", "single-quote": "stat=1"}
	models := map[string]string{"01": "MULTIBAND  900E  1800", "02": "Nokia 5210", "03": "AAB-1022041-BV", "06": "MULTIBAND  900E  1800"}
	smsc := map[string]string{"01": "+97254120032", "02": "+79168999100", "03": "+6281100000", "05": "+447802092035"}
	// at-sms dumps whose received slot (<stat> 0/1) holds an SMS-SUBMIT:
	// quarantined, not delivered and not silently left.
	submitInReceived := map[string]bool{"14": true, "15": true, "16": true, "20": true, "24": true, "28": true, "29": true, "31": true, "41": true}
	counts := map[string]int{}
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		dir, name := filepath.Dir(rel), strings.TrimSuffix(filepath.Base(rel), ".dump")
		t.Run(rel, func(t *testing.T) {
			cmd, info, unsol, err := dumpAnswer(t, p)
			switch dir {
			case "at-creg", "at-creg-corner":
				if err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
				if name == "empty" {
					if len(info) != 0 {
						t.Fatalf("answer %q", info)
					}
					return
				}
				if len(info) != 1 {
					t.Fatalf("answer %q, unsolicited %q", info, unsol)
				}
				r, perr := ParseCREG(info[0], true)
				if perr != nil || !strings.HasPrefix(fmt.Sprintf("stat=%d", r.Stat), creg[name]) {
					t.Fatalf("ParseCREG(%q) = %+v, %v; want %s", info[0], r, perr, creg[name])
				}
			case "at-cpms", "at-cpms-sm", "at-cpms-sr":
				// AT+CPMS=? test responses: never taken for a read response.
				for _, l := range info {
					if su, perr := ParseCPMS(l); perr == nil {
						t.Fatalf("test response %q read as storage %+v", l, su)
					}
				}
			case "at-cnmi":
				if err != nil || len(info) != 1 || !strings.HasPrefix(info[0], "+CNMI:") || len(unsol) != 0 {
					t.Fatalf("answer %q, %v, unsolicited %q", info, err, unsol)
				}
			case "at-model":
				if err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
				if name == "05" { // ATI4: five lines, +GCAP among them
					if len(info) != 5 {
						t.Fatalf("ATI4 answer %q", info)
					}
					return
				}
				got := plainInfo(info, "+CGMM")
				want := models[name]
				if name == "04" { // a 350-character model name, whole
					want = strings.Repeat("0123456789", 35)
				}
				if got != want {
					t.Fatalf("model %q, want %q", got, want)
				}
			case "at-smsc", "at-smsc-failing":
				if err != nil || len(info) != 1 {
					t.Fatalf("answer %q, %v", info, err)
				}
				n, perr := ParseCSCA(info[0])
				if dir == "at-smsc-failing" {
					if perr == nil {
						t.Fatalf("ParseCSCA(%q) = %q, want refusal", info[0], n)
					}
					return
				}
				if perr != nil || n != smsc[name] {
					t.Fatalf("ParseCSCA(%q) = %q, %v; want %s", info[0], n, perr, smsc[name])
				}
			case "at-sms", "at-sms-failing", "at-sms-txt":
				if err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
				sm := judgeCMGR(info)
				counts[dir+" "+verdictName(sm.v)]++
				switch {
				case dir == "at-sms-txt":
					if sm.v != vUnreadable {
						t.Fatalf("text-mode answer judged %s", verdictName(sm.v))
					}
				case dir == "at-sms-failing":
					if sm.v == vDeliver {
						t.Fatalf("a message gammu refuses was delivered: %q", info)
					}
				case submitInReceived[name]:
					// (TP-MTI 01 after the SMSC part; the driver's decoder
					// may refuse the SUBMIT's user data where gammu is
					// lenient: the slot goes to the quarantine either way.)
					if sm.v != vBad || !errors.Is(sm.reason, ErrBadPDU) {
						t.Fatalf("received slot with an SMS-SUBMIT judged %s (%v)", verdictName(sm.v), sm.reason)
					}
				case sm.stat == StatStoUnsent || sm.stat == StatStoSent:
					if sm.v != vLeave {
						t.Fatalf("stored outgoing message judged %s", verdictName(sm.v))
					}
				default:
					if sm.v != vDeliver {
						t.Fatalf("judged %s (%v): %q", verdictName(sm.v), sm.reason, info)
					}
				}
			default:
				t.Fatalf("no expectation for %s", dir)
			}
		})
	}
	t.Logf("verdicts: %v", counts)
}

func verdictName(v verdict) string {
	return [...]string{"empty", "deliver", "leave", "quarantine", "unreadable"}[v]
}
