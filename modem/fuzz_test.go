package modem

import (
	"strings"
	"testing"
)

// FuzzParseLine feeds one line to every response and URC parser: none may
// panic, and every failure must wrap ErrBadResponse.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`+CMTI: "SM",3`, `+CDSI: "SR",1`, `+CMT: "a,b",22`, `+CDS: 25`, `+CMGR: 0,,22`,
		`+CMGL: 1,"REC READ",,30`, `+CMGS: 12,"0791"`, `+CSQ: 31,99`, `+CREG: 2,5,"1A","2B",7`,
		`+CEREG: 1`, `+CNUM: "me","+4915112345678",145`, `+CPMS: "SM",1,20,"ME",0,10,"MT",1,30`,
		`+CPMS: 1,20,1,20`, `+CMS ERROR: 500`, `+CME ERROR: SIM busy`, `+CMTI: "SM`, "", ",,,,",
	} {
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
		if err := ParseErrorLine(line); err != nil {
			_ = err.Error()
			_ = Retryable(err)
		}
		_ = parseCMGLList(strings.Split(line, "|"))
	})
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
	})
}
