package smpp_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp"
	"github.com/m2mbearer/m2mbearer/internal/smppwire"
)

// rawSMSC is a hand-driven SMSC: the test writes whatever PDUs it likes to
// a bound link and reads what the link answers.
type rawSMSC struct {
	t    *testing.T
	ln   net.Listener
	conn chan net.Conn
}

func newRawSMSC(t *testing.T) *rawSMSC {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rawSMSC{t: t, ln: ln, conn: make(chan net.Conn, 4)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.conn <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return r
}

// accept takes the next connection and answers its bind with ESME_ROK.
func (r *rawSMSC) accept() (net.Conn, *bufio.Reader) {
	r.t.Helper()
	var c net.Conn
	select {
	case c = <-r.conn:
	case <-time.After(10 * time.Second):
		r.t.Fatal("link did not connect")
	}
	r.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	p, err := smppwire.ReadPDU(br, 0)
	if err != nil || p.ID != smppwire.BindTransceiver {
		r.t.Fatalf("bind: %+v %v", p.Header, err)
	}
	c.Write(smppwire.Marshal(smppwire.BindTransceiverResp, 0, p.Sequence, []byte("raw\x00")))
	return c, br
}

func dialRaw(t *testing.T, r *rawSMSC) *smpp.Link {
	l, err := smpp.Dial(smpp.Config{Name: "raw", Addr: r.ln.Addr().String(), SystemID: "gw", Password: "pw",
		Sources: []string{serverNum}, StateDir: t.TempDir(), ResponseTimeout: 500 * time.Millisecond,
		ReconnectMin: 10 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// readUntil reads PDUs until one with id arrives.
func readUntil(t *testing.T, br *bufio.Reader, id smppwire.CommandID) smppwire.PDU {
	t.Helper()
	for {
		p, err := smppwire.ReadPDU(br, 0)
		if err != nil {
			t.Fatalf("waiting for %s: %v", id, err)
		}
		if p.ID == id {
			return p
		}
	}
}

// TestHostileSMSC: every abuse of the link's input gets a clear answer
// and a counter, never a panic or a silent drop.
func TestHostileSMSC(t *testing.T) {
	sm := func(s *smppwire.SM) []byte {
		b, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name    string
		pdu     []byte
		wantID  smppwire.CommandID // the link's answer
		wantSt  smppwire.Status
		counter func(smpp.Stats) uint64
		closeIt bool
	}{
		{"unknown command", smppwire.Marshal(0x00000077, 0, 9, nil), smppwire.GenericNack, smppwire.RInvCmdID,
			func(s smpp.Stats) uint64 { return s.Malformed }, false},
		{"truncated deliver_sm", smppwire.Marshal(smppwire.DeliverSM, 0, 10, []byte{0, 1, 1}), smppwire.DeliverSMResp, smppwire.RXPAppn,
			func(s smpp.Stats) uint64 { return s.Malformed }, false},
		{"deliver_sm from a non-number", smppwire.Marshal(smppwire.DeliverSM, 0, 11, sm(&smppwire.SM{SourceTON: 1, SourceAddr: "12ab",
			DestTON: 1, DestAddr: serverNum[1:], DataCoding: 4, ShortMessage: []byte{1}})), smppwire.DeliverSMResp, smppwire.RXPAppn,
			func(s smpp.Stats) uint64 { return s.Malformed }, false},
		{"bad UDH", smppwire.Marshal(smppwire.DeliverSM, 0, 12, sm(&smppwire.SM{SourceTON: 1, SourceAddr: "1555",
			DestTON: 1, DestAddr: serverNum[1:], ESMClass: smppwire.ESMUDHI, DataCoding: 4, ShortMessage: []byte{40, 0}})), smppwire.DeliverSMResp, smppwire.RXPAppn,
			func(s smpp.Stats) uint64 { return s.Malformed }, false},
		{"receipt for nothing", smppwire.Marshal(smppwire.DeliverSM, 0, 13, sm(&smppwire.SM{ESMClass: smppwire.ESMDeliveryReceipt,
			ShortMessage: []byte("id:77 sub:001 dlvrd:001 submit date:2612060830 done date:2612060830 stat:DELIVRD err:000 text:")})),
			smppwire.DeliverSMResp, smppwire.ROK, func(s smpp.Stats) uint64 { return s.ReceiptsUnknown }, false},
		{"unreadable receipt", smppwire.Marshal(smppwire.DeliverSM, 0, 14, sm(&smppwire.SM{ESMClass: smppwire.ESMDeliveryReceipt,
			ShortMessage: []byte("garbage")})), smppwire.DeliverSMResp, smppwire.ROK, func(s smpp.Stats) uint64 { return s.ReceiptsUnreadable }, false},
		{"response to nothing", smppwire.Marshal(smppwire.SubmitSMResp, 0, 999, []byte("x\x00")), 0, 0,
			func(s smpp.Stats) uint64 { return s.LateResponses }, false},
		{"outbind on a bound session", smppwire.Marshal(smppwire.Outbind, 0, 15, []byte("smsc\x00secret\x00")), smppwire.GenericNack, smppwire.RInvBndSts,
			func(s smpp.Stats) uint64 { return s.OutbindRefused }, false},
		{"command_length 4 GiB", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 15}, smppwire.GenericNack, smppwire.RInvCmdLen,
			func(s smpp.Stats) uint64 { return s.Malformed }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRawSMSC(t)
			l := dialRaw(t, r)
			conn, br := r.accept()
			conn.Write(c.pdu)
			if c.wantID != 0 {
				p := readUntil(t, br, c.wantID)
				if p.Status != c.wantSt {
					t.Fatalf("answer %s %s, want %s", p.ID, p.Status, c.wantSt)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for c.counter(l.Stats()) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("not counted: %+v", l.Stats())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if c.closeIt {
				// The stream cannot be trusted any more: the link re-binds.
				r.accept()
			}
		})
	}
}

// TestOutbindAnswerToBind: an SMSC that answers the bind with an outbind
// (it wants an SMSC-initiated session) is refused with ErrOutbind's text,
// counted, and the link binds again with backoff.
func TestOutbindAnswerToBind(t *testing.T) {
	r := newRawSMSC(t)
	l := dialRaw(t, r)
	stop := make(chan struct{})
	served := make(chan struct{})
	go func() { // every bind is answered with an outbind
		defer close(served)
		for {
			var c net.Conn
			select {
			case c = <-r.conn:
			case <-stop:
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if p, err := smppwire.ReadPDU(bufio.NewReader(c), 0); err == nil && p.ID == smppwire.BindTransceiver {
				c.Write(smppwire.Marshal(smppwire.Outbind, 0, 1, []byte("smsc\x00secret\x00")))
			}
			defer c.Close()
		}
	}()
	defer func() { close(stop); <-served }()
	st := l.Stats()
	for deadline := time.Now().Add(5 * time.Second); st.OutbindRefused < 2 || st.BindFailures < 2; st = l.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st.Bound || st.Binds != 0 || !strings.Contains(st.LastBindError, "outbind") {
		t.Fatalf("stats %+v", st)
	}
}

// TestSubmitErrors: the SMSC's answers become typed errors the outbox can
// branch on, and an unanswered submit times out as retryable.
func TestSubmitErrors(t *testing.T) {
	sub := submitTPDU(t)
	cases := []struct {
		name      string
		answer    func(p smppwire.PDU) []byte
		retryable bool
	}{
		{"invalid destination", func(p smppwire.PDU) []byte {
			return smppwire.Marshal(smppwire.SubmitSMResp, smppwire.RInvDstAdr, p.Sequence, nil)
		}, false},
		{"system error", func(p smppwire.PDU) []byte {
			return smppwire.Marshal(smppwire.SubmitSMResp, smppwire.RSysErr, p.Sequence, nil)
		}, true},
		{"generic_nack", func(p smppwire.PDU) []byte {
			return smppwire.Marshal(smppwire.GenericNack, smppwire.RInvCmdLen, p.Sequence, nil)
		}, false},
		{"no answer", func(smppwire.PDU) []byte { return nil }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRawSMSC(t)
			l := dialRaw(t, r)
			conn, br := r.accept()
			go func() {
				p, err := smppwire.ReadPDU(br, 0)
				if err == nil && p.ID == smppwire.SubmitSM {
					if b := c.answer(p); b != nil {
						conn.Write(b)
					}
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, err := l.SendTPDU(ctx, "", deviceNum, sub)
			var re interface{ Retryable() bool }
			if err == nil || !errors.As(err, &re) || re.Retryable() != c.retryable {
				t.Fatalf("err %v (retryable %v), want retryable %v", err, re != nil && re.Retryable(), c.retryable)
			}
		})
	}
	t.Run("unknown source", func(t *testing.T) {
		l := dialRaw(t, newRawSMSC(t))
		if _, _, err := l.SendTPDU(context.Background(), "+19999", deviceNum, sub); !errors.Is(err, smpp.ErrUnknownSource) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("not an SMS-SUBMIT", func(t *testing.T) {
		l := dialRaw(t, newRawSMSC(t))
		if _, _, err := l.SendTPDU(context.Background(), "", deviceNum, []byte{0x00, 0x01}); !errors.Is(err, smpp.ErrBadTPDU) {
			t.Fatalf("err %v", err)
		}
	})
}

func submitTPDU(t *testing.T) []byte {
	t.Helper()
	tr := &capture{}
	b, err := sms.New(tr, sms.Config{StateDir: t.TempDir(), Peers: map[string]sms.Peer{deviceNum: {Security: sms.ModeNoSec}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.WriteTo(datagram(10, 1), addr(deviceNum)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); tr.get() == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no TPDU")
		}
	}
	return tr.get()
}
