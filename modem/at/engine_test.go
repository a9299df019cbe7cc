package at

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// line is the modem side of an engine under test: it reads what the engine
// writes (split at CR, SUB and ESC) and lets the test answer.
type line struct {
	t    *testing.T
	mr   *io.PipeReader // modem reads commands here
	mw   *io.PipeWriter // modem writes answers here
	cmds chan string
	mu   sync.Mutex
	urcs [][]string
	drop []string
	e    *Engine
}

type duplex struct {
	io.Reader
	io.Writer
}

func newLine(t *testing.T, d Dialect) *line { return newLineQuiet(t, d, 30*time.Millisecond) }

func newLineQuiet(t *testing.T, d Dialect, quiet time.Duration) *line {
	t.Helper()
	er, mw := io.Pipe() // modem -> engine
	mr, ew := io.Pipe() // engine -> modem
	l := &line{t: t, mr: mr, mw: mw, cmds: make(chan string, 64)}
	var err error
	l.e, err = New(duplex{er, ew}, Config{
		Dialect: d, Timeout: 2 * time.Second, Quiet: quiet, QuietMax: 5 * quiet,
		OnUnsolicited: func(lines []string) {
			l.mu.Lock()
			l.urcs = append(l.urcs, append([]string(nil), lines...))
			l.mu.Unlock()
		},
		OnDropped: func(what, s string) {
			l.mu.Lock()
			l.drop = append(l.drop, what+": "+s)
			l.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		br := bufio.NewReader(mr)
		var b strings.Builder
		for {
			c, err := br.ReadByte()
			if err != nil {
				close(l.cmds)
				return
			}
			switch c {
			case '\r', 0x1a, 0x1b:
				if c == 0x1a {
					b.WriteString("<SUB>")
				}
				if c == 0x1b {
					b.WriteString("<ESC>")
				}
				l.cmds <- b.String()
				b.Reset()
			case '\n':
			default:
				b.WriteByte(c)
			}
		}
	}()
	t.Cleanup(func() {
		mw.Close()
		mr.Close()
		<-l.e.Done()
	})
	return l
}

// expect reads the next thing the engine wrote.
func (l *line) expect(want string) {
	l.t.Helper()
	select {
	case got := <-l.cmds:
		if got != want {
			l.t.Fatalf("engine wrote %q, want %q", got, want)
		}
	case <-time.After(3 * time.Second):
		l.t.Fatalf("engine wrote nothing, want %q", want)
	}
}

func (l *line) send(s string) {
	l.t.Helper()
	if _, err := io.WriteString(l.mw, s); err != nil {
		l.t.Fatalf("modem write: %v", err)
	}
}

// sendBytewise writes s one byte at a time (lines split across reads).
func (l *line) sendBytewise(s string) {
	for i := 0; i < len(s); i++ {
		l.send(s[i : i+1])
	}
}

func (l *line) unsolicited() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]string(nil), l.urcs...)
}

func (l *line) dropped() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.drop...)
}

type result struct {
	info []string
	err  error
}

func (l *line) exec(cmd string, opts ...Option) chan result {
	ch := make(chan result, 1)
	go func() {
		info, err := l.e.Exec(context.Background(), cmd, opts...)
		ch <- result{info, err}
	}()
	return ch
}

func await(t *testing.T, ch chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("command did not return")
	}
	return result{}
}

func TestLineEndings(t *testing.T) {
	answer := []string{"+CMGR: 0,,22", "07911326040000F0040B911326880736F4000452115221430000030102"}
	for _, tc := range []struct {
		name, eol string
		bytewise  bool
	}{
		{"CRLF", "\r\n", false},
		{"CRCRLF Huawei", "\r\r\n", false},
		{"bare LF", "\n", false},
		{"bare CR", "\r", false},
		{"CRLF split into single bytes", "\r\n", true},
		{"CRCRLF split into single bytes", "\r\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLine(t, Dialect{})
			ch := l.exec("+CMGR=1", WithShape(ShapePDU))
			l.expect("AT+CMGR=1")
			text := tc.eol + answer[0] + tc.eol + answer[1] + tc.eol + tc.eol + "OK" + tc.eol
			if tc.bytewise {
				l.sendBytewise(text)
			} else {
				l.send(text)
			}
			r := await(t, ch)
			if r.err != nil || strings.Join(r.info, "|") != strings.Join(answer, "|") {
				t.Fatalf("got %q, %v; want %q", r.info, r.err, answer)
			}
		})
	}
}

