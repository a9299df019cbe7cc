package sim

import (
	"errors"
)

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
