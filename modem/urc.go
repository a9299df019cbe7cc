package modem

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// queueURC is the engine's unsolicited-line handler; it runs on the
// engine's reader goroutine and hands the lines to the URC worker.
func (m *Modem) queueURC(gen uint64, lines []string) {
	select {
	case m.urcs <- urc{gen: gen, lines: lines}:
		m.metrics.Queue(m.Name(), "urc", len(m.urcs))
	case <-m.closing:
	default:
		// A dropped +CMTI/+CDSI is found again by the next sweep; a
		// dropped +CMT is not acknowledged, so the network redelivers it.
		m.st.dropURC.Add(1)
		m.emit(EventDropped, nil, "URC queue full: "+clip(lines[0]))
	}
}

func (m *Modem) urcWorker() {
	defer m.wg.Done()
	for {
		select {
		case <-m.closing:
			return
		case u := <-m.urcs:
			m.handleURC(u)
		case <-m.reread:
			m.rereadReleased()
		}
	}
}

// awaitLive waits until the session of generation gen is live (true), or
// has failed or been replaced, or the modem closes (false). A URC that
// came while its session was being set up (a +CMT right after +CNMI) is
// handled once the session can carry the +CNMA or +CMGR it needs.
func (m *Modem) awaitLive(gen uint64) bool {
	for {
		m.mu.Lock()
		switch {
		case m.sess != nil && m.sess.gen == gen:
			m.mu.Unlock()
			return true
		case m.failedGen >= gen || m.gen != gen || m.liveCh == nil:
			m.mu.Unlock()
			return false
		}
		ch := m.liveCh
		m.mu.Unlock()
		select {
		case <-ch:
		case <-m.closing:
			return false
		}
	}
}

func (m *Modem) handleURC(u urc) {
	ctx := m.life
	if len(u.lines) == 0 {
		return
	}
	if !m.awaitLive(u.gen) {
		// Its session is gone: a +CMT not acknowledged comes again from
		// the network, a stored message is found by the next sweep.
		return
	}
	head := strings.TrimSpace(u.lines[0])
	p := m.Profile()
	switch {
	case strings.HasPrefix(head, "+CMTI:"), strings.HasPrefix(head, "+CDSI:"):
		var si StoredIndication
		var err error
		if strings.HasPrefix(head, "+CMTI:") {
			si, err = ParseCMTI(head)
		} else {
			si, err = ParseCDSI(head)
		}
		if err != nil {
			// Nothing is lost: the message is stored and the next sweep
			// finds it.
			m.emit(EventBadInput, err, "URC skipped")
			return
		}
		m.noteStorage(si.Storage, p)
		if err := m.readStored(ctx, si.Storage, si.Index); err != nil && !errors.Is(err, ErrClosed) {
			m.log.Warn("modem: read of stored message failed; the next sweep retries", "modem", m.Name(), "mem", si.Storage, "index", si.Index, "err", err)
		}
	case strings.HasPrefix(head, "+CMT:"), strings.HasPrefix(head, "+CDS:"):
		m.handleDirect(ctx, u.lines)
	case matchAny(head, p.RearmOn):
		m.log.Warn("modem: message routing dropped by the modem; sending +CNMI again", "modem", m.Name(), "line", head)
		if s, err := m.current(); err == nil {
			if _, err := m.exec(ctx, s, "+CNMI="+p.CNMI, p.CommandTimeout); err != nil {
				m.log.Warn("modem: +CNMI after "+head+" failed", "modem", m.Name(), "err", err)
			}
		}
	default:
		// Other URCs (signal, registration, vendor noise) and stray lines
		// (late answers of abandoned commands) need nothing.
		if m.trace {
			m.log.Debug("modem: unsolicited line", "modem", m.Name(), "lines", u.lines)
		}
	}
}

// noteStorage remembers a memory besides the preferred one that may hold
// messages, so that sweeps list it too (at most 8).
func (m *Modem) noteStorage(mem string, p Profile) {
	if mem == "" || mem == p.Storage || p.NoStorage {
		return
	}
	m.mu.Lock()
	if len(m.stores) < 8 {
		m.stores[mem] = true
	}
	m.mu.Unlock()
}

func matchAny(line string, list []string) bool {
	for _, l := range list {
		if l != "" && line == l {
			return true
		}
	}
	return false
}

// handleDirect takes a +CMT or +CDS with its PDU line. A message that
// cannot be delivered goes to the quarantine; under an acknowledged
// service it is acknowledged only once quarantined, otherwise refused with
// +CNMA=2 so that the network delivers it again.
func (m *Modem) handleDirect(ctx context.Context, lines []string) {
	head := strings.TrimSpace(lines[0])
	var n int
	var err error
	if strings.HasPrefix(head, "+CMT:") {
		n, err = ParseCMT(head)
	} else {
		n, err = ParseCDS(head)
	}
	var pl PDULine
	if err == nil && len(lines) < 2 {
		err = fmt.Errorf("%w: %s without its PDU line", ErrBadResponse, clip(head))
	}
	if err == nil {
		pl, err = DecodePDULine(lines[1], n)
	}
	if err == nil && pl.Kind == KindOther {
		err = fmt.Errorf("%w: a direct delivery holding TP-MTI %d, neither SMS-DELIVER nor SMS-STATUS-REPORT", ErrBadPDU, pl.TPDU[0]&3)
	}
	p := m.Profile()
	if err != nil {
		m.emit(EventBadInput, err, "direct delivery: "+clip(head))
		if len(lines) < 2 && p.NeedsCNMA() {
			// The PDU line never came: the network delivers it again.
			_ = m.cnma(ctx, "+CNMA=2")
			return
		}
		qerr := m.quarantine(ctx, "", -1, lines, err.Error())
		switch {
		case qerr == nil && p.NeedsCNMA():
			if aerr := m.cnma(ctx, p.ackCommand()); aerr != nil {
				m.log.Warn("modem: acknowledging a quarantined direct delivery failed", "modem", m.Name(), "err", aerr)
			}
		case qerr != nil && p.NeedsCNMA():
			m.log.Warn("modem: direct delivery not quarantined; refused so that the network delivers it again", "modem", m.Name(), "err", qerr)
			_ = m.cnma(ctx, "+CNMA=2")
		case qerr != nil:
			// Phase 2 (+CSMS=0): the network has let go of it. The log is
			// all that is left.
			m.log.Error("modem: undeliverable direct message could not be quarantined", "modem", m.Name(), "lines", lines, "reason", err, "err", qerr)
		}
		return
	}
	if pl.Mismatch {
		m.emit(EventLengthMismatch, nil, fmt.Sprintf("%s: TPDU of %d octets", clip(head), len(pl.TPDU)))
	}
	m.deliver(ctx, &Received{Kind: pl.Kind, TPDU: pl.TPDU, SMSC: pl.SMSC, Index: -1})
}
