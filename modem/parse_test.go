package modem

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestParseStoredIndications(t *testing.T) {
	tests := []struct {
		line string
		want StoredIndication
		ok   bool
	}{
		{`+CMTI: "SM",3`, StoredIndication{"SM", 3}, true},
		{`+CMTI: "ME", 12`, StoredIndication{"ME", 12}, true},
		{`+CMTI:"MT",0`, StoredIndication{"MT", 0}, true},
		{`+CMTI: "SM"`, StoredIndication{}, false},
		{`+CMTI: "SM",-1`, StoredIndication{}, false},
		{`+CMTI: "SM,1`, StoredIndication{"SM", 1}, true}, // broken quote: the fields stay readable
		{`+CMTI: ,1`, StoredIndication{}, false},
		{`+CMT: "SM",1`, StoredIndication{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := ParseCMTI(tt.line)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseCMTI(%q) = %+v, %v", tt.line, got, err)
			}
			if err != nil && !errors.Is(err, ErrBadResponse) {
				t.Errorf("ParseCMTI(%q) error %v does not wrap ErrBadResponse", tt.line, err)
			}
		})
	}
	if got, err := ParseCDSI(`+CDSI: "SR",5`); err != nil || got != (StoredIndication{"SR", 5}) {
		t.Errorf("ParseCDSI = %+v, %v", got, err)
	}
}

func TestParseHeaders(t *testing.T) {
	if n, err := ParseCMT(`+CMT: ,22`); err != nil || n != 22 {
		t.Errorf("CMT = %d, %v", n, err)
	}
	if n, err := ParseCMT(`+CMT: "Alice, B",40`); err != nil || n != 40 {
		t.Errorf("CMT alpha with comma = %d, %v", n, err)
	}
	if n, err := ParseCMT(`+CMT: 22`); err != nil || n != 22 {
		t.Errorf("CMT without <alpha> = %d, %v", n, err)
	}
	for _, bad := range []string{`+CMT: ,0`, `+CMT: ,999`, `+CMT: ,x`, `+CMT: a,b,22`} {
		t.Run(bad, func(t *testing.T) {
			if _, err := ParseCMT(bad); err == nil {
				t.Errorf("ParseCMT(%q) accepted", bad)
			}
		})
	}
	if n, err := ParseCDS(`+CDS: 25`); err != nil || n != 25 {
		t.Errorf("CDS = %d, %v", n, err)
	}
	if h, err := ParseCMGR(`+CMGR: 1,,22`); err != nil || h != (CMGRHeader{StatRecRead, 22}) {
		t.Errorf("CMGR = %+v, %v", h, err)
	}
	if h, err := ParseCMGR(`+CMGR: 0,22`); err != nil || h != (CMGRHeader{StatRecUnread, 22}) {
		t.Errorf("CMGR (no alpha) = %+v, %v", h, err)
	}
	if h, err := ParseCMGR(`+CMGR: "REC UNREAD",,22`); err != nil || h.Stat != StatRecUnread {
		t.Errorf("CMGR text stat = %+v, %v", h, err)
	}
	if h, err := ParseCMGR(`+CMGR: 7,,22`); err != nil || h.Stat != StatUnknown {
		t.Errorf("CMGR stat 7 = %+v, %v; want StatUnknown (the field degrades)", h, err)
	}
	for _, bad := range []string{`+CMGR: 1,,147 07914306073011F0`, `+CMGR: 1,,0`, `+CMGR: 1,,x`, `+CMGR: "REC READ","+4123","09/8/18,19:11:45"`} {
		t.Run(bad, func(t *testing.T) {
			if _, err := ParseCMGR(bad); err == nil {
				t.Errorf("ParseCMGR(%q) accepted", bad)
			}
		})
	}
	if h, err := ParseCMGL(`+CMGL: 4,2,,30`); err != nil || h != (CMGLHeader{4, StatStoUnsent, 30}) || h.Stat.Received() {
		t.Errorf("CMGL = %+v, %v", h, err)
	}
	if h, err := ParseCMGL(`+CMGL: 4,1,30`); err != nil || h != (CMGLHeader{4, StatRecRead, 30}) {
		t.Errorf("CMGL no alpha = %+v, %v", h, err)
	}
	for line, want := range map[string]int{`+CMGS: 17`: 17, `+CMGS: 0,"07911326"`: 0, `+CMGS: 255`: 255} {
		t.Run(line, func(t *testing.T) {
			if mr, err := ParseCMGS(line); err != nil || mr != want {
				t.Errorf("ParseCMGS(%q) = %d, %v", line, mr, err)
			}
		})
	}
	if _, err := ParseCMGS(`+CMGS: 256`); err == nil {
		t.Error("MR 256 accepted")
	}
}

