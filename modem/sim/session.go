package sim

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/warthog618/sms/encoding/tpdu"
)

// maxPDUHex bounds the hex text accepted after a "> " prompt: a 164-octet
// TPDU plus a 12-octet SMSC address, twice for hex, with room to spare.
const maxPDUHex = 400

// sess is the state of one plug-in's command interpreter. It is owned by the
// session goroutine.
type sess struct {
	m        *Modem
	a        *attachment
	line     []byte
	overflow bool
	esc      bool   // ESC came at the command line: a CR on an empty line answers OK
	noise    int    // next Profile.Noise line
	pdu      bool   // collecting a PDU after "> "
	pduCmd   string // "+CMGS" or "+CMGW"
	pduLen   int
	pduStat  int
	pduBuf   []byte
}

// session interprets the bytes the driver writes and writes answers and
// unsolicited result codes. It ends at unplug or when the driver closes a
// pipe.
func (m *Modem) session(a *attachment, boot []byte) {
	defer a.wg.Done()
	s := &sess{m: m, a: a}
	if len(boot) > 0 {
		s.write(string(boot), true)
	}
	for {
		var wake chan struct{}
		if !s.pdu {
			wake = m.wake
		}
		select {
		case <-a.done:
			return
		case b, ok := <-a.in:
			if !ok {
				m.detach(a)
				return
			}
			s.consume(b)
		case <-wake:
			s.route()
		}
	}
}

// write sends formatted text to the driver unless the modem hangs: every
// CR LF becomes the profile's line end, and it goes out in pieces when
// WithChunkedWrites asks for it.
func (s *sess) write(text string, urc bool) {
	if eol := s.m.prof.lineEnd(); eol != "\r\n" {
		text = strings.ReplaceAll(text, "\r\n", eol)
	}
	s.raw(text, urc)
}

// raw sends text as it is (the echo).
func (s *sess) raw(text string, urc bool) {
	m := s.m
	m.mu.Lock()
	hung := m.hung
	if urc && !hung {
		m.stats.URCs++
	}
	chunk := m.chunk
	m.mu.Unlock()
	if hung {
		return
	}
	if m.trace != nil {
		m.trace.Debug("sim: at tx", "msisdn", m.msisdn, "text", text)
	}
	if chunk <= 0 {
		_, _ = s.a.conn.Write([]byte(text))
		return
	}
	for len(text) > 0 {
		n := min(chunk, len(text))
		_, _ = s.a.conn.Write([]byte(text[:n]))
		text = text[n:]
		if len(text) > 0 {
			time.Sleep(200 * time.Microsecond) // a separate read on the other side
		}
	}
}

// consume feeds bytes from the driver through the line discipline.
func (s *sess) consume(b []byte) {
	m := s.m
	m.mu.Lock()
	hung, echo := m.hung, m.st.echo
	m.mu.Unlock()
	if hung {
		return
	}
	var out []byte
	flush := func() {
		if len(out) > 0 {
			s.raw(string(out), false)
			out = out[:0]
		}
	}
	for _, c := range b {
		if c == 0 {
			continue // NUL: gsmsendsms ends AT+CMGS=<n> with one
		}
		if s.pdu {
			if echo {
				out = append(out, c)
			}
			switch c {
			case 0x1a: // Ctrl-Z: send
				flush()
				s.finishPDU()
			case 0x1b: // ESC: cancel (TS 27.005 §3.5.1)
				flush()
				s.pdu = false
				s.write("\r\nOK\r\n", false)
			case '\r', '\n', ' ':
			default:
				if len(s.pduBuf) < maxPDUHex {
					s.pduBuf = append(s.pduBuf, c)
				} else {
					s.overflow = true
				}
			}
			continue
		}
		if echo {
			out = append(out, c)
		}
		switch c {
		case '\r':
			flush()
			line, over := string(s.line), s.overflow
			s.line, s.overflow = s.line[:0], false
			if strings.TrimSpace(line) == "" && s.esc {
				// ESC CR outside a prompt: the command line is cancelled
				// and the modem answers OK, as gammu and smsd expect.
				s.esc = false
				s.write("\r\nOK\r\n", false)
				continue
			}
			s.esc = false
			s.handleLine(line, over)
			m.mu.Lock()
			hung, echo = m.hung, m.st.echo
			m.mu.Unlock()
			if hung {
				return
			}
		case '\n':
		case 0x1a, 0x1b:
			s.line, s.overflow = s.line[:0], false
			s.esc = c == 0x1b
		default:
			if len(s.line) < maxLine {
				s.line = append(s.line, c)
			} else {
				s.overflow = true
			}
		}
	}
	flush()
}

