package sim

import (
	"strconv"
	"strings"
)

// result is the outcome of one command of a command line.
type result struct {
	info    []string
	err     *atError
	prompt  bool // a "> " prompt follows; the PDU comes next
	noFinal bool // the answer ends without a final result code (Profile.CPINNoOK)
}

// unsupported is the final result code of a command the modem does not
// know.
func (s *sess) unsupported() *atError {
	if t := s.m.prof.Unsupported; t != "" {
		return codeErr(t)
	}
	return errPlain
}

// tooMany is the final result code of a surplus parameter: the profile's,
// or e.
func (s *sess) tooMany(e *atError) *atError {
	if t := s.m.prof.TooManyParams; t != "" {
		return codeErr(t)
	}
	return e
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
	if needsSIM[c.name] && !m.st.pinOK && c.op != opTest {
		if smsCmd(c.name) {
			return fail(cmsErr(cmsPINRequired))
		}
		return fail(cmeErr(cmePINRequired))
	}
	args := splitArgs(c.args)
	for _, group := range []func(atCmd, []string) (result, bool){s.execV250, s.execIdentity, s.execTS27007, s.execNetwork, s.execTS27005} {
		if r, handled := group(c, args); handled {
			return r
		}
	}
	return fail(s.unsupported())
}

// execV250 runs the V.250 basic commands (E, V, Q, Z, I, ...); handled is false for a
// command not in the group.
func (s *sess) execV250(c atCmd, args []string) (r result, handled bool) {
	m := s.m
	st := &m.st
	switch c.name {
	case "E":
		v, okv := intArg([]string{c.args}, 0, 0, 0, 1)
		if !okv {
			return fail(errPlain), true
		}
		st.echo = v == 1 || m.echoStuck
		return ok(), true
	case "V", "Q":
		// Only verbose results (V1) and results on (Q0) are simulated.
		v, okv := intArg([]string{c.args}, 0, 0, 0, 1)
		if !okv || (c.name == "V" && v != 1) || (c.name == "Q" && v != 0) {
			if c.name == "V" && c.args == "" {
				return fail(errPlain), true
			}
			if !okv {
				return fail(errPlain), true
			}
		}
		return ok(), true
	case "Z", "&F":
		// Settings back to power-up values; the SIM stays unlocked.
		pinOK := st.pinOK
		m.resetLocked()
		st.pinOK = pinOK
		return ok(), true
	case "&W", "&C", "&D", "X", "L", "M":
		return ok(), true
	case "I":
		return ok(m.prof.Manufacturer, m.prof.Model, "Revision: "+m.prof.Revision), true
	}
	return result{}, false
}

// execIdentity runs the TS 27.007 identification commands; handled is false for a
// command not in the group.
func (s *sess) execIdentity(c atCmd, _ []string) (r result, handled bool) {
	m := s.m
	switch c.name {
	case "+CGMI", "+GMI":
		if c.op == opTest {
			return ok(), true
		}
		return ok(m.pad(m.prof.Manufacturer)), true
	case "+CGMM", "+GMM":
		if c.op == opTest {
			return ok(), true
		}
		return ok(m.pad(m.prof.Model)), true
	case "+CGMR", "+GMR":
		if c.op == opTest {
			return ok(), true
		}
		return ok(m.prof.RevisionPrefix + m.prof.Revision), true
	case "+CGSN", "+GSN":
		if c.op == opTest {
			return ok(), true
		}
		return ok(m.imei), true
	case "+CIMI":
		if c.op == opTest {
			return ok(), true
		}
		return ok(m.imsi), true
	case "+CNUM":
		if c.op == opTest {
			return ok(), true
		}
		return ok("+CNUM: \"\"," + q(m.msisdn) + ",145"), true
	}
	return result{}, false
}

// execTS27007 runs the TS 27.007 settings commands (+CSCS, +CMEE, +CFUN,
// +CPIN); handled is false for a command not in the group.
func (s *sess) execTS27007(c atCmd, args []string) (r result, handled bool) {
	m := s.m
	st := &m.st
	switch c.name {
	case "+CSCS":
		switch c.op {
		case opRead:
			return ok("+CSCS: " + q(st.cscs)), true
		case opTest:
			return ok("+CSCS: (\"IRA\",\"GSM\",\"UCS2\",\"HEX\")"), true
		}
		if len(args) != 1 || (args[0] != "IRA" && args[0] != "GSM" && args[0] != "UCS2" && args[0] != "HEX") {
			return fail(cmeErr(cmeBadParameters)), true
		}
		st.cscs = args[0]
		return ok(), true
	case "+CMEE":
		switch c.op {
		case opRead:
			return ok("+CMEE: " + itoa(st.cmee)), true
		case opTest:
			return ok("+CMEE: (0-2)"), true
		}
		v, okv := intArg(args, 0, 0, 0, 2)
		if !okv {
			return fail(errPlain), true
		}
		st.cmee = v
		return ok(), true
	case "+CFUN":
		switch c.op {
		case opRead:
			return ok("+CFUN: " + itoa(st.cfun)), true
		case opTest:
			return ok("+CFUN: (0,1,4),(0,1)"), true
		}
		v, okv := intArg(args, 0, 1, 0, 4)
		if !okv || v == 2 || v == 3 {
			return fail(cmeErr(cmeBadParameters)), true
		}
		st.cfun = v
		if v == 1 {
			defer m.net.ready(m.msisdn)
		}
		return ok(), true
	case "+CPIN":
		return s.cpin(c, args), true
	}
	return result{}, false
}