func TestParseCSQAndCREG(t *testing.T) {
	tests := []struct {
		line string
		want Signal
		ok   bool
	}{
		{"+CSQ: 20,99", Signal{20, 99}, true},
		{"+CSQ: 99,99", Signal{99, 99}, true},
		{"+CSQ: 0,7", Signal{0, 7}, true},
		{"+CSQ: 32,0", Signal{99, 0}, true}, // rssi out of range degrades to unknown
		{"+CSQ: 15,x", Signal{15, 99}, true},
		{"+CSQ: 5", Signal{}, false},
		{"+CSQ: a,b", Signal{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := ParseCSQ(tt.line)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseCSQ(%q) = %+v, %v", tt.line, got, err)
			}
		})
	}
	if _, ok := (Signal{RSSI: 99}).DBm(); ok {
		t.Error("unknown RSSI has dBm")
	}
	regs := []struct {
		line string
		read bool
		want Registration
		ok   bool
	}{
		{"+CREG: 0,1", true, Registration{Stat: RegHome, AcT: -1}, true},
		{`+CREG: 2,5,"1A2B","0001F3C4",7`, true, Registration{RegRoaming, "1A2B", "0001F3C4", 7}, true},
		{`+CEREG: 1,"00C3","0102A5B1",7`, false, Registration{RegHome, "00C3", "0102A5B1", 7}, true},
		{`+CGREG: 0,2`, true, Registration{Stat: RegSearching, AcT: -1}, true},
		{`+CREG: 1`, true, Registration{}, false},
		{`+CREG: 9,1`, true, Registration{}, false},
		{`+COPS: 0,1`, true, Registration{}, false},
	}
	for _, tt := range regs {
		t.Run(tt.line, func(t *testing.T) {
			got, err := ParseCREG(tt.line, tt.read)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseCREG(%q) = %+v, %v", tt.line, got, err)
			}
		})
	}
	if !RegSMSOnlyHome.Registered() || RegDenied.Registered() {
		t.Error("Registered()")
	}
}

func TestParseCNUMAndCPMS(t *testing.T) {
	for line, want := range map[string]string{
		`+CNUM: "","+15550001",145`:        "+15550001",
		`+CNUM: "Own","4915112345678",145`: "+4915112345678",
		`+CNUM: ,"0151123",129`:            "0151123",
	} {
		t.Run(line, func(t *testing.T) {
			if got, err := ParseCNUM(line); err != nil || got != want {
				t.Errorf("ParseCNUM(%q) = %q, %v", line, got, err)
			}
		})
	}
	if got, err := ParseCNUM(`+CNUM: "","+15550001"`); err != nil || got != "+15550001" {
		t.Errorf("ParseCNUM without <type> = %q, %v", got, err)
	}
	for _, bad := range []string{`+CNUM: "",,145`, `+CNUM: "","12a4",129`, `+CNUM: "","+"`, `+CNUM: "x"`} {
		t.Run(bad, func(t *testing.T) {
			if _, err := ParseCNUM(bad); err == nil {
				t.Errorf("ParseCNUM(%q) accepted", bad)
			}
		})
	}
	got, err := ParseCPMS(`+CPMS: "SM",3,20,"SM",3,20,"ME",0,255`)
	want := []StorageUse{{"SM", 3, 20}, {"SM", 3, 20}, {"ME", 0, 255}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseCPMS read = %+v, %v", got, err)
	}
	got, err = ParseCPMS(`+CPMS: 20,20,20,20,20,20`)
	if err != nil || len(got) != 3 || !got[0].Full() {
		t.Errorf("ParseCPMS set = %+v, %v", got, err)
	}
	for _, bad := range []string{`+CPMS: "SM",3`, `+CPMS: 1,2,3`, `+CPMS: "SM",-1,20`} {
		t.Run(bad, func(t *testing.T) {
			if _, err := ParseCPMS(bad); err == nil {
				t.Errorf("ParseCPMS(%q) accepted", bad)
			}
		})
	}
}

