package modem

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusInputs returns the input column of the field corpus, split into
// lines, when it is there (see corpus_test.go).
func corpusInputs() []string {
	f, err := os.Open(filepath.Join(corpusDir, "at-lines.tsv"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) >= 5 && c[0] != "id" {
			out = append(out, strings.Split(strings.NewReplacer(`\r`, "\r", `\n`, "\n").Replace(c[4]), "\r\n")...)
		}
	}
	return out
}

// FuzzParseLine feeds one line to every response and URC parser: none may
// panic, and every failure must wrap ErrBadResponse.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`+CMTI: "SM",3`, `+CDSI: "SR",1`, `+CMT: "a,b",22`, `+CDS: 25`, `+CMGR: 0,,22`,
		`+CMGL: 1,"REC READ",,30`, `+CMGS: 12,"0791"`, `+CSQ: 31,99`, `+CREG: 2,5,"1A","2B",7`,
		`+CEREG: 1`, `+CNUM: "me","+4915112345678",145`, `+CPMS: "SM",1,20,"ME",0,10,"MT",1,30`,
		`+CPMS: 1,20,1,20`, `+CMS ERROR: 500`, `+CME ERROR: SIM busy`, `+CMTI: "SM`, "", ",,,,",
		`+CSCA: "002B0034",145`, `+CEREG: 2,1, 1F00, 20 ,79D903 ,7`, `+CMGR: 4,1,,151`,
	} {
		f.Add(s)
	}
	for _, s := range corpusInputs() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		_, _ = ParseCMTI(line)
		_, _ = ParseCDSI(line)
		_, _ = ParseCMT(line)
		_, _ = ParseCDS(line)
		_, _ = ParseCMGR(line)
		_, _ = ParseCMGL(line)
		_, _ = ParseCMGS(line)
		_, _ = ParseCSQ(line)
		_, _ = ParseCREG(line, true)
		_, _ = ParseCREG(line, false)
		_, _ = ParseCNUM(line)
		_, _ = ParseCPMS(line)
		_, _ = ParseCSCA(line)
		if err := ParseErrorLine(line); err != nil {
			_ = err.Error()
			_ = Retryable(err)
		}
		for _, e := range parseCMGLList(strings.Split(line, "|")) {
			checkJudgement(t, e.sm)
		}
		checkJudgement(t, judgeCMGR(strings.Split(line, "|")))
	})
}

// checkJudgement: a slot is delivered only with a TPDU of a kind the
// consumer takes, and quarantined (deleted) only with a reason and with
// the line in the PDU's place among the lines the quarantine keeps.
func checkJudgement(t *testing.T, sm storedMsg) {
	switch sm.v {
	case vDeliver:
		if len(sm.pdu.TPDU) == 0 || sm.pdu.Kind == KindOther {
			t.Fatalf("delivered %+v", sm)
		}
	case vBad:
		kept := false
		for _, l := range sm.lines {
			kept = kept || strings.TrimSpace(l) != ""
		}
		if sm.reason == nil || !kept {
			t.Fatalf("quarantine verdict without a reason or a PDU line: %+v", sm)
		}
	}
}

// FuzzSplitPDU checks the PDU splitter and status report reader on any
// input: no panic, and an accepted TPDU has the announced length.
func FuzzSplitPDU(f *testing.F) {
	f.Add(testSMSC+testDeliver, testDeliverLen)
	f.Add(testSMSC+testReport, testReportLen)
	f.Add("00"+testReport, testReportLen)
	f.Add("0791", 2)
	f.Add("FF", 1)
	f.Fuzz(func(t *testing.T, line string, n int) {
		_, tp, err := SplitPDU(line, n)
		if err == nil && len(tp) != n && n >= 0 {
			t.Fatalf("TPDU of %d octets accepted for length %d", len(tp), n)
		}
		if err == nil {
			_, _ = ParseStatusReport(tp)
			_ = TPDUKind(tp)
		}
		pl, err := DecodePDULine(line, n)
		if err == nil {
			if len(pl.TPDU) == 0 {
				t.Fatal("empty TPDU accepted")
			}
			if n >= 0 && len(pl.TPDU) != n && (!pl.Mismatch || tpduDecodes(pl.TPDU) != nil) {
				t.Fatalf("TPDU of %d octets for length %d used without decoding", len(pl.TPDU), n)
			}
		}
	})
}
