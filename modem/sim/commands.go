package sim

import (
	"errors"
	"strconv"
	"strings"
)

// result is the outcome of one command of a command line.
type result struct {
	info   []string
	err    *atError
	prompt bool // a "> " prompt follows; the PDU comes next
}

func ok(info ...string) result { return result{info: info} }
func fail(e *atError) result   { return result{err: e} }
func q(s string) string        { return "\"" + s + "\"" }
func itoa(i int) string        { return strconv.Itoa(i) }
func cnmiString(v [5]int) string {
	return itoa(v[0]) + "," + itoa(v[1]) + "," + itoa(v[2]) + "," + itoa(v[3]) + "," + itoa(v[4])
}
func storageList(p Profile) string {
	var b []string
	for _, s := range p.Storages {
		b = append(b, q(s))
	}
	return "(" + strings.Join(b, ",") + ")"
}

// needsSIM lists the commands refused with "SIM PIN required" before the
// PIN is given.
var needsSIM = map[string]bool{
	"+CIMI": true, "+CNUM": true, "+CMGS": true, "+CMGR": true, "+CMGL": true, "+CMGD": true,
	"+CMGW": true, "+CPMS": true, "+CSCA": true, "+CNMA": true,
}

// smsCmd reports whether name is a TS 27.005 command (errors are +CMS).
func smsCmd(name string) bool {
	switch name {
	case "+CSMS", "+CPMS", "+CMGF", "+CSCA", "+CNMI", "+CMGR", "+CMGL", "+CMGD", "+CMGS", "+CMGW", "+CNMA", "+CMSS":
		return true
	}
	return false
}