func TestParseErrorLine(t *testing.T) {
	tests := []struct {
		line      string
		retryable bool
		code      int
		cms       bool
	}{
		{"+CMS ERROR: 331", true, 331, true},
		{"+CMS ERROR: 500", true, 500, true},
		{"+CMS ERROR: 305", false, 305, true},
		{"+CMS ERROR: 0xC0", true, -1, true},
		{"+CMS ERROR: 192", true, 192, true},  // SC busy
		{"+CMS ERROR: 196", false, 196, true}, // destination SME barred
		{"+CMS ERROR: network timeout", true, 332, true},
		{"+CME ERROR: 14", true, 14, false},
		{"+CME ERROR: 10", false, 10, false},
		{"+CME ERROR: SIM PIN required", false, 11, false},
		{"+CME ERROR: 30", true, 30, false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			err := ParseErrorLine(tt.line)
			var cms *CMSError
			var cme *CMEError
			switch {
			case tt.cms && errors.As(err, &cms):
				if cms.Code != tt.code {
					t.Errorf("%q: code %d", tt.line, cms.Code)
				}
			case !tt.cms && errors.As(err, &cme):
				if cme.Code != tt.code {
					t.Errorf("%q: code %d", tt.line, cme.Code)
				}
			default:
				t.Errorf("%q: %T %v", tt.line, err, err)
			}
			if Retryable(err) != tt.retryable {
				t.Errorf("%q: Retryable = %v", tt.line, !tt.retryable)
			}
			if !strings.Contains(err.Error(), "ERROR") {
				t.Errorf("%q: message %q", tt.line, err.Error())
			}
		})
	}
	if ParseErrorLine("OK") != nil || ParseErrorLine("ERROR") != ErrATError {
		t.Error("plain lines")
	}
	if !errors.Is(ParseErrorLine("+CME ERROR: 11"), ErrSIMPIN) || !errors.Is(ParseErrorLine("+CME ERROR: 20"), ErrStorageFull) {
		t.Error("CME Is")
	}
	if Retryable(nil) || Retryable(errors.New("x")) || !Retryable(ErrLinkLost) {
		t.Error("Retryable sentinels")
	}
	// Callers outside this package decide by the method alone.
	for err, want := range map[error]bool{
		fmt.Errorf("send: %w", ErrLinkLost): true, fmt.Errorf("x: %w", ErrBadPDU): false,
		fmt.Errorf("pool: %w", ErrUnknownSIM): false, fmt.Errorf("%w: 3 allowed", ErrNoModem): true,
		fmt.Errorf("AT+CMGS: %w", &CMSError{Code: 1}): false, ErrClosed: true, ErrSIMPIN: false,
	} {
		t.Run(err.Error(), func(t *testing.T) {
			var r interface{ Retryable() bool }
			if !errors.As(err, &r) || r.Retryable() != want || Retryable(err) != want {
				t.Errorf("%v: Retryable() should be %v", err, want)
			}
		})
	}
}

func TestSplitPDUAndStatusReport(t *testing.T) {
	smsc, tp, err := SplitPDU(testSMSC+testDeliver, testDeliverLen)
	if err != nil || smsc != "+31624000000" || len(tp) != testDeliverLen || TPDUKind(tp) != KindDeliver {
		t.Fatalf("SplitPDU = %q, %x, %v", smsc, tp, err)
	}
	if _, tp, err := SplitPDU("00"+testDeliver, testDeliverLen); err != nil || len(tp) != testDeliverLen {
		t.Fatalf("no SMSC: %v", err)
	}
	for _, bad := range []struct {
		line string
		n    int
	}{{"", 1}, {"00", 1}, {"0791", 1}, {testSMSC + testDeliver, 21}, {"zz", 1}, {"FF00", 1}} {
		t.Run(fmt.Sprintf("%q/%d", bad.line, bad.n), func(t *testing.T) {
			if _, _, err := SplitPDU(bad.line, bad.n); !errors.Is(err, ErrBadPDU) {
				t.Errorf("SplitPDU(%q,%d) = %v", bad.line, bad.n, err)
			}
		})
	}
	_, rep, _ := SplitPDU(testSMSC+testReport, testReportLen)
	sr, err := ParseStatusReport(rep)
	if err != nil || sr.MR != 42 || sr.Status != 0 || !sr.Final() {
		t.Fatalf("status report %+v %v", sr, err)
	}
	if _, err := ParseStatusReport(rep[:10]); err == nil {
		t.Error("truncated status report accepted")
	}
	if _, err := ParseStatusReport(tp); err == nil {
		t.Error("deliver parsed as status report")
	}
	line, err := EncodeSubmitLine("", []byte{0x01, 0x02})
	if err != nil || line != "000102" {
		t.Errorf("EncodeSubmitLine = %q, %v", line, err)
	}
	line, err = EncodeSubmitLine("+31624000000", []byte{0x01})
	if err != nil || line != testSMSC+"01" {
		t.Errorf("EncodeSubmitLine with SMSC = %q, %v", line, err)
	}
	if _, err := EncodeSubmitLine("", make([]byte, 300)); !errors.Is(err, ErrBadPDU) {
		t.Error("oversize TPDU accepted")
	}
}

