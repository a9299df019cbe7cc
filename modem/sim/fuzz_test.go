package sim

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// bufConn collects what the modem writes.
type bufConn struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *bufConn) Read([]byte) (int, error) { select {} }
func (c *bufConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Write(p)
}
func (c *bufConn) Close() error { return nil }

// fuzzSession is a modem session driven synchronously, with no goroutines.
func fuzzSession(t testing.TB) (*sess, *bufConn) {
	n, err := NewNetwork(WithClock(NewManualClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := n.AddModem("+15550001", WithStorageCapacity(3))
	if err != nil {
		t.Fatal(err)
	}
	c := &bufConn{}
	a := &attachment{conn: c, done: make(chan struct{})}
	m.mu.Lock()
	m.att = a
	m.mu.Unlock()
	return &sess{m: m, a: a}, c
}

var fuzzSeeds = []string{
	"AT\r", "ATE0\r", "AT+CMEE=2;+CMGF=0\r", "AT+CNMI=2,1,0,2,0\r", "AT+CPMS=\"SM\",\"ME\"\r",
	"AT+CMGS=11\r0001000891515500020000FF0178\x1a", "AT+CMGS=5\r00ZZ\x1a", "AT+CMGS=3\r\x1b",
	"AT+CMGW=11,2\r0001000891515500020000FF0178\x1a", "AT+CMGL=4\r", "AT+CMGR=1\r", "AT+CMGD=1,4\r",
	"AT+CSCA=\"+123\r", "AT+\r", "ATS0=1\r", "AT&F&W\r", "ATI\r", "garbage\r", "\x00\xff\r\n",
	"AT+CPIN=\"1234\"\r", "AT+CNMA=2\r", "AT+CREG=2;+CREG?\r", strings.Repeat("A", 700) + "\r",
}

// FuzzATInput feeds arbitrary bytes to the command interpreter: it must
// never panic, and once the input is cancelled (ESC, CR) a plain AT must
// still be answered OK.
func FuzzATInput(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, c := fuzzSession(t)
		s.consume(in)
		s.consume([]byte("\x1b\rATE0\r"))
		c.mu.Lock()
		c.b.Reset()
		c.mu.Unlock()
		s.consume([]byte("AT\r"))
		c.mu.Lock()
		out := c.b.String()
		c.mu.Unlock()
		if out != "\r\nOK\r\n" {
			t.Fatalf("after %q: AT answered %q", in, out)
		}
	})
}

// FuzzParseCommandLine: the parser never panics and every command it
// returns has a name.
func FuzzParseCommandLine(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(strings.TrimRight(s, "\r"))
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmds, err := parseCommandLine(line)
		if err != nil {
			return
		}
		for _, c := range cmds {
			if c.name == "" {
				t.Fatalf("%q: empty command name in %+v", line, cmds)
			}
		}
	})
}

func TestParseCommandLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []atCmd
		err  bool
	}{
		{"AT", nil, false},
		{"at+cmgf=0", []atCmd{{name: "+CMGF", op: opSet, args: "0"}}, false},
		{"ATE0V1", []atCmd{{name: "E", args: "0"}, {name: "V", args: "1"}}, false},
		{"AT+CMEE=1;+CNMI?;+CNMI=?", []atCmd{{name: "+CMEE", op: opSet, args: "1"}, {name: "+CNMI", op: opRead}, {name: "+CNMI", op: opTest}}, false},
		{`AT+CPMS="SM;X","ME"`, []atCmd{{name: "+CPMS", op: opSet, args: `"SM;X","ME"`}}, false},
		{"AT&F", []atCmd{{name: "&F"}}, false},
		{"ATS7=50", []atCmd{{name: "S7", op: opSet, args: "50"}}, false},
		{"AT+CGMI", []atCmd{{name: "+CGMI"}}, false},
		{`AT+CSCA="+1`, nil, true},
		{"AT+", nil, true},
		{"XT", nil, true},
		{"AT+CMGF?X", nil, true},
		{"ATS", nil, true},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseCommandLine(c.in)
			if (err != nil) != c.err {
				t.Errorf("%q: err %v", c.in, err)
				return
			}
			if len(got) != len(c.want) {
				t.Errorf("%q: %+v, want %+v", c.in, got, c.want)
				return
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("%q: %+v, want %+v", c.in, got, c.want)
				}
			}
		})
	}
}

// FuzzATLine sends one arbitrary command line: a line the parser rejects
// is answered with exactly ERROR; any other line ends in a final result
// code or a "> " prompt.
func FuzzATLine(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(strings.TrimRight(s, "\r"))
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\r\n\x1a\x1b") {
			return
		}
		s, c := fuzzSession(t)
		s.consume([]byte("ATE0\r"))
		c.mu.Lock()
		c.b.Reset()
		c.mu.Unlock()
		s.consume([]byte(line + "\r"))
		c.mu.Lock()
		out := c.b.String()
		c.mu.Unlock()
		// The simulator drops every NUL of a command line (gsmsendsms
		// ends AT+CMGS=<n> with one), so a line of NULs is an empty one.
		line = strings.ReplaceAll(line, "\x00", "")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			if out != "" {
				t.Fatalf("empty line answered %q", out)
			}
			return
		}
		if _, err := parseCommandLine(trimmed); err != nil || len(trimmed) > maxLine {
			if out != "\r\nERROR\r\n" {
				t.Fatalf("%q: rejected line answered %q", line, out)
			}
			return
		}
		ok := strings.HasSuffix(out, "\r\nOK\r\n") || strings.HasSuffix(out, "\r\nERROR\r\n") ||
			strings.HasSuffix(out, "\r\n> ") || strings.Contains(out, "\r\n+CME ERROR: ") ||
			strings.Contains(out, "\r\n+CMS ERROR: ")
		if !ok {
			t.Fatalf("%q: no final result code in %q", line, out)
		}
	})
}