// exec runs one command. It is called by the session goroutine.
func (s *sess) exec(c atCmd) result {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	st := &m.st
	if needsSIM[c.name] && !st.pinOK && c.op != opTest {
		if smsCmd(c.name) {
			return fail(cmsErr(cmsPINRequired))
		}
		return fail(cmeErr(cmePINRequired))
	}
	args := splitArgs(c.args)
	switch c.name {
	// V.250 basic commands.
	case "E":
		v, okv := intArg([]string{c.args}, 0, 0, 0, 1)
		if !okv {
			return fail(errPlain)
		}
		st.echo = v == 1
		return ok()
	case "V", "Q":
		// Only verbose results (V1) and results on (Q0) are simulated.
		v, okv := intArg([]string{c.args}, 0, 0, 0, 1)
		if !okv || (c.name == "V" && v != 1) || (c.name == "Q" && v != 0) {
			if c.name == "V" && c.args == "" {
				return fail(errPlain)
			}
			if !okv {
				return fail(errPlain)
			}
		}
		return ok()
	case "Z", "&F":
		// Settings back to power-up values; the SIM stays unlocked.
		pinOK := st.pinOK
		m.resetLocked()
		st.pinOK = pinOK
		return ok()
	case "&W", "&C", "&D", "X", "L", "M":
		return ok()
	case "I":
		return ok(m.prof.Manufacturer, m.prof.Model, "Revision: "+m.prof.Revision)
	// TS 27.007 identification.
	case "+CGMI", "+GMI":
		if c.op == opTest {
			return ok()
		}
		return ok(m.prof.Manufacturer)
	case "+CGMM", "+GMM":
		if c.op == opTest {
			return ok()
		}
		return ok(m.prof.Model)
	case "+CGMR", "+GMR":
		if c.op == opTest {
			return ok()
		}
		return ok(m.prof.RevisionPrefix + m.prof.Revision)
	case "+CGSN", "+GSN":
		if c.op == opTest {
			return ok()
		}
		return ok(m.imei)
	case "+CIMI":
		if c.op == opTest {
			return ok()
		}
		return ok(m.imsi)
	case "+CNUM":
		if c.op == opTest {
			return ok()
		}
		return ok("+CNUM: \"\"," + q(m.msisdn) + ",145")
	case "+CSCS":
		switch c.op {
		case opRead:
			return ok("+CSCS: " + q(st.cscs))
		case opTest:
			return ok("+CSCS: (\"IRA\",\"GSM\",\"UCS2\")")
		}
		if len(args) != 1 || (args[0] != "IRA" && args[0] != "GSM" && args[0] != "UCS2") {
			return fail(cmeErr(cmeBadParameters))
		}
		st.cscs = args[0]
		return ok()
	case "+CMEE":
		switch c.op {
		case opRead:
			return ok("+CMEE: " + itoa(st.cmee))
		case opTest:
			return ok("+CMEE: (0-2)")
		}
		v, okv := intArg(args, 0, 0, 0, 2)
		if !okv {
			return fail(errPlain)
		}
		st.cmee = v
		return ok()
	case "+CFUN":
		switch c.op {
		case opRead:
			return ok("+CFUN: " + itoa(st.cfun))
		case opTest:
			return ok("+CFUN: (0,1,4),(0,1)")
		}
		v, okv := intArg(args, 0, 1, 0, 4)
		if !okv || v == 2 || v == 3 {
			return fail(cmeErr(cmeBadParameters))
		}
		st.cfun = v
		if v == 1 {
			defer m.net.ready(m.msisdn)
		}
		return ok()
	case "+CPIN":
		return s.cpin(c, args)
	case "+CSQ":
		if c.op == opTest {
			return ok("+CSQ: (0-31,99),(0-7,99)")
		}
		rssi := m.rssi
		if st.cfun == 0 || m.detached {
			rssi = 99
		}
		return ok("+CSQ: " + itoa(rssi) + ",99")
	case "+CREG", "+CGREG", "+CEREG":
		return s.creg(c, args)
	case "+COPS":
		switch c.op {
		case opRead:
			if m.registeredLocked() {
				return ok("+COPS: 0,0,\"SIMNET\",7")
			}
			return ok("+COPS: 0")
		case opTest:
			return ok("+COPS: (2,\"SIMNET\",\"SIMNET\",\"00101\",7),,(0-4),(0-2)")
		}
		return ok()
	// TS 27.005.
	case "+CMGF":
		switch c.op {
		case opRead:
			return ok("+CMGF: " + itoa(st.cmgf))
		case opTest:
			return ok("+CMGF: (0)")
		}
		v, okv := intArg(args, 0, 0, 0, 1)
		if !okv {
			return fail(errPlain)
		}
		if v != 0 {
			// Text mode is not simulated.
			return fail(cmsErr(cmsNotSupported))
		}
		st.cmgf = v
		return ok()
	case "+CSMS":
		switch c.op {
		case opRead:
			return ok("+CSMS: " + itoa(st.csms) + ",1,1,1")
		case opTest:
			return ok("+CSMS: " + rangeList(m.prof.CSMSModes))
		}
		v, okv := intArg(args, 0, 0, 0, 128)
		if !okv || !contains(m.prof.CSMSModes, v) {
			return fail(cmsErr(cmsNotSupported))
		}
		st.csms = v
		return ok("+CSMS: 1,1,1")
	case "+CPMS":
		return s.cpms(c, args)
	case "+CNMI":
		return s.cnmi(c, args)
	case "+CSCA":
		switch c.op {
		case opRead:
			return ok("+CSCA: " + q(st.smsc) + ",145")
		case opTest:
			return ok()
		}
		if len(args) == 0 || args[0] == "" {
			return fail(cmsErr(cmsNotAllowed))
		}
		st.smsc = args[0]
		return ok()
	case "+CMGS", "+CMGW":
		return s.cmgsPrompt(c, args)
	case "+CMGR":
		return s.cmgr(c, args)
	case "+CMGL":
		return s.cmgl(c, args)
	case "+CMGD":
		return s.cmgd(c, args)
	case "+CNMA":
		return s.cnma(c, args)
	}
	return fail(errPlain)
}

func (m *Modem) registeredLocked() bool { return !m.detached && m.st.cfun == 1 && m.st.pinOK }

