package sim

import (
	"strings"
	"testing"
)

// plugged returns a modem with profile p plugged in over a pipe, its boot
// text already read.
func plugged(t *testing.T, p Profile, opts ...ModemOption) (*Network, *Modem, *term) {
	t.Helper()
	n, err := NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	m, err := n.AddModem("+4915100000"+itoa(len(t.Name())%10), append([]ModemOption{WithProfile(p)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	tm := newTerm(t, c)
	if m.pin == "" {
		for _, want := range append(p.BootURCs, p.ReadyURCs...) {
			if got := tm.line(); got != want {
				t.Fatalf("boot text %q, want %q", got, want)
			}
		}
	}
	return n, m, tm
}

func TestProfileDialect(t *testing.T) {
	for _, p := range StandardProfiles() {
		t.Run(p.Name, func(t *testing.T) {
			_, m, tm := plugged(t, p, WithIdentity("356938035643809", "001010123456789"))
			// Echo is on after power-up, as on every modem.
			if _, err := tm.conn.Write([]byte("AT\r")); err != nil {
				t.Fatal(err)
			}
			if l := tm.line(); l != "AT" {
				t.Fatalf("echo %q", l)
			}
			if l := tm.line(); l != "OK" {
				t.Fatalf("AT: %q", l)
			}
			tm.mustOK("ATE0")
			cases := []struct {
				cmd   string
				info  []string
				final string
			}{
				{"AT+CGMI", []string{p.Manufacturer}, "OK"},
				{"AT+CGMM", []string{p.Model}, "OK"},
				{"AT+CGMR", []string{p.RevisionPrefix + p.Revision}, "OK"},
				{"AT+CGSN", []string{"356938035643809"}, "OK"},
				{"AT+CIMI", []string{"001010123456789"}, "OK"},
				{"AT+CNUM", []string{`+CNUM: "","` + m.MSISDN() + `",145`}, "OK"},
				{"AT+CSQ", []string{"+CSQ: 20,99"}, "OK"},
				{"AT+CREG?", []string{"+CREG: 0,1"}, "OK"},
				{"AT+CEREG=2", nil, "OK"},
				{"AT+CEREG?", []string{`+CEREG: 2,1,"00C3","0001A2B3",7`}, "OK"},
				{"AT+CPIN?", []string{"+CPIN: READY"}, "OK"},
				{"AT+CMGF=0", nil, "OK"},
				{"AT+CMGF?", []string{"+CMGF: 0"}, "OK"},
				{"AT+CMGF=1", nil, "ERROR"},
				{"AT+CMEE=1", nil, "OK"},
				{"AT+CMGF=1", nil, "+CMS ERROR: 303"},
				{"AT+CMEE=2", nil, "OK"},
				{"AT+CMGF=1", nil, "+CMS ERROR: operation not supported"},
				{"AT+CMGR=99", nil, "+CMS ERROR: invalid memory index"},
				{"AT+CMEE=1", nil, "OK"},
				{"AT+CSMS=1", []string{"+CSMS: 1,1,1"}, "OK"},
				{"AT+CSMS?", []string{"+CSMS: 1,1,1,1"}, "OK"},
				{"AT+CSMS=7", nil, "+CMS ERROR: 303"},
				{"AT+CNMI=?", []string{"+CNMI: " + rangeList(p.CNMIModes) + "," + rangeList(p.CNMIMT) + "," +
					rangeList(p.CNMIBM) + "," + rangeList(p.CNMIDS) + "," + rangeList(p.CNMIBFR)}, "OK"},
				{"AT+CNMI?", []string{"+CNMI: " + cnmiString(p.CNMIDefault)}, "OK"},
				{"AT+CNMI=2,1,0,2,0", nil, "OK"},
				{"AT+CNMI?", []string{"+CNMI: 2,1,0,2,0"}, "OK"},
				{"AT+CNMI=9,1", nil, "+CMS ERROR: 303"},
				{"AT+CPMS?", []string{"+CPMS: " + q(p.Storages[0]) + ",0,30," + q(p.Storages[0]) + ",0,30," + q(p.Storages[0]) + ",0,30"}, "OK"},
				{`AT+CPMS="XX"`, nil, "+CMS ERROR: 303"},
				{`AT+CPMS="` + p.Storages[0] + `","` + p.Storages[0] + `","` + p.Storages[0] + `"`, []string{"+CPMS: 0,30,0,30,0,30"}, "OK"},
				{"AT+CSCA?", []string{`+CSCA: "+10000000000",145`}, "OK"},
				{"AT+CMGL=4", nil, "OK"},
				{"AT+CNMA", nil, "+CMS ERROR: 340"},
				{"AT+CMGD=1,4", nil, "OK"},
				{"AT+FOO", nil, "ERROR"},
				{"ATX?", nil, "ERROR"},
				{"hello", nil, "ERROR"},
				{"AT+CGMI;+CGMM", []string{p.Manufacturer, p.Model}, "OK"},
				{"AT+CMGS=0", nil, "+CMS ERROR: 304"},
			}
			for _, c := range cases {
				t.Run(c.cmd, func(t *testing.T) {
					tm := tm.on(t)
					info, final := tm.cmd(c.cmd)
					if final != c.final || strings.Join(info, "|") != strings.Join(c.info, "|") {
						t.Errorf("%s: got %q %s, want %q %s", c.cmd, info, final, c.info, c.final)
					}
				})
			}
		})
	}
}

func TestRangeList(t *testing.T) {
	for _, c := range []struct {
		in   []int
		want string
	}{
		{[]int{0, 1, 2, 3}, "(0-3)"}, {[]int{0, 2}, "(0,2)"}, {[]int{0, 1}, "(0,1)"},
		{[]int{0, 1, 2, 5}, "(0-2,5)"}, {[]int{1}, "(1)"}, {nil, "()"},
	} {
		t.Run(c.want, func(t *testing.T) {
			if got := rangeList(c.in); got != c.want {
				t.Errorf("rangeList(%v) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestSIMPIN(t *testing.T) {
	p, _ := ProfileByName("sim800")
	_, m, tm := plugged(t, p, WithPIN("1234"))
	if l := tm.line(); l != "RDY" {
		t.Fatalf("boot %q", l)
	}
	if l := tm.line(); l != "+CFUN: 1" {
		t.Fatalf("boot %q", l)
	}
	if l := tm.line(); l != "+CPIN: SIM PIN" {
		t.Fatalf("boot %q", l)
	}
	tm.mustOK("ATE0")
	tm.mustOK("AT+CMEE=1")
	for _, c := range []struct{ cmd, want string }{
		{"AT+CPIN?", "OK"},
		{"AT+CIMI", "+CME ERROR: 11"},
		{"AT+CMGL=4", "+CMS ERROR: 311"},
		{"AT+CREG?", "OK"},
		{`AT+CPIN="0000"`, "+CME ERROR: 16"},
		{`AT+CPIN="1234"`, "OK"},
	} {
		t.Run(c.cmd, func(t *testing.T) {
			tm := tm.on(t)
			if _, final := tm.cmd(c.cmd); final != c.want {
				t.Errorf("%s: %s, want %s", c.cmd, final, c.want)
			}
		})
	}
	for _, want := range p.ReadyURCs {
		if l := tm.line(); l != want {
			t.Fatalf("after PIN %q, want %q", l, want)
		}
	}
	if info := tm.mustOK("AT+CPIN?"); info[0] != "+CPIN: READY" {
		t.Fatalf("%q", info)
	}
	// Three wrong PINs lock the SIM (PUK).
	m.Unplug()
	c, err := m.Replug()
	if err != nil {
		t.Fatal(err)
	}
	tm = newTerm(t, c)
	for range 3 {
		tm.line()
	}
	tm.mustOK("ATE0")
	tm.mustOK("AT+CMEE=1")
	for range 3 {
		if _, f := tm.cmd(`AT+CPIN="9999"`); f != "+CME ERROR: 16" {
			t.Fatal(f)
		}
	}
	if _, f := tm.cmd(`AT+CPIN="1234"`); f != "+CME ERROR: 12" {
		t.Fatalf("after 3 wrong: %s", f)
	}
}
