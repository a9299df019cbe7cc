package modem

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fakeModem is a small scripted AT responder for the driver's unit tests.
// The full simulator lives in modem/sim; this one exists so that the
// driver's own edge cases (stray URCs, missing prompt, garbage) can be
// scripted line by line.
type fakeModem struct {
	mu       sync.Mutex
	conn     io.ReadWriteCloser // modem side
	store    map[int]string     // index -> "stat,len,hex"
	next     int
	cmds     []string
	mr       int
	sendTime time.Duration
	cmgsErr  []string // queued error lines for the next +CMGS
	noPrompt bool
	hang     bool
	pin      string // required PIN, "" = READY
	unlocked bool
	model    string
	maker    string
	cnma     int
	nack     int
	storeCap int
	// refill: entries ("stat,len,hex") that each +CMGD stores at once in
	// the slot it freed, announcing them with +CMTI before its OK (held
	// back refillGap), as a modem does when the network was waiting for
	// memory (RP-SMMA).
	refill    []string
	refillGap time.Duration
	// lateZ is written once, when the first ATZ arrives and before its
	// answer: the late answer to a command of an earlier session. lateCMGS
	// is written once before the "> " prompt of the next +CMGS.
	lateZ, lateCMGS string
	// latency delays every answer (and prompt), as a modem behind a pty or
	// USB does: a host that has taken a late answer for the current
	// command has sent the next one before this one's answer comes.
	latency time.Duration
	escapes int // ESC received at a "> " prompt (the send cancelled)
	closed  chan struct{}
	// eol replaces every CR LF the fake writes ("\r\r\n", "\n", "\r").
	eol string
	// override answers a command (exact text after AT) with raw text.
	override map[string]string
	// inside are lines put between each header and its PDU line in +CMGR
	// and +CMGL answers (URCs a real modem interleaves).
	inside []string
	// cpinNoOK answers AT+CPIN? without a final OK (old Wavecom);
	// cpinQuoted quotes the state (+CPIN: "SIM PIN").
	cpinNoOK, cpinQuoted bool
}

type duplex struct {
	io.Reader
	io.Writer
	closeFn func() error
}

func (d duplex) Close() error { return d.closeFn() }

// newFakePair returns the driver side of a fresh fake.
func newFakePair(f *fakeModem) io.ReadWriteCloser {
	r1, w1 := io.Pipe() // driver -> modem
	r2, w2 := io.Pipe() // modem -> driver
	var once sync.Once
	closeAll := func() error {
		once.Do(func() {
			r1.Close()
			w1.Close()
			r2.Close()
			w2.Close()
		})
		return nil
	}
	f.mu.Lock()
	f.conn = duplex{Reader: r1, Writer: w2, closeFn: closeAll}
	f.closed = make(chan struct{})
	f.mu.Unlock()
	go f.serve(f.conn, f.closed)
	return duplex{Reader: r2, Writer: w1, closeFn: closeAll}
}

func newFake() *fakeModem {
	return &fakeModem{store: map[int]string{}, mr: 0, maker: "FAKE", model: "F1", storeCap: 20}
}