func (s *sess) cpin(c atCmd, args []string) result {
	m := s.m
	st := &m.st
	switch c.op {
	case opTest:
		return ok()
	case opRead:
		switch {
		case st.pinOK:
			return ok("+CPIN: READY")
		case m.pinTries >= 3:
			return ok("+CPIN: SIM PUK")
		default:
			return ok("+CPIN: SIM PIN")
		}
	case opSet:
		if st.pinOK {
			return fail(cmeErr(cmeNotAllowed))
		}
		if m.pinTries >= 3 {
			return fail(cmeErr(cmePUKRequired))
		}
		if len(args) == 0 || args[0] != m.pin {
			m.pinTries++
			return fail(cmeErr(cmeWrongPassword))
		}
		st.pinOK = true
		m.pinTries = 0
		defer m.net.ready(m.msisdn)
		// The boot texts that wait for the SIM come after the OK.
		m.lateURCs = append(m.lateURCs, m.prof.ReadyURCs...)
		m.kickLocked()
		return ok()
	}
	return fail(errPlain)
}

func (s *sess) creg(c atCmd, args []string) result {
	m := s.m
	st := &m.st
	p := &st.creg
	switch c.name {
	case "+CGREG":
		p = &st.cgreg
	case "+CEREG":
		p = &st.cereg
	}
	switch c.op {
	case opTest:
		return ok(c.name + ": (0-2)")
	case opRead:
		stat := 0
		if m.registeredLocked() {
			stat = 1
		}
		if *p == 2 && stat == 1 {
			return ok(c.name + ": " + itoa(*p) + "," + itoa(stat) + ",\"00C3\",\"0001A2B3\",7")
		}
		return ok(c.name + ": " + itoa(*p) + "," + itoa(stat))
	}
	v, okv := intArg(args, 0, 0, 0, 2)
	if !okv {
		return fail(cmeErr(cmeBadParameters))
	}
	*p = v
	return ok()
}

func (s *sess) cpms(c atCmd, args []string) result {
	m := s.m
	st := &m.st
	usage := func(mem string) string {
		n := 0
		for _, x := range m.stores[mem] {
			if x != nil {
				n++
			}
		}
		return itoa(n) + "," + itoa(m.capacity)
	}
	switch c.op {
	case opTest:
		l := storageList(m.prof)
		return ok("+CPMS: " + l + "," + l + "," + l)
	case opRead:
		return ok("+CPMS: " + q(st.mem[0]) + "," + usage(st.mem[0]) + "," + q(st.mem[1]) + "," +
			usage(st.mem[1]) + "," + q(st.mem[2]) + "," + usage(st.mem[2]))
	}
	if len(args) == 0 || len(args) > 3 {
		return fail(cmsErr(cmsNotAllowed))
	}
	mem := st.mem
	for i, a := range args {
		if a == "" {
			continue
		}
		if _, okm := m.stores[strings.ToUpper(a)]; !okm {
			return fail(cmsErr(cmsNotSupported))
		}
		mem[i] = strings.ToUpper(a)
	}
	st.mem = mem
	return ok("+CPMS: " + usage(mem[0]) + "," + usage(mem[1]) + "," + usage(mem[2]))
}

func (s *sess) cnmi(c atCmd, args []string) result {
	m := s.m
	st := &m.st
	p := m.prof
	switch c.op {
	case opTest:
		return ok("+CNMI: " + rangeList(p.CNMIModes) + "," + rangeList(p.CNMIMT) + "," +
			rangeList(p.CNMIBM) + "," + rangeList(p.CNMIDS) + "," + rangeList(p.CNMIBFR))
	case opRead:
		return ok("+CNMI: " + cnmiString(st.cnmi))
	case opExec:
		return ok()
	}
	v := st.cnmi
	lists := [][]int{p.CNMIModes, p.CNMIMT, p.CNMIBM, p.CNMIDS, p.CNMIBFR}
	if len(args) > 5 {
		return fail(cmsErr(cmsNotSupported))
	}
	for i := range args {
		x, okv := intArg(args, i, v[i], 0, 9)
		if !okv || !contains(lists[i], x) {
			return fail(cmsErr(cmsNotSupported))
		}
		v[i] = x
	}
	st.cnmi = v
	if v[0] != 0 {
		// TS 27.005 §3.4.1 <bfr>: 0 flushes the buffered codes to the TE,
		// 1 clears them.
		if v[4] == 1 {
			m.urcBuf = nil
		} else if len(m.urcBuf) > 0 {
			m.kickLocked()
		}
	}
	return ok()
}

