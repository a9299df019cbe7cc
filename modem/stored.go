package modem

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/m2mbearer/m2mbearer/modem/at"
)

// This file reads messages stored on the modem (+CMGR, +CMGL) and decides
// what becomes of each: delivered to the consumer (deleted after its Ack),
// left on the modem (not ours, or not readable now), or quarantined and
// then deleted. A stored message leaves the modem only after it is in the
// consumer's durable store or in the Quarantine.

// verdict is what becomes of a stored message.
type verdict int

const (
	vEmpty      verdict = iota // the slot is empty
	vDeliver                   // hand it to the consumer
	vLeave                     // not ours (STO UNSENT/SENT, an unknown-stat SMS-SUBMIT)
	vBad                       // cannot be delivered: quarantine, then delete
	vUnreadable                // no PDU line to keep: leave it and report
)

// storedMsg is what one +CMGR answer or +CMGL entry says about a slot.
type storedMsg struct {
	stat   MessageStat
	pdu    PDULine
	lines  []string // the header and PDU line as the modem sent them
	reason error    // for vBad and vUnreadable
	v      verdict
}

// slotAnswer is what one +CMGR answer or +CMGL entry holds: its lines as
// the modem sent them, the header's <stat> and <length> (hdrErr when the
// header did not parse) and the PDU line (hasPDU false: none).
type slotAnswer struct {
	lines   []string
	stat    MessageStat
	length  int
	hdrErr  error
	pduLine string
	hasPDU  bool
}

// judge decides on a slot from its header (parsed or not) and PDU line.
func judge(a slotAnswer) storedMsg {
	lines, stat, length, hdrErr, pduLine, hasPDU := a.lines, a.stat, a.length, a.hdrErr, a.pduLine, a.hasPDU
	sm := storedMsg{stat: stat, lines: lines}
	switch {
	case len(lines) > 0 && textMode(lines[0]):
		// The modem answers in text mode (it lost +CMGF=0 in a reset the
		// driver did not see): read it again in PDU mode, delete nothing.
		sm.v, sm.reason = vUnreadable, fmt.Errorf("%w: text-mode answer %q", ErrBadResponse, clip(lines[0]))
		return sm
	case hdrErr != nil && !hasPDU:
		sm.v, sm.reason = vUnreadable, hdrErr
		return sm
	case hdrErr != nil:
		sm.v, sm.reason = vBad, hdrErr
		return sm
	case !hasPDU:
		sm.v, sm.reason = vUnreadable, fmt.Errorf("%w: header without a PDU line", ErrBadResponse)
		return sm
	}
	if stat == StatStoUnsent || stat == StatStoSent {
		sm.v = vLeave // one of ours waiting to be sent: not ours to take
		return sm
	}
	pl, err := DecodePDULine(pduLine, length)
	if err != nil {
		sm.v, sm.reason = vBad, err
		return sm
	}
	sm.pdu = pl
	switch {
	case pl.Kind != KindOther:
		sm.v = vDeliver
	case stat == StatUnknown:
		sm.v = vLeave // an SMS-SUBMIT without <stat>: a draft, not ours
	default:
		sm.v, sm.reason = vBad, fmt.Errorf("%w: a received slot (<stat> %s) holds TP-MTI %d, neither SMS-DELIVER nor SMS-STATUS-REPORT", ErrBadPDU, stat, pl.TPDU[0]&3)
	}
	return sm
}

// pduOf picks the PDU line among the lines that follow a header: the first
// hexadecimal one, else the first one (garbage in the PDU's place, which
// judge refuses and the quarantine keeps).
func pduOf(after []string) (string, bool) {
	for _, l := range after {
		if at.IsHex(l) {
			return l, true
		}
	}
	if len(after) > 0 {
		return after[0], true
	}
	return "", false
}

// judgeCMGR reads a +CMGR answer: the header and its PDU line (the engine
// has routed URCs out of the answer).
func judgeCMGR(info []string) storedMsg {
	hi := -1
	for i, l := range info {
		if strings.HasPrefix(l, "+CMGR:") {
			hi = i
			break
		}
	}
	if hi < 0 {
		if len(info) == 0 {
			return storedMsg{v: vEmpty}
		}
		pdu, _ := pduOf(info)
		return judge(slotAnswer{lines: info, stat: StatUnknown, length: -1, pduLine: pdu, hasPDU: at.IsHex(pdu),
			hdrErr: fmt.Errorf("%w: +CMGR answer without a header: %q", ErrBadResponse, clip(strings.Join(info, "|")))})
	}
	h, err := ParseCMGR(info[hi])
	pdu, has := pduOf(info[hi+1:])
	lines := append([]string(nil), info[hi:]...)
	return judge(slotAnswer{lines, h.Stat, h.Length, err, pdu, has})
}

