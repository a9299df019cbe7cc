package sim

import (
	"bufio"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/warthog618/sms/encoding/tpdu"
)

// term is a test driver: it writes AT commands and reads lines with a
// deadline, keeping URCs it sees on the side.
type term struct {
	t     testing.TB
	conn  io.ReadWriteCloser
	lines chan string
	done  chan struct{}
}

const waitLimit = 10 * time.Second

func newTerm(t testing.TB, conn io.ReadWriteCloser) *term {
	tm := &term{t: t, conn: conn, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(tm.done)
		defer close(tm.lines)
		r := bufio.NewReader(conn)
		var cur []byte
		for {
			b, err := r.ReadByte()
			if err != nil {
				return
			}
			switch {
			case b == '\n':
				tm.lines <- strings.TrimRight(string(cur), "\r")
				cur = cur[:0]
			case b == ' ' && len(cur) == 1 && cur[0] == '>':
				tm.lines <- "> "
				cur = cur[:0]
			default:
				cur = append(cur, b)
			}
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		select {
		case <-tm.done:
		case <-time.After(waitLimit):
			t.Errorf("term reader did not stop")
		}
	})
	return tm
}

// line returns the next non-empty line.
// on returns tm reporting to t (a subtest of the test that made tm): the
// same connection and lines, so that a failure inside the subtest ends the
// subtest, not its parent from the wrong goroutine.
func (tm *term) on(t testing.TB) *term {
	c := *tm
	c.t = t
	return &c
}

func (tm *term) line() string {
	tm.t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case l, ok := <-tm.lines:
			if !ok {
				tm.t.Fatalf("line closed")
			}
			if l != "" {
				return l
			}
		case <-deadline:
			tm.t.Fatalf("no line within %v", waitLimit)
		}
	}
}

func isFinal(l string) bool {
	return l == "OK" || l == "ERROR" || strings.HasPrefix(l, "+CME ERROR:") || strings.HasPrefix(l, "+CMS ERROR:")
}

// cmd sends an AT command line and returns the information lines and the
// final result code.
func (tm *term) cmd(line string) ([]string, string) {
	tm.t.Helper()
	if _, err := tm.conn.Write([]byte(line + "\r")); err != nil {
		tm.t.Fatalf("write %q: %v", line, err)
	}
	var info []string
	for {
		l := tm.line()
		if l == line { // echo
			continue
		}
		if isFinal(l) {
			return info, l
		}
		info = append(info, l)
	}
}

// mustOK runs cmd and fails the test unless it ends in OK.
func (tm *term) mustOK(line string) []string {
	tm.t.Helper()
	info, final := tm.cmd(line)
	if final != "OK" {
		tm.t.Fatalf("%s: %s %q", line, final, info)
	}
	return info
}

// send runs +CMGS with a PDU (no SMSC prefix given: "00").
func (tm *term) send(tp []byte) ([]string, string) {
	tm.t.Helper()
	if _, err := tm.conn.Write([]byte("AT+CMGS=" + itoa(len(tp)) + "\r")); err != nil {
		tm.t.Fatal(err)
	}
	for {
		l := tm.line()
		if l == "> " {
			break
		}
		if isFinal(l) {
			return nil, l
		}
	}
	if _, err := tm.conn.Write([]byte("00" + strings.ToUpper(hex.EncodeToString(tp)) + "\x1a")); err != nil {
		tm.t.Fatal(err)
	}
	var info []string
	for {
		l := tm.line()
		if isFinal(l) {
			return info, l
		}
		if strings.HasPrefix(l, "+CMGS:") {
			info = append(info, l)
		}
	}
}

// submitPDU builds an SMS-SUBMIT to dst with 8-bit data.
func submitPDU(t testing.TB, dst string, data []byte, srr bool) []byte {
	t.Helper()
	s, err := tpdu.NewSubmit()
	if err != nil {
		t.Fatal(err)
	}
	s.DA = numberAddress(dst)
	s.DCS = tpdu.Dcs8BitData
	if srr {
		s.FirstOctet |= tpdu.FoSRR
	}
	s.UD = data
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeDeliverHex decodes a PDU-mode hex SMS-DELIVER.
func decodeDeliverHex(t testing.TB, h string) *tpdu.TPDU {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	n := int(b[0]) + 1
	var d tpdu.TPDU
	if err := d.UnmarshalBinary(b[n:]); err != nil {
		t.Fatalf("decode %s: %v", h, err)
	}
	return &d
}

// text7 builds an SMS-SUBMIT of GSM 7-bit text (ASCII letters only).
func text7(t testing.TB, dst, text string) []byte {
	t.Helper()
	s, err := tpdu.NewSubmit()
	if err != nil {
		t.Fatal(err)
	}
	s.DA = numberAddress(dst)
	s.DCS = 0x00
	s.UD = []byte(text)
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