// handleLine executes one command line and writes its answer.
func (s *sess) handleLine(line string, overflow bool) {
	line = strings.TrimSpace(line)
	if line == "" {
		return
	}
	m := s.m
	if m.trace != nil {
		m.trace.Debug("sim: at rx", "msisdn", m.msisdn, "line", line)
	}
	m.mu.Lock()
	m.stats.Commands++
	m.mu.Unlock()
	cmds, err := parseCommandLine(line)
	if err != nil || overflow {
		s.final(nil, errPlain)
		return
	}
	var info []string
	noFinal := false
	for _, c := range cmds {
		r := s.exec(c)
		info = append(info, r.info...)
		if r.err != nil {
			s.final(info, r.err)
			return
		}
		noFinal = noFinal || r.noFinal
		if r.prompt {
			if len(info) > 0 {
				s.write("\r\n"+strings.Join(info, "\r\n")+"\r\n", false)
			}
			s.pdu, s.pduBuf, s.overflow = true, s.pduBuf[:0], false
			s.write("\r\n> ", false)
			return
		}
	}
	if noFinal {
		s.write("\r\n"+strings.Join(s.noisy(info), "\r\n")+"\r\n", false)
		return
	}
	s.final(info, nil)
}

// noisy puts the profile's Noise lines and the lines queued by Interleave
// into an answer: after each +CMGR/+CMGL header, else after the first
// line.
func (s *sess) noisy(info []string) []string {
	m := s.m
	m.mu.Lock()
	extra := m.interleave
	noise := m.prof.Noise
	m.mu.Unlock()
	if len(info) == 0 || (len(noise) == 0 && len(extra) == 0) {
		return info
	}
	out := make([]string, 0, len(info)+2)
	put := false
	for i, l := range info {
		out = append(out, l)
		header := strings.HasPrefix(l, "+CMGR:") || strings.HasPrefix(l, "+CMGL:")
		if !header && (i > 0 || put) {
			continue
		}
		if header && len(extra) > 0 {
			m.mu.Lock()
			if len(m.interleave) > 0 {
				out = append(out, m.interleave[0])
				m.interleave = m.interleave[1:]
			}
			extra = m.interleave
			m.mu.Unlock()
		}
		if len(noise) > 0 {
			out = append(out, noise[s.noise%len(noise)])
			s.noise++
		}
		put = true
	}
	return out
}

// final writes information text and the final result code.
func (s *sess) final(info []string, e *atError) {
	var b strings.Builder
	info = s.noisy(info)
	if len(info) > 0 {
		b.WriteString("\r\n")
		b.WriteString(strings.Join(info, "\r\n"))
		b.WriteString("\r\n")
	}
	if e == nil {
		b.WriteString("\r\nOK\r\n")
	} else {
		s.m.mu.Lock()
		s.m.stats.Errors++
		cmee := s.m.st.cmee
		s.m.mu.Unlock()
		b.WriteString("\r\n" + e.format(cmee) + "\r\n")
	}
	s.write(b.String(), false)
}

// sleep waits d on the network clock; false if unplugged meanwhile.
func (s *sess) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	if _, real := s.m.net.clock.(realClock); real {
		// One goroutine hop fewer than AfterFunc: the session goroutine
		// wakes straight from the runtime timer.
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-s.a.done:
			return false
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := s.m.net.clock.AfterFunc(d, cancel)
	select {
	case <-ctx.Done():
		return true
	case <-s.a.done:
		t.Stop()
		return false
	}
}

// route hands offered messages to storage or to the driver, following
// +CNMI (TS 27.005 §3.4.1) and +CSMS acknowledgement rules.
func (s *sess) route() {
	m := s.m
	var texts []string
	var results []func()
	m.mu.Lock()
	if m.att != s.a || m.hung {
		// A hung modem handles nothing: what it was offered goes back to
		// the network at unplug.
		m.mu.Unlock()
		return
	}
	inbox := m.inbox
	m.inbox = nil
	texts = append(texts, m.lateURCs...)
	m.lateURCs = nil
	if m.st.cnmi[0] != 0 {
		texts = append(texts, m.urcBuf...)
		m.urcBuf = nil
	}
	for _, msg := range inbox {
		text, result := m.routeLocked(msg)
		if text != "" {
			texts = append(texts, text)
		}
		if result != nil {
			results = append(results, result)
		}
	}
	m.mu.Unlock()
	for _, t := range texts {
		s.write("\r\n"+t+"\r\n", true)
	}
	for _, r := range results {
		r()
	}
}