// readStored reads one stored message with +CMGR and acts on it.
func (m *Modem) readStored(ctx context.Context, mem string, idx int) error {
	if !m.claim(mem, idx) {
		return nil
	}
	sm, err := m.cmgr(ctx, mem, idx)
	if err != nil {
		m.unpend(mem, idx)
		return err
	}
	return m.act(ctx, mem, idx, sm)
}

// cmgr reads slot idx of mem.
func (m *Modem) cmgr(ctx context.Context, mem string, idx int) (storedMsg, error) {
	s, err := m.current()
	if err != nil {
		return storedMsg{}, err
	}
	var info []string
	err = m.withMem(ctx, s, mem, func() error {
		var e error
		info, e = m.exec(ctx, s, fmt.Sprintf("+CMGR=%d", idx), m.Profile().CommandTimeout)
		return e
	})
	if err != nil {
		var cms *CMSError
		if errors.As(err, &cms) && cms.Code == 321 {
			return storedMsg{v: vEmpty}, nil // empty slot: already read and deleted
		}
		return storedMsg{}, err
	}
	return judgeCMGR(info), nil
}

// act carries out the verdict on a claimed slot. A message that looks bad
// is read again with +CMGR, and quarantined only when that read shows the
// same PDU line.
func (m *Modem) act(ctx context.Context, mem string, idx int, sm storedMsg) error {
	switch sm.v {
	case vEmpty, vLeave:
		m.unpend(mem, idx)
		return nil
	case vDeliver:
		if sm.pdu.Mismatch {
			m.emit(EventLengthMismatch, nil, fmt.Sprintf("%s/%d: <length> %d, TPDU of %d octets", mem, idx, sm.pdu.Length, len(sm.pdu.TPDU)))
		}
		m.clearStuck(mem, idx)
		r := &Received{Kind: sm.pdu.Kind, TPDU: sm.pdu.TPDU, SMSC: sm.pdu.SMSC, Storage: mem, Index: idx}
		if !m.deliver(ctx, r) {
			m.unpend(mem, idx)
			return ctx.Err()
		}
		return nil
	case vUnreadable:
		m.unpend(mem, idx)
		m.reportStuck(mem, idx, sm, sm.reason)
		m.resetTextMode(ctx, sm.lines)
		return sm.reason
	}
	// vBad: make sure the modem really stores this (a second read gives
	// the same PDU line), so that a garbled transfer never has a message
	// deleted.
	again, err := m.cmgr(ctx, mem, idx)
	if err != nil {
		m.unpend(mem, idx)
		return err
	}
	if again.v != vBad || !samePDU(again.lines, sm.lines) {
		if again.v == vBad {
			m.unpend(mem, idx)
			m.log.Warn("modem: stored message reads differently each time; left for the next sweep", "modem", m.Name(), "mem", mem, "index", idx)
			return again.reason
		}
		return m.act(ctx, mem, idx, again)
	}
	return m.quarantineStored(ctx, mem, idx, again)
}

// samePDU reports whether two reads of a slot show the same PDU line (the
// header may differ: the first read turns REC UNREAD into REC READ).
func samePDU(a, b []string) bool {
	pa, oka := pduOf(a[min(1, len(a)):])
	pb, okb := pduOf(b[min(1, len(b)):])
	return oka && okb && pa == pb
}

// quarantineStored puts a bad stored message in the quarantine and
// deletes it from the modem; if it cannot be quarantined it stays.
func (m *Modem) quarantineStored(ctx context.Context, mem string, idx int, sm storedMsg) error {
	if err := m.quarantine(ctx, mem, idx, sm.lines, sm.reason.Error()); err != nil {
		m.unpend(mem, idx)
		m.reportStuck(mem, idx, sm, fmt.Errorf("%w; not quarantined: %w", sm.reason, err))
		return err
	}
	m.clearStuck(mem, idx)
	err := m.deleteStored(ctx, mem, idx)
	m.unpend(mem, idx)
	if err != nil {
		// In the quarantine already; the next sweep finds it again and
		// quarantines it a second time before deleting it.
		return fmt.Errorf("modem: deleting quarantined %s/%d: %w", mem, idx, err)
	}
	return nil
}

// quarantine puts the lines of an undeliverable message in the quarantine.
func (m *Modem) quarantine(ctx context.Context, mem string, idx int, lines []string, reason string) error {
	if m.quar == nil {
		return errNoQuarantine
	}
	q := Quarantined{Time: time.Now(), Modem: m.Name(), Storage: mem, Index: idx, Lines: quarantineLines(lines), Reason: reason}
	id, err := m.quar.Put(ctx, q)
	if err != nil {
		return fmt.Errorf("modem: quarantine: %w", err)
	}
	m.emit(EventQuarantined, nil, fmt.Sprintf("#%d %s/%d: %s", id, mem, idx, clip(reason)))
	return nil
}

// maxStuck bounds the slots remembered as stuck.
const maxStuck = 256

