package sim

import (
	"errors"
	"time"
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
		s.writePDU(tp)
		return
	}
	s.sendPDU(tp, start)
}

// writePDU completes +CMGW: tp is stored in the write memory with the
// status the command gave.
func (s *sess) writePDU(tp []byte) {
	m := s.m
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
}

// sendPDU completes +CMGS: the SMS-SUBMIT tp is given its TP-MR, held for
// the modem's send time counted from start, then handed to the network.
func (s *sess) sendPDU(tp []byte, start time.Time) {
	m := s.m
	mr, d, refused := m.acceptSubmit(tp)
	if refused != nil {
		s.final(nil, refused)
		return
	}
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
	s.final(submitResult(mr, err))
}

// acceptSubmit refuses tp with the +CMS ERROR a modem gives (an injected
// failure, no network, not an SMS-SUBMIT), counting a failed send, or
// assigns its TP-MR (TS 23.040 §9.2.3.6) and returns it with the send
// time.
func (m *Modem) acceptSubmit(tp []byte) (byte, time.Duration, *atError) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inject.n > 0 {
		m.inject.n--
		m.stats.SendFailed++
		return 0, 0, cmsErr(m.inject.code)
	}
	if !m.registeredLocked() {
		m.stats.SendFailed++
		return 0, 0, cmsErr(cmsNoNetwork)
	}
	if len(tp) < 2 || tp[0]&0x03 != 0x01 {
		m.stats.SendFailed++
		return 0, 0, cmsErr(cmsInvalidPDUParam)
	}
	mr := m.mr
	m.mr++
	tp[1] = mr
	return mr, m.sendTime, nil
}

// submitResult is the final result of +CMGS for the network's answer err
// to the message given TP-MR mr.
func submitResult(mr byte, err error) ([]string, *atError) {
	switch {
	case err == nil:
		return []string{"+CMGS: " + itoa(int(mr))}, nil
	case errors.Is(err, ErrCongestion):
		return nil, cmsErr(cmsCongestion)
	case errors.Is(err, ErrBadPDU):
		return nil, cmsErr(cmsInvalidPDUParam)
	default:
		return nil, cmsErr(cmsUnknown)
	}
}