func (s *sess) cmgsPrompt(c atCmd, args []string) result {
	m := s.m
	st := &m.st
	switch c.op {
	case opTest:
		return ok()
	case opSet:
	default:
		return fail(cmsErr(cmsNotAllowed))
	}
	if st.cmgf != 0 {
		return fail(cmsErr(cmsNotSupported))
	}
	n, okv := intArg(args, 0, -1, 1, 164)
	if !okv || n < 1 {
		return fail(cmsErr(cmsInvalidPDUParam))
	}
	s.pduCmd, s.pduLen, s.pduStat = c.name, n, 2
	if c.name == "+CMGW" && len(args) > 1 {
		stt, okv := intArg(args, 1, 2, 0, 3)
		if !okv {
			return fail(cmsErr(cmsInvalidPDUParam))
		}
		s.pduStat = stt
	}
	return result{prompt: true}
}

// finishPDU completes +CMGS or +CMGW once Ctrl-Z arrives.
func (s *sess) finishPDU() {
	m := s.m
	// The +CMGS time runs from the Ctrl-Z, as on a real modem.
	start := m.net.clock.Now()
	s.pdu = false
	over := s.overflow
	s.overflow = false
	if over {
		s.final(nil, cmsErr(cmsInvalidPDUParam))
		return
	}
	tp, err := parsePDUModeHex(string(s.pduBuf), s.pduLen)
	if err != nil {
		s.final(nil, cmsErr(cmsInvalidPDUParam))
		return
	}
	if s.pduCmd == "+CMGW" {
		m.mu.Lock()
		mem := m.st.mem[1]
		h, n := pduModeHex(m.st.smsc, tp)
		idx, okStore := m.storeLocked(mem, &stored{stat: s.pduStat, pdu: h, n: n})
		m.mu.Unlock()
		if !okStore {
			s.final(nil, cmsErr(cmsMemoryFull))
			return
		}
		s.final([]string{"+CMGW: " + itoa(idx)}, nil)
		return
	}
	m.mu.Lock()
	if m.inject.n > 0 {
		m.inject.n--
		code := m.inject.code
		m.stats.SendFailed++
		m.mu.Unlock()
		s.final(nil, cmsErr(code))
		return
	}
	if !m.registeredLocked() {
		m.stats.SendFailed++
		m.mu.Unlock()
		s.final(nil, cmsErr(cmsNoNetwork))
		return
	}
	if len(tp) < 2 || tp[0]&0x03 != 0x01 {
		m.stats.SendFailed++
		m.mu.Unlock()
		s.final(nil, cmsErr(cmsInvalidPDUParam))
		return
	}
	// The ME assigns TP-MR (TS 23.040 §9.2.3.6) and reports it.
	mr := m.mr
	m.mr++
	tp[1] = mr
	d := m.sendTime
	m.mu.Unlock()
	if !s.sleep(d - m.net.clock.Now().Sub(start)) {
		return
	}
	seg, err := m.net.submitInfo(m.msisdn, tp)
	m.mu.Lock()
	if err != nil {
		m.stats.SendFailed++
	} else {
		m.stats.Sent++
		if seg {
			m.stats.Segments++
		}
	}
	m.mu.Unlock()
	switch {
	case err == nil:
		s.final([]string{"+CMGS: " + itoa(int(mr))}, nil)
	case errors.Is(err, ErrCongestion):
		s.final(nil, cmsErr(cmsCongestion))
	case errors.Is(err, ErrBadPDU):
		s.final(nil, cmsErr(cmsInvalidPDUParam))
	default:
		s.final(nil, cmsErr(cmsUnknown))
	}
}

// slot returns the storage entry named by a TE index in mem1.
func (m *Modem) slot(arg string) (mem string, i int, okIdx bool) {
	mem = m.st.mem[0]
	idx, err := strconv.Atoi(arg)
	i = idx - m.prof.IndexBase
	if err != nil || i < 0 || i >= len(m.stores[mem]) {
		return mem, 0, false
	}
	return mem, i, true
}