func TestDetectProfile(t *testing.T) {
	tests := []struct{ maker, model, want string }{
		{"SIMCOM_Ltd", "SIMCOM_SIM800L", "simcom-sim800"},
		{"SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", "simcom-sim7600"},
		{"Quectel", "EC25", "quectel-ec2x"},
		{"Quectel", "BG96", "quectel-bg9x"},
		{"u-blox", "SARA-R410M-02B", "ublox-sara"},
		{"Telit", "LE910", "telit"},
		{"huawei", "E1752", "huawei"},
		{"ZTE INCORPORATED", "K3565-Z", "zte"},
		{" WAVECOM MODEM", " MULTIBAND  900E  1800", "sierra-wavecom"},
		{"Cinterion", "EHS6", "cinterion"},
		{"Nordic Semiconductor ASA", "nRF9160-SICA", "nordic-nrf91"},
		{"Nokia", "Nokia 5210", "generic"},
	}
	for _, tt := range tests {
		t.Run(tt.maker+"/"+tt.model, func(t *testing.T) {
			if got := DetectProfile(tt.maker, tt.model).Name; got != tt.want {
				t.Errorf("DetectProfile(%q,%q) = %s, want %s", tt.maker, tt.model, got, tt.want)
			}
		})
	}
	for _, p := range Profiles() {
		if q, ok := ProfileByName(p.Name); !ok || q.Name != p.Name {
			t.Errorf("ProfileByName(%s)", p.Name)
		}
		if p.DirectDelivery() && !p.NeedsCNMA() {
			t.Errorf("%s: direct delivery without +CNMA would lose messages the consumer fails to store", p.Name)
		}
	}
	if !mustProfile("ublox-sara").DirectDelivery() || mustProfile("generic").DirectDelivery() || !mustProfile("quectel-bg9x").DirectStatusReports() {
		t.Error("CNMI decoding")
	}
}

// Property: splitParams round-trips any list of values free of quotes and
// commas, quoted or not.
func TestSplitParamsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		vals := rapid.SliceOfN(rapid.StringMatching(`[A-Za-z0-9 +:]{0,8}`), 1, 6).Draw(t, "vals")
		quote := rapid.SliceOfN(rapid.Bool(), len(vals), len(vals)).Draw(t, "quote")
		parts := make([]string, len(vals))
		want := make([]string, len(vals))
		for i, v := range vals {
			want[i] = strings.TrimSpace(v)
			if quote[i] {
				parts[i] = `"` + v + `"`
			} else {
				parts[i] = v
			}
		}
		got, err := splitParams(strings.Join(parts, ","))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q want %q", got, want)
		}
	})
}

// Property: a status report built from random fields parses back.
func TestStatusReportProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		mr := rapid.IntRange(0, 255).Draw(t, "mr")
		st := rapid.IntRange(0, 255).Draw(t, "st")
		digits := rapid.StringMatching(`[0-9]{1,15}`).Draw(t, "digits")
		b := []byte{0x06, byte(mr), byte(len(digits)), 0x91}
		for i := 0; i < len(digits); i += 2 {
			lo := digits[i] - '0'
			hi := byte(0xF)
			if i+1 < len(digits) {
				hi = digits[i+1] - '0'
			}
			b = append(b, hi<<4|lo)
		}
		b = append(b, make([]byte, 14)...)
		b = append(b, byte(st))
		sr, err := ParseStatusReport(b)
		if err != nil || sr.MR != mr || sr.Status != st || sr.Recipient != "+"+digits {
			t.Fatalf("%+v %v", sr, err)
		}
	})
}