// unplug closes the link as a USB unplug does.
func (f *fakeModem) unplug() {
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

func (f *fakeModem) write(s string) {
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c != nil {
		_, _ = io.WriteString(c, s)
	}
}

// storeMsg stores a PDU line and announces it with +CMTI when announce.
func (f *fakeModem) storeMsg(hexPDU string, tpduLen int, announce bool) int {
	f.mu.Lock()
	idx := f.next
	f.next++
	f.store[idx] = fmt.Sprintf("0,%d,%s", tpduLen, hexPDU)
	f.mu.Unlock()
	if announce {
		f.write(fmt.Sprintf("\r\n+CMTI: \"SM\",%d\r\n", idx))
	}
	return idx
}

func (f *fakeModem) stored() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for k := range f.store {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func (f *fakeModem) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

func (f *fakeModem) serve(c io.ReadWriter, closed chan struct{}) {
	defer close(closed)
	br := bufio.NewReader(c)
	out := func(s string) {
		f.mu.Lock()
		eol := f.eol
		f.mu.Unlock()
		if eol != "" {
			s = strings.ReplaceAll(s, "\r\n", eol)
		}
		_, _ = io.WriteString(c, s)
	}
	for {
		line, err := br.ReadString('\r')
		if err != nil {
			return
		}
		line = strings.TrimLeft(line, "\x1b\r\n ")
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(strings.ToUpper(line), "AT") {
			continue
		}
		cmd := line[2:]
		f.mu.Lock()
		f.cmds = append(f.cmds, cmd)
		hang := f.hang
		raw, overridden := f.override[cmd]
		var late string
		if cmd == "Z" {
			late, f.lateZ = f.lateZ, ""
		}
		if strings.HasPrefix(cmd, "+CMGS=") {
			late, f.lateCMGS = f.lateCMGS, ""
		}
		latency := f.latency
		f.mu.Unlock()
		if hang {
			continue
		}
		if overridden {
			out(raw)
			continue
		}
		if late != "" {
			out(late)
		}
		if latency > 0 {
			time.Sleep(latency)
		}
		if strings.HasPrefix(cmd, "+CMGS=") {
			f.mu.Lock()
			noPrompt := f.noPrompt
			f.mu.Unlock()
			if noPrompt {
				continue
			}
			out("\r\n> ")
			cancelled := false
			for { // the PDU up to Ctrl-Z; ESC cancels (TS 27.005 §3.5.1)
				b, err := br.ReadByte()
				if err != nil {
					return
				}
				if b == 0x1a {
					break
				}
				if b == 0x1b {
					cancelled = true
					break
				}
			}
			if cancelled {
				f.mu.Lock()
				f.escapes++
				f.mu.Unlock()
				out("\r\nOK\r\n")
				continue
			}
			f.mu.Lock()
			d := f.sendTime
			var errLine string
			if len(f.cmgsErr) > 0 {
				errLine = f.cmgsErr[0]
				f.cmgsErr = f.cmgsErr[1:]
			}
			mr := f.mr
			f.mr = (f.mr + 1) % 256
			f.mu.Unlock()
			if d > 0 {
				time.Sleep(d)
			}
			if errLine != "" {
				out("\r\n" + errLine + "\r\n")
				continue
			}
			out(fmt.Sprintf("\r\n+CMGS: %d\r\n\r\nOK\r\n", mr))
			continue
		}
		if strings.HasPrefix(cmd, "+CMGD=") {
			f.mu.Lock()
			var e string
			if len(f.refill) > 0 {
				e, f.refill = f.refill[0], f.refill[1:]
			}
			gap := f.refillGap
			f.mu.Unlock()
			if e != "" {
				i, _ := strconv.Atoi(cmd[6:])
				f.mu.Lock()
				f.store[i] = e
				f.mu.Unlock()
				out(fmt.Sprintf("\r\n+CMTI: \"SM\",%d\r\n", i))
				time.Sleep(gap) // lets the driver see the +CMTI before the OK
				out("\r\nOK\r\n")
				continue
			}
		}
		out(f.respond(cmd))
	}
}

func (f *fakeModem) respond(cmd string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ok := "\r\nOK\r\n"
	info := func(lines ...string) string {
		return "\r\n" + strings.Join(lines, "\r\n") + "\r\n" + ok
	}
	switch {
	case cmd == "Z", cmd == "E0", strings.HasPrefix(cmd, "+CMEE="), strings.HasPrefix(cmd, "+CMGF="),
		strings.HasPrefix(cmd, "+CNMI="), strings.HasPrefix(cmd, "+CSDH"),
		strings.HasPrefix(cmd, "+QURCCFG"):
		return ok
	case strings.HasPrefix(cmd, "+CSMS="):
		return info("+CSMS: 1,1,1")
	case cmd == "+CPIN?":
		state := "READY"
		if f.pin != "" && !f.unlocked {
			state = "SIM PIN"
		}
		if f.cpinQuoted {
			state = `"` + state + `"`
		}
		if f.cpinNoOK {
			return "\r\n+CPIN: " + state + "\r\n"
		}
		return info("+CPIN: " + state)
	case strings.HasPrefix(cmd, "+CPIN="):
		if strings.Trim(cmd[6:], `"`) == f.pin {
			f.unlocked = true
			return ok
		}
		return "\r\n+CME ERROR: 16\r\n"
	case cmd == "+CGMI":
		return info(f.maker)
	case cmd == "+CGMM":
		return info(f.model)
	case cmd == "+CGMR":
		return info("Revision: 1.0")
	case cmd == "+CGSN":
		return info("490154203237518")
	case cmd == "+CIMI":
		return info("001010123456789")
	case cmd == "+CNUM":
		return info(`+CNUM: "","+15550001",145`)
	case cmd == "+CSQ":
		return info("+CSQ: 20,99")
	case cmd == "+CSCA?":
		return info(`+CSCA: "+31624000000",145`)
	case cmd == "+CREG?":
		return info("+CREG: 0,1")
	case cmd == "+CEREG?":
		return "\r\nERROR\r\n"
	case cmd == "+CPMS?":
		return info(fmt.Sprintf(`+CPMS: "SM",%d,%d,"SM",%d,%d,"SM",%d,%d`, len(f.store), f.storeCap, len(f.store), f.storeCap, len(f.store), f.storeCap))
	case strings.HasPrefix(cmd, "+CPMS="):
		return info(fmt.Sprintf("+CPMS: %d,%d,%d,%d,%d,%d", len(f.store), f.storeCap, len(f.store), f.storeCap, len(f.store), f.storeCap))
	case cmd == "+CNMA":
		f.cnma++
		return ok
	case cmd == "+CNMA=2":
		f.nack++
		return ok
	case strings.HasPrefix(cmd, "+CMGR="):
		i, _ := strconv.Atoi(cmd[6:])
		e, has := f.store[i]
		if !has {
			return ok
		}
		p := strings.SplitN(e, ",", 3)
		return info(append(append([]string{fmt.Sprintf("+CMGR: %s,,%s", p[0], p[1])}, f.inside...), p[2])...)
	case cmd == "+CMGL=4":
		var lines []string
		var keys []int
		for k := range f.store {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		for _, k := range keys {
			p := strings.SplitN(f.store[k], ",", 3)
			lines = append(lines, fmt.Sprintf("+CMGL: %d,%s,,%s", k, p[0], p[1]))
			lines = append(append(lines, f.inside...), p[2])
		}
		if len(lines) == 0 {
			return ok
		}
		return info(lines...)
	case strings.HasPrefix(cmd, "+CMGD="):
		i, _ := strconv.Atoi(cmd[6:])
		delete(f.store, i)
		return ok
	}
	return "\r\nERROR\r\n"
}