func TestURCsInsideAnswers(t *testing.T) {
	d := Dialect{URCPrefixes: []string{"+QIND:"}}
	hdr, pdu := "+CMGL: 1,0,,22", "07911326040000F0040B911326880736F4000452115221430000030102"
	cmt := "07911326040000F0040B911326880736F40004521152214300000301FF"
	for _, tc := range []struct {
		name   string
		inside []string // lines put between the header and the PDU
		urcs   [][]string
	}{
		{"+CMTI", []string{`+CMTI: "SM",3`}, [][]string{{`+CMTI: "SM",3`}}},
		{"Huawei ^RSSI", []string{"^RSSI: 14"}, [][]string{{"^RSSI: 14"}}},
		{"Sierra *PSUTTZ", []string{"*PSUTTZ: 2026,12,6"}, [][]string{{"*PSUTTZ: 2026,12,6"}}},
		{"Quectel +QIND from the dialect", []string{"+QIND: SMS DONE"}, [][]string{{"+QIND: SMS DONE"}}},
		{"unknown +XYZ: is not the answer", []string{"+XYZ: 1"}, [][]string{{"+XYZ: 1"}}},
		{"power-up text", []string{"RDY", "SMS Ready"}, [][]string{{"RDY"}, {"SMS Ready"}}},
		{"+CMT with its PDU", []string{"+CMT: ,22", cmt}, [][]string{{"+CMT: ,22", cmt}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLine(t, d)
			ch := l.exec("+CMGL=4", WithShape(ShapePDU))
			l.expect("AT+CMGL=4")
			l.send("\r\n" + hdr + "\r\n" + strings.Join(tc.inside, "\r\n") + "\r\n" + pdu + "\r\n\r\nOK\r\n")
			r := await(t, ch)
			if r.err != nil || strings.Join(r.info, "|") != hdr+"|"+pdu {
				t.Fatalf("answer %q, %v", r.info, r.err)
			}
			got := l.unsolicited()
			if len(got) != len(tc.urcs) {
				t.Fatalf("unsolicited %q, want %q", got, tc.urcs)
			}
			for i := range got {
				if strings.Join(got[i], "|") != strings.Join(tc.urcs[i], "|") {
					t.Fatalf("unsolicited %q, want %q", got, tc.urcs)
				}
			}
		})
	}
}

func TestOwnPrefixIsAnswer(t *testing.T) {
	l := newLine(t, Dialect{})
	ch := l.exec("+CREG?")
	l.expect("AT+CREG?")
	l.send("\r\n+CEREG: 1\r\n+CREG: 2,1,\"00C3\",\"0001A2B3\",7\r\n\r\nOK\r\n")
	r := await(t, ch)
	if r.err != nil || len(r.info) != 1 || !strings.HasPrefix(r.info[0], "+CREG:") {
		t.Fatalf("answer %q, %v", r.info, r.err)
	}
	if u := l.unsolicited(); len(u) != 1 || u[0][0] != "+CEREG: 1" {
		t.Fatalf("unsolicited %q", u)
	}
}

func TestFinalResultCodes(t *testing.T) {
	d := Dialect{Finals: []string{"+EXT ERROR:", "NOT SUPPORTED"}}
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"OK", true},
		{"ERROR", false},
		{"+CME ERROR: 10", false},
		{"+CMS ERROR: 500", false},
		{"COMMAND NOT SUPPORT", false},
		{"TOO MANY PARAMETERS", false},
		{"MODEM ERROR: 5", false},
		{"NO CARRIER", false},
		{"+EXT ERROR: 3", false},
		{"NOT SUPPORTED", false},
	} {
		t.Run(tc.line, func(t *testing.T) {
			l := newLine(t, d)
			start := time.Now()
			ch := l.exec("+CSQ")
			l.expect("AT+CSQ")
			l.send("\r\n" + tc.line + "\r\n")
			r := await(t, ch)
			if time.Since(start) > time.Second {
				t.Fatalf("took %v: the code did not end the command", time.Since(start))
			}
			var re *ResultError
			if tc.ok != (r.err == nil) || (!tc.ok && (!errors.As(r.err, &re) || re.Line != tc.line)) {
				t.Fatalf("err = %v", r.err)
			}
		})
	}
	if f, _ := IsFinal("ERRORS happen", Dialect{}); f {
		t.Fatal("a word starting with ERROR taken for ERROR")
	}
}