// execNetwork runs the TS 27.007 network commands (+CSQ, +CREG/+CGREG/
// +CEREG, +CGATT, +COPS); handled is false for a command not in the group.
func (s *sess) execNetwork(c atCmd, args []string) (r result, handled bool) {
	m := s.m
	st := &m.st
	switch c.name {
	case "+CSQ":
		if c.op == opTest {
			return ok("+CSQ: (0-31,99),(0-7,99)"), true
		}
		rssi := m.rssi
		if st.cfun == 0 || m.detached {
			rssi = 99
		}
		return ok("+CSQ: " + itoa(rssi) + ",99"), true
	case "+CREG", "+CGREG", "+CEREG":
		return s.creg(c, args), true
	case "+CGATT":
		// TS 27.007 §10.1.9: packet domain attach follows registration.
		switch c.op {
		case opRead:
			if m.registeredLocked() {
				return ok("+CGATT: 1"), true
			}
			return ok("+CGATT: 0"), true
		case opTest:
			return ok("+CGATT: (0,1)"), true
		}
		if _, okv := intArg(args, 0, 1, 0, 1); !okv || len(args) != 1 {
			return fail(cmeErr(cmeBadParameters)), true
		}
		return ok(), true
	case "+COPS":
		switch c.op {
		case opRead:
			if m.registeredLocked() {
				return ok("+COPS: 0,0,\"SIMNET\",7"), true
			}
			return ok("+COPS: 0"), true
		case opTest:
			return ok("+COPS: (2,\"SIMNET\",\"SIMNET\",\"00101\",7),,(0-4),(0-2)"), true
		}
		return ok(), true
	}
	return result{}, false
}

// execTS27005 runs the TS 27.005 SMS commands; handled is false for a
// command not in the group.
func (s *sess) execTS27005(c atCmd, args []string) (r result, handled bool) {
	m := s.m
	st := &m.st
	switch c.name {
	case "+CMGF":
		switch c.op {
		case opRead:
			return ok("+CMGF: " + itoa(st.cmgf)), true
		case opTest:
			return ok("+CMGF: (0)"), true
		}
		v, okv := intArg(args, 0, 0, 0, 1)
		if !okv {
			return fail(errPlain), true
		}
		if v != 0 {
			// Text mode is not simulated.
			return fail(cmsErr(cmsNotSupported)), true
		}
		st.cmgf = v
		return ok(), true
	case "+CSMS":
		switch c.op {
		case opRead:
			return ok("+CSMS: " + itoa(st.csms) + ",1,1,1"), true
		case opTest:
			return ok("+CSMS: " + rangeList(m.prof.CSMSModes)), true
		}
		v, okv := intArg(args, 0, 0, 0, 128)
		if !okv || !contains(m.prof.CSMSModes, v) {
			return fail(cmsErr(cmsNotSupported)), true
		}
		st.csms = v
		return ok("+CSMS: 1,1,1"), true
	case "+CPMS":
		return s.cpms(c, args), true
	case "+CNMI":
		return s.cnmi(c, args), true
	case "+CSCA":
		switch c.op {
		case opRead:
			return ok("+CSCA: " + q(st.smsc) + ",145"), true
		case opTest:
			return ok(), true
		}
		if len(args) == 0 || args[0] == "" {
			return fail(cmsErr(cmsNotAllowed)), true
		}
		st.smsc = args[0]
		return ok(), true
	case "+CMGS", "+CMGW":
		return s.cmgsPrompt(c, args), true
	case "+CMGR", "+CMGL", "+CMGD":
		if m.prof.NoStorage {
			return fail(s.unsupported()), true
		}
		switch c.name {
		case "+CMGR":
			return s.cmgr(c, args), true
		case "+CMGL":
			return s.cmgl(c, args), true
		}
		return s.cmgd(c, args), true
	case "+CNMA":
		return s.cnma(c, args), true
	}
	return result{}, false
}

// pad puts the spaces of Profile.PadIdentity around an identity answer.
func (m *Modem) pad(s string) string {
	if m.prof.PadIdentity {
		return " " + s + " "
	}
	return s
}

func (m *Modem) registeredLocked() bool { return !m.detached && m.st.cfun == 1 && m.st.pinOK }

func (s *sess) cpin(c atCmd, args []string) result {
	m := s.m
	st := &m.st
	switch c.op {
	case opTest:
		return ok()
	case opRead:
		state := "SIM PIN"
		switch {
		case st.pinOK:
			state = "READY"
		case m.pinTries >= 3:
			state = "SIM PUK"
		}
		if m.prof.CPINQuoted {
			state = q(state)
		}
		return result{info: []string{"+CPIN: " + state}, noFinal: m.prof.CPINNoOK}
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
		return fail(s.tooMany(cmsErr(cmsNotSupported)))
	}
	for i := range args {
		x, okv := intArg(args, i, v[i], 0, 9)
		if !okv || !contains(lists[i], x) {
			return fail(cmsErr(cmsNotSupported))
		}
		v[i] = x
	}
	st.cnmi = v
	if p.NoStorage && v[1] != 0 {
		// A modem without storage refused what came before its SMS client
		// registered; now it can take messages, as after freeing memory
		// (TS 24.011 RP-SMMA), the SMSC tries again at once.
		defer m.net.ready(m.msisdn)
	}
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
	if msg == nil || (m.st.csms != 1 && !m.prof.AckAlways) {
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