// routeLocked routes one offered message (m.mu held) by +CNMI and the
// acknowledgement rules: it returns the line for the driver ("" for none:
// stored silently, buffered in the TA, or waiting for the acknowledgement
// of another) and the network's answer to give once the lock is released
// (nil while the driver's acknowledgement is awaited).
func (m *Modem) routeLocked(msg *mtMessage) (string, func()) {
	mode, mt, ds := m.st.cnmi[0], m.st.cnmi[1], m.st.cnmi[3]
	needAck := (m.st.csms == 1 && m.prof.AckWithCSMS1) || m.prof.AckAlways
	// TS 27.005 §3.4.1 <mt>: 2 routes all but class 2 directly (+CMT),
	// 3 routes class 3 directly; the rest is stored with +CMTI.
	class := messageClass(msg)
	direct := (msg.kind == kindDeliver && ((mt == 2 && class != tpdu.MClass2) ||
		(mt == 3 && class == tpdu.MClass3))) ||
		(msg.kind == kindStatusReport && ds == 1)
	if mode == 0 {
		// buffered in the TA: direct routing is not possible, store.
		direct = false
	}
	if msg.kind == kindStatusReport && ds == 0 {
		m.stats.StatusReports++
		return "", func() { msg.done(true) }
	}
	if direct {
		if needAck && m.ack != nil {
			m.direct = append(m.direct, msg)
			return "", nil
		}
		text := m.directURC(msg)
		m.countLocked(msg)
		if needAck {
			m.ack = msg
			m.ackTimer = m.net.clock.AfterFunc(m.ackTimeout, func() { m.ackExpired(msg) })
			return text, nil
		}
		return text, func() { msg.done(true) }
	}
	if m.prof.NoStorage {
		// Nowhere to keep it: the network tries again later.
		m.stats.Refused++
		return "", func() { msg.done(false) }
	}
	mem := m.st.mem[2]
	x := &stored{stat: 0, pdu: hexOf(m, msg), n: len(msg.tpdu)}
	if msg.kind == kindStatusReport {
		if r := m.prof.ReportStorage; r != "" && m.stores[r] != nil {
			mem = r
		}
		x.emptyStat = m.prof.EmptyReportStat
	}
	idx, ok := m.storeLocked(mem, x)
	if !ok {
		m.stats.Refused++
		return "", func() { msg.done(false) }
	}
	m.countLocked(msg)
	result := func() { msg.done(true) }
	urc := ""
	switch {
	case msg.kind == kindStatusReport && (ds == 2 || ds == 1):
		// ds=2 stores with +CDSI; ds=1 under <mode> 0 cannot route the
		// +CDS directly, so the report is stored and its +CDSI
		// buffered like any other indication (never stored silently).
		urc = "+CDSI: \"" + mem + "\"," + strconv.Itoa(idx)
	case msg.kind == kindDeliver && mt != 0:
		urc = "+CMTI: \"" + mem + "\"," + strconv.Itoa(idx)
	}
	if urc == "" {
		return "", result
	}
	if mode == 0 {
		if len(m.urcBuf) < maxInbox {
			m.urcBuf = append(m.urcBuf, urc)
		} else {
			// The TA buffer overflows: the indication is lost (the
			// message itself is stored).
			m.stats.URCsDropped++
		}
		return "", result
	}
	return urc, result
}

// messageClass returns the TS 23.038 class of a delivered message.
func messageClass(msg *mtMessage) tpdu.MessageClass {
	if msg.sub == nil {
		return tpdu.MClassUnknown
	}
	c, err := msg.sub.t.DCS.Class()
	if err != nil {
		return tpdu.MClassUnknown
	}
	return c
}

func (m *Modem) countLocked(msg *mtMessage) {
	if msg.kind == kindDeliver {
		m.stats.Received++
	} else {
		m.stats.StatusReports++
	}
}

func hexOf(m *Modem, msg *mtMessage) string {
	h, _ := pduModeHex(m.net.smsc, msg.tpdu)
	return h
}

// directURC formats +CMT (PDU mode: +CMT: [<alpha>],<length><CR><LF><pdu>)
// or +CDS (+CDS: <length><CR><LF><pdu>).
func (m *Modem) directURC(msg *mtMessage) string {
	h, n := pduModeHex(m.net.smsc, msg.tpdu)
	n += m.lengthSkew
	if msg.kind == kindStatusReport {
		return "+CDS: " + strconv.Itoa(n) + "\r\n" + h
	}
	return "+CMT: ," + strconv.Itoa(n) + "\r\n" + h
}

// storeLocked puts x in the first free slot of mem; it returns the index
// shown to the TE.
func (m *Modem) storeLocked(mem string, x *stored) (int, bool) {
	st := m.stores[mem]
	for i := range st {
		if st[i] == nil {
			st[i] = x
			return i + m.prof.IndexBase, true
		}
	}
	return 0, false
}

// ackExpired handles a +CMT/+CDS not acknowledged in time. TS 27.005
// §3.4.1: the ME then sets <mt> and <ds> to 0 (routing to the TE off) and
// the network is told the message was not delivered, so the SMSC retries
// and the message ends up in storage.
func (m *Modem) ackExpired(msg *mtMessage) {
	m.mu.Lock()
	if m.ack != msg {
		m.mu.Unlock()
		return
	}
	m.ack = nil
	m.stats.AckTimeouts++
	m.st.cnmi[1], m.st.cnmi[3] = 0, 0
	m.inbox = append(m.direct, m.inbox...)
	m.direct = nil
	m.kickLocked()
	m.mu.Unlock()
	msg.done(false)
}

func (m *Modem) kickLocked() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}