func TestEchoOn(t *testing.T) {
	l := newLine(t, Dialect{})
	ch := l.exec("+CSQ")
	l.expect("AT+CSQ")
	l.send("AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
	if r := await(t, ch); r.err != nil || len(r.info) != 1 || r.info[0] != "+CSQ: 20,99" {
		t.Fatalf("%q, %v", r.info, r.err)
	}
	sch := make(chan result, 1)
	go func() {
		info, err := l.e.Send(context.Background(), "+CMGS=5", "0011AABBCC")
		sch <- result{info, err}
	}()
	l.expect("AT+CMGS=5")
	l.send("AT+CMGS=5\r\r\n> ")
	l.expect("0011AABBCC<SUB>")
	l.send("0011AABBCC\x1a\r\n+CMGS: 7\r\n\r\nOK\r\n")
	if r := await(t, sch); r.err != nil || len(r.info) != 1 || r.info[0] != "+CMGS: 7" {
		t.Fatalf("%q, %v", r.info, r.err)
	}
}

func TestPromptAndStrayPrompts(t *testing.T) {
	l := newLine(t, Dialect{})
	// A stray prompt while nothing waits for one is dropped.
	l.send("\r\n> ")
	waitUntil(t, "stray prompt dropped", func() bool { return len(l.dropped()) == 1 })
	sch := make(chan result, 1)
	go func() {
		info, err := l.e.Send(context.Background(), "+CMGS=5", "0011AABBCC")
		sch <- result{info, err}
	}()
	l.expect("AT+CMGS=5")
	// A "> " that ends its line is a stray line, not the prompt: the PDU
	// must not be written yet.
	l.send("\r\n> \r\n")
	select {
	case got := <-l.cmds:
		t.Fatalf("PDU written after a stray \"> \\r\\n\": %q", got)
	case <-time.After(100 * time.Millisecond):
	}
	l.send("\r\n> ")
	l.expect("0011AABBCC<SUB>")
	l.send("\r\n+CMGS: 9\r\n\r\nOK\r\n")
	if r := await(t, sch); r.err != nil || len(r.info) != 1 || r.info[0] != "+CMGS: 9" {
		t.Fatalf("%q, %v", r.info, r.err)
	}
}

func TestSendErrorInsteadOfPrompt(t *testing.T) {
	l := newLine(t, Dialect{})
	sch := make(chan result, 1)
	go func() {
		info, err := l.e.Send(context.Background(), "+CMGS=5", "0011AABBCC")
		sch <- result{info, err}
	}()
	l.expect("AT+CMGS=5")
	l.send("\r\n+CMS ERROR: 304\r\n")
	var re *ResultError
	if r := await(t, sch); !errors.As(r.err, &re) || re.Line != "+CMS ERROR: 304" {
		t.Fatalf("%v", r.err)
	}
}

func TestEndOnInfoWavecomCPIN(t *testing.T) {
	l := newLine(t, Dialect{})
	ch := l.exec("+CPIN?", WithEndOnInfo(50*time.Millisecond))
	l.expect("AT+CPIN?")
	l.send("\r\n+CPIN: READY\r\n") // no OK follows
	if r := await(t, ch); r.err != nil || len(r.info) != 1 || r.info[0] != "+CPIN: READY" {
		t.Fatalf("%q, %v", r.info, r.err)
	}
	// With the OK, it ends on the OK as usual.
	ch = l.exec("+CPIN?", WithEndOnInfo(time.Second))
	l.expect("AT+CPIN?")
	l.send("\r\n+CPIN: \"SIM PIN\"\r\n\r\nOK\r\n")
	if r := await(t, ch); r.err != nil || len(r.info) != 1 {
		t.Fatalf("%q, %v", r.info, r.err)
	}
}

func TestTimeoutThenLateAnswerNotTaken(t *testing.T) {
	l := newLineQuiet(t, Dialect{}, time.Second)
	ch := l.exec("+CSQ", WithTimeout(100*time.Millisecond))
	l.expect("AT+CSQ")
	if r := await(t, ch); !errors.Is(r.err, ErrTimeout) {
		t.Fatalf("err = %v", r.err)
	}
	// The late answer is on its way when the next command is asked for:
	// the command waits until the line is quiet, so the late OK is not
	// taken for its answer.
	l.send("\r\n+CSQ: 5,99\r\n")
	waitUntil(t, "late line seen", func() bool { return len(l.unsolicited()) == 1 })
	ch = l.exec("+CREG?")
	l.send("\r\nOK\r\n")
	l.expect("AT+CREG?")
	l.send("\r\n+CREG: 0,1\r\n\r\nOK\r\n")
	if r := await(t, ch); r.err != nil || len(r.info) != 1 || r.info[0] != "+CREG: 0,1" {
		t.Fatalf("%q, %v", r.info, r.err)
	}
	u := l.unsolicited()
	if len(u) != 2 || u[0][0] != "+CSQ: 5,99" || u[1][0] != "OK" {
		t.Fatalf("late answer not reported as unsolicited: %q", u)
	}
}

func TestSendTimeoutEscapes(t *testing.T) {
	l := newLine(t, Dialect{})
	_, err := l.e.Send(context.Background(), "+CMGS=5", "0011AABBCC", WithTimeout(100*time.Millisecond))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	l.expect("AT+CMGS=5")
	l.expect("<ESC>")
}

func TestContextLeavesCommandRunning(t *testing.T) {
	l := newLine(t, Dialect{})
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan result, 1)
	go func() {
		info, err := l.e.Exec(ctx, "+COPS=?", WithTimeout(3*time.Second))
		ch <- result{info, err}
	}()
	l.expect("AT+COPS=?")
	cancel()
	if r := await(t, ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("err = %v", r.err)
	}
	next := l.exec("+CSQ")
	select {
	case got := <-l.cmds:
		t.Fatalf("next command %q written while the abandoned one still runs", got)
	case <-time.After(100 * time.Millisecond):
	}
	l.send("\r\n+COPS: (1,\"NET\")\r\n\r\nOK\r\n") // the abandoned command's answer
	l.expect("AT+CSQ")
	l.send("\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
	if r := await(t, next); r.err != nil || len(r.info) != 1 || r.info[0] != "+CSQ: 20,99" {
		t.Fatalf("%q, %v", r.info, r.err)
	}
}

func TestCloseEndsCommands(t *testing.T) {
	l := newLine(t, Dialect{})
	ch := l.exec("+CSQ")
	l.expect("AT+CSQ")
	l.mw.Close()
	if r := await(t, ch); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("err = %v", r.err)
	}
	<-l.e.Done()
	if !errors.Is(l.e.Err(), ErrClosed) {
		t.Fatalf("Err = %v", l.e.Err())
	}
	if _, err := l.e.Exec(context.Background(), "+CSQ"); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestBounds(t *testing.T) {
	er, mw := io.Pipe()
	mr, ew := io.Pipe()
	var mu sync.Mutex
	var drops []string
	e, err := New(duplex{er, ew}, Config{MaxLine: 64, MaxAnswerLines: 3, OnDropped: func(w, _ string) {
		mu.Lock()
		drops = append(drops, w)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { mw.Close(); mr.Close(); <-e.Done() }()
	go io.Copy(io.Discard, mr)
	ch := make(chan result, 1)
	go func() {
		info, err := e.Exec(context.Background(), "+CMGL=4", WithShape(ShapePDU))
		ch <- result{info, err}
	}()
	time.Sleep(20 * time.Millisecond)
	io.WriteString(mw, "\r\n"+strings.Repeat("A", 500)+"\r\n+CMGL: 1\r\n+CMGL: 2\r\n+CMGL: 3\r\n+CMGL: 4\r\nOK\r\n")
	r := await(t, ch)
	if r.err != nil || len(r.info) != 3 {
		t.Fatalf("%q, %v", r.info, r.err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(drops) != 2 {
		t.Fatalf("drops %q", drops)
	}
}

func TestControlCharactersRefused(t *testing.T) {
	l := newLine(t, Dialect{})
	if _, err := l.e.Exec(context.Background(), "+CSQ\rATZ"); err == nil {
		t.Fatal("a command with CR was written")
	}
}

func TestPrefix(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"+CMGR: 0,,22", "+CMGR:"}, {"^RSSI: 14", "^RSSI:"}, {"+CPIN: READY", "+CPIN:"},
		{"OK", ""}, {"0791AB", ""}, {"Manufacturer: X", ""}, {"+: x", ""}, {"+A B: x", ""},
	} {
		t.Run(c.in, func(t *testing.T) {
			if got := Prefix(c.in); got != c.want {
				t.Errorf("Prefix(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
	if commandPrefix("+cmgr=3") != "+CMGR:" || commandPrefix("Z") != "" || commandPrefix("^SCFG?") != "^SCFG:" {
		t.Fatal("commandPrefix")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