// reportStuck emits EventBadInput for a slot that stays on the modem,
// once per slot and content.
func (m *Modem) reportStuck(mem string, idx int, sm storedMsg, err error) {
	k := storeKey{mem, idx}
	sig := strings.Join(sm.lines, "|")
	m.mu.Lock()
	seen := m.stuck[k] == sig
	if !seen && len(m.stuck) < maxStuck {
		m.stuck[k] = sig
	}
	m.mu.Unlock()
	if !seen {
		m.emit(EventBadInput, err, fmt.Sprintf("stored message %s/%d left on the modem", mem, idx))
	}
}

func (m *Modem) clearStuck(mem string, idx int) {
	m.mu.Lock()
	delete(m.stuck, storeKey{mem, idx})
	m.mu.Unlock()
}

// resetTextMode sends +CMGF=0 again when an answer was in text mode (a
// quoted "REC UNREAD" <stat>): the modem lost the PDU mode (a reset the
// driver did not see).
func (m *Modem) resetTextMode(ctx context.Context, lines []string) {
	if len(lines) == 0 || !textMode(lines[0]) {
		return
	}
	if s, err := m.current(); err == nil {
		if _, err := m.exec(ctx, s, "+CMGF=0", m.Profile().CommandTimeout); err != nil {
			m.log.Warn("modem: +CMGF=0 after a text-mode answer failed", "modem", m.Name(), "err", err)
		}
	}
}

// textMode reports whether a +CMGR/+CMGL header is in text mode (a quoted
// <stat> such as "REC UNREAD").
func textMode(header string) bool {
	return strings.Contains(header, `"REC `) || strings.Contains(header, `"STO `)
}

// Sweep lists every message stored in the preferred storage (and in other
// storages seen in +CMTI/+CDSI) with +CMGL and acts on those not already
// handed out. It runs after every open and from the health poll. Like all
// deliveries it waits while the inbox is full, so a consumer must not call
// it from the goroutine that drains Received without a deadline in ctx.
func (m *Modem) Sweep(ctx context.Context) error {
	p := m.Profile()
	if p.NoStorage {
		return nil
	}
	mems := []string{p.Storage}
	m.mu.Lock()
	for k := range m.stores {
		mems = append(mems, k)
	}
	m.mu.Unlock()
	var errs []error
	for _, mem := range mems {
		if err := m.sweepMem(ctx, mem); err != nil {
			errs = append(errs, fmt.Errorf("sweep %s: %w", mem, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Modem) sweepMem(ctx context.Context, mem string) error {
	s, err := m.current()
	if err != nil {
		return err
	}
	// The entries are claimed under memMu, right after +CMGL, and handled
	// after it is released. An Ack deletes under memMu and releases its
	// claim after that, so a slot listed here cannot be acknowledged,
	// deleted and filled with a newer message before it is claimed: the
	// listed PDU is still the one in the slot. (Claiming after memMu was
	// released let an Ack and a new message slip in between; the old PDU
	// was then delivered again with the slot's index, and acknowledging
	// that duplicate deleted the new message unread.)
	var claimed []cmglEntry
	err = m.withMem(ctx, s, mem, func() error {
		info, e := m.exec(ctx, s, "+CMGL=4", m.Profile().CommandTimeout)
		if e != nil {
			return e
		}
		for _, ent := range parseCMGLList(info) {
			if ent.idx < 0 {
				// No index to address the slot with: nothing can be done
				// but report it; the message stays.
				m.emit(EventBadInput, ent.sm.reason, "+CMGL entry skipped")
				continue
			}
			if m.claim(mem, ent.idx) {
				claimed = append(claimed, ent)
			}
		}
		return nil
	})
	if err != nil {
		for _, e := range claimed {
			m.unpend(mem, e.idx)
		}
		return err
	}
	for i, e := range claimed {
		if err := m.act(ctx, mem, e.idx, e.sm); err != nil && ctx.Err() != nil {
			for _, rest := range claimed[i+1:] {
				m.unpend(mem, rest.idx)
			}
			return err
		}
	}
	return nil
}

type cmglEntry struct {
	idx int // -1 when the header is unreadable
	sm  storedMsg
}

// parseCMGLList pairs +CMGL header lines with the PDU line that follows
// each (the engine has routed URCs out of the answer).
func parseCMGLList(info []string) []cmglEntry {
	var out []cmglEntry
	for i := 0; i < len(info); i++ {
		l := strings.TrimSpace(info[i])
		if !strings.HasPrefix(l, "+CMGL:") {
			continue
		}
		j := i + 1
		for j < len(info) && !strings.HasPrefix(info[j], "+CMGL:") {
			j++
		}
		h, err := ParseCMGL(l)
		idx := h.Index
		if err != nil {
			idx = -1
		}
		pdu, has := pduOf(info[i+1 : j])
		lines := append([]string(nil), info[i:j]...)
		out = append(out, cmglEntry{idx: idx, sm: judge(slotAnswer{lines, h.Stat, h.Length, err, pdu, has})})
		i = j - 1
	}
	return out
}