func (s *sess) cmgr(c atCmd, args []string) result {
	m := s.m
	if c.op == opTest {
		return ok()
	}
	if c.op != opSet || len(args) != 1 {
		return fail(cmsErr(cmsNotAllowed))
	}
	mem, i, okIdx := m.slot(args[0])
	if !okIdx {
		return fail(cmsErr(cmsInvalidIndex))
	}
	x := m.stores[mem][i]
	if x == nil {
		// An empty slot: most modems answer a bare OK.
		return ok()
	}
	info := []string{"+CMGR: " + itoa(x.stat) + ",," + itoa(x.n), x.pdu}
	if x.stat == 0 {
		x.stat = 1
	}
	return ok(info...)
}

func (s *sess) cmgl(c atCmd, args []string) result {
	m := s.m
	if c.op == opTest {
		return ok("+CMGL: (0-4)")
	}
	want, okv := intArg(args, 0, 0, 0, 4)
	if !okv || c.op == opRead {
		return fail(cmsErr(cmsNotAllowed))
	}
	mem := m.st.mem[0]
	var info []string
	for i, x := range m.stores[mem] {
		if x == nil || (want != 4 && x.stat != want) {
			continue
		}
		info = append(info, "+CMGL: "+itoa(i+m.prof.IndexBase)+","+itoa(x.stat)+",,"+itoa(x.n), x.pdu)
		if x.stat == 0 {
			x.stat = 1
		}
	}
	return ok(info...)
}

func (s *sess) cmgd(c atCmd, args []string) result {
	m := s.m
	if c.op == opTest {
		var idx []string
		for i, x := range m.stores[m.st.mem[0]] {
			if x != nil {
				idx = append(idx, itoa(i+m.prof.IndexBase))
			}
		}
		return ok("+CMGD: (" + strings.Join(idx, ",") + "),(0-4)")
	}
	if c.op != opSet || len(args) == 0 {
		return fail(cmsErr(cmsNotAllowed))
	}
	flag, okv := intArg(args, 1, 0, 0, 4)
	if !okv {
		return fail(cmsErr(cmsNotAllowed))
	}
	mem := m.st.mem[0]
	st := m.stores[mem]
	freed := false
	if flag == 0 {
		_, i, okIdx := m.slot(args[0])
		if !okIdx {
			return fail(cmsErr(cmsInvalidIndex))
		}
		freed = st[i] != nil
		st[i] = nil
	} else {
		// TS 27.005 §3.5.4 <delflag>: 1 read, 2 read+sent, 3 read+sent+
		// unsent, 4 all.
		for i, x := range st {
			if x == nil {
				continue
			}
			if flag == 4 || x.stat == 1 || (flag >= 2 && x.stat == 3) || (flag >= 3 && x.stat == 2) {
				st[i] = nil
				freed = true
			}
		}
	}
	if freed {
		// Memory available again: the ME tells the network (TS 24.011
		// RP-SMMA) and the SMSC retries what it holds.
		defer m.net.ready(m.msisdn)
	}
	return ok()
}

func (s *sess) cnma(c atCmd, args []string) result {
	m := s.m
	if c.op == opTest {
		return ok("+CNMA: (0-2)")
	}
	if c.op == opRead {
		return fail(cmsErr(cmsNotAllowed))
	}
	n, okv := intArg(args, 0, 0, 0, 2)
	if !okv {
		return fail(cmsErr(cmsNotAllowed))
	}
	msg := m.ack
	if msg == nil || m.st.csms != 1 {
		return fail(cmsErr(cmsNoCNMAExpected))
	}
	m.ack = nil
	if m.ackTimer != nil {
		m.ackTimer.Stop()
	}
	if len(m.direct) > 0 {
		m.inbox = append(m.direct, m.inbox...)
		m.direct = nil
		m.kickLocked()
	}
	// n = 2 is RP-ERROR: the network will retry.
	defer msg.done(n != 2)
	return ok()
}
