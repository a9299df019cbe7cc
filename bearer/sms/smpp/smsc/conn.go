package smsc

import (
	"bufio"
	"context"
	"crypto/tls"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/smppwire"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

const respTimeout = 10 * time.Second

// conn is one ESME connection.
type conn struct {
	s  *Server
	nc interface {
		Read([]byte) (int, error)
		Write([]byte) (int, error)
		Close() error
		SetWriteDeadline(time.Time) error
	}
	wmu     sync.Mutex
	mu      sync.Mutex
	acc     *account
	bind    smppwire.CommandID
	seq     uint32
	pending map[uint32]chan smppwire.Status
	window  chan struct{}
	done    chan struct{}
	once    sync.Once
	late    sync.WaitGroup // held submit_sm_resp (Faults.ReceiptFirst)
	id      int64          // Submitted.Session
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

func (c *conn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(respTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.close()
	}
}

func (c *conn) serve() {
	defer c.close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer c.late.Wait()
	defer c.close()
	if tc, ok := c.nc.(*tls.Conn); ok {
		// The handshake first, bounded: a client that never completes
		// one must not hold a session slot.
		tc.SetDeadline(time.Now().Add(respTimeout))
		if err := tc.HandshakeContext(c.s.ctx); err != nil {
			c.s.st.tlsFailures.Add(1)
			c.s.log.Warn("smsc: TLS handshake failed", "remote", tc.RemoteAddr(), "err", err)
			return
		}
		tc.SetDeadline(time.Time{})
	}
	br := bufio.NewReader(c.nc)
	for {
		p, err := smppwire.ReadPDU(br, 0)
		if err != nil {
			return
		}
		if p.ID.IsResponse() {
			c.mu.Lock()
			ch := c.pending[p.Sequence]
			c.mu.Unlock()
			if ch != nil {
				ch <- p.Status
			}
			continue
		}
		switch p.ID {
		case smppwire.BindTransceiver, smppwire.BindTransmitter, smppwire.BindReceiver:
			if c.doBind(p) {
				if p.ID != smppwire.BindTransmitter {
					wg.Add(1)
					go func() { defer wg.Done(); c.deliverLoop() }()
				}
			}
		case smppwire.EnquireLink:
			c.write(smppwire.Marshal(smppwire.EnquireLinkResp, 0, p.Sequence, nil))
		case smppwire.Unbind:
			c.write(smppwire.Marshal(smppwire.UnbindResp, 0, p.Sequence, nil))
			return
		case smppwire.SubmitSM:
			c.submit(p)
		default:
			c.s.st.malformed.Add(1)
			c.write(smppwire.Marshal(smppwire.GenericNack, smppwire.RInvCmdID, p.Sequence, nil))
		}
	}
}

func (c *conn) doBind(p smppwire.PDU) bool {
	resp := p.ID.Resp()
	b, err := smppwire.ParseBind(p.Body)
	c.mu.Lock()
	bound := c.acc != nil
	c.mu.Unlock()
	c.s.mu.Lock()
	refuse := c.s.faults.RefuseBind
	c.s.mu.Unlock()
	var acc *account
	if err == nil {
		acc = c.s.accounts[b.SystemID]
	}
	st := smppwire.ROK
	switch {
	case err != nil:
		st = smppwire.RInvCmdLen
	case bound:
		st = smppwire.RAlyBnd
	case refuse:
		st = smppwire.RBindFail
	case acc == nil:
		st = smppwire.RInvSysID
	case acc.Password != b.Password:
		st = smppwire.RInvPaswd
	}
	if st != smppwire.ROK {
		c.s.st.bindsRefused.Add(1)
		c.write(smppwire.Marshal(resp, st, p.Sequence, nil))
		return false
	}
	body, _ := (&smppwire.BindResp{SystemID: "simsmsc", InterfaceVersion: smppwire.InterfaceVersion}).Marshal()
	c.mu.Lock()
	c.acc, c.bind = acc, p.ID
	c.mu.Unlock()
	c.s.st.binds.Add(1)
	c.write(smppwire.Marshal(resp, 0, p.Sequence, body))
	if p.ID != smppwire.BindTransmitter {
		acc.attMu.Lock()
		acc.rxN++
		acc.attMu.Unlock()
		for _, ep := range acc.eps {
			ep.SetAttached(true)
		}
	}
	return true
}

func (c *conn) submit(p smppwire.PDU) {
	c.mu.Lock()
	acc, bind := c.acc, c.bind
	c.mu.Unlock()
	answer := func(st smppwire.Status, id string) { c.answerSubmit(p.Sequence, st, id) }
	if acc == nil || bind == smppwire.BindReceiver {
		answer(smppwire.RInvBndSts, "")
		return
	}
	sm, err := smppwire.ParseSM(p.Body)
	if err != nil {
		c.s.st.malformed.Add(1)
		answer(smppwire.RInvMsgLen, "")
		return
	}
	ep, from, to, st := acc.addresses(sm)
	if st != smppwire.ROK {
		answer(st, "")
		return
	}
	if st := c.s.admit(); st != smppwire.ROK {
		c.s.st.throttled.Add(1)
		answer(st, "")
		return
	}
	tpdus, err := submitTPDUs(sm, to, c.s.nextRef())
	if err != nil {
		answer(smppwire.RInvMsgLen, "")
		return
	}
	sub := submission{id: c.s.nextID(), from: from, to: to, tpdus: tpdus, want: sm.RegisteredDelivery&3 != 0}
	c.s.mu.Lock()
	first := c.s.faults.ReceiptFirst
	hold := c.s.faults.HoldResponses > 0
	if hold {
		c.s.faults.HoldResponses--
	}
	c.s.mu.Unlock()
	if sub.want && first && !hold {
		c.s.receiptOut.Store(sub.id, make(chan struct{}))
	}
	if !c.send(acc, ep, sub) {
		c.s.receiptOut.Delete(sub.id)
		answer(smppwire.RMsgQFul, "")
		return
	}
	c.s.st.submits.Add(1)
	if c.s.cfg.OnSubmit != nil {
		c.s.cfg.OnSubmit(Submitted{ID: sub.id, Session: c.id, From: from, To: to, TPDUs: tpdus})
	}
	if hold {
		c.s.st.responsesHeld.Add(1)
		return // accepted and sent; the ESME never hears of it
	}
	answer(smppwire.ROK, sub.id)
}

// answerSubmit sends the submit_sm_resp of sequence seq: at once, or, when
// the receipt of message id is to go first (Faults.ReceiptFirst), once it
// has gone (or after respTimeout).
func (c *conn) answerSubmit(seq uint32, st smppwire.Status, id string) {
	var body []byte
	if st == smppwire.ROK {
		body, _ = (&smppwire.SubmitResp{MessageID: id}).Marshal()
	} else {
		c.s.st.submitsRefused.Add(1)
	}
	b := smppwire.Marshal(smppwire.SubmitSMResp, st, seq, body)
	v, held := c.s.receiptOut.Load(id)
	if st != smppwire.ROK || !held {
		c.write(b)
		return
	}
	c.late.Add(1)
	go func() {
		defer c.late.Done()
		t := time.NewTimer(respTimeout)
		defer t.Stop()
		select {
		case <-v.(chan struct{}):
		case <-t.C:
			c.s.receiptOut.Delete(id)
		case <-c.done:
			return
		}
		c.write(b)
	}()
}

// addresses applies the source and destination address rules to sm: the
// source an international number of the account's (TON 1, NPI 1), or the
// same digits with TON unknown; the destination international. It returns
// the source's endpoint and both numbers, or the refusal's status.
func (acc *account) addresses(sm *smppwire.SM) (*sim.Endpoint, string, string, smppwire.Status) {
	if sm.SourceTON != smppwire.TONInternational && sm.SourceTON != smppwire.TONUnknown {
		return nil, "", "", smppwire.RInvSrcTON
	}
	if sm.SourceNPI != smppwire.NPIISDN && sm.SourceNPI != smppwire.NPIUnknown {
		return nil, "", "", smppwire.RInvSrcNPI
	}
	from := sim.NormalizeMSISDN(sm.SourceAddr)
	ep := acc.eps[from]
	if ep == nil {
		return nil, "", "", smppwire.RInvSrcAdr
	}
	if sm.DestTON != smppwire.TONInternational {
		return nil, "", "", smppwire.RInvDstTON
	}
	to := sim.NormalizeMSISDN(sm.DestAddr)
	if to == "" {
		return nil, "", "", smppwire.RInvDstAdr
	}
	return ep, from, to, smppwire.ROK
}

// submission is one accepted submit_sm: its message id, numbers, TPDUs and
// whether a receipt is wanted.
type submission struct {
	id, from, to string
	tpdus        [][]byte
	want         bool
}

// send sends the TPDUs from ep and remembers, for the receipt, which
// message id the first segment's TP-MR stands for; false: the network
// refused one.
func (c *conn) send(acc *account, ep *sim.Endpoint, sub submission) bool {
	want := sub.want
	for _, t := range sub.tpdus {
		mr, err := ep.Send(context.Background(), t)
		if err != nil {
			return false
		}
		if want {
			k := idKey{sub.from, sub.to, mr}
			acc.attMu.Lock()
			if len(acc.ids[k]) < 16 {
				acc.ids[k] = append(acc.ids[k], sub.id)
			}
			acc.attMu.Unlock()
		}
		// Only the first segment of a split payload carries the receipt.
		want = false
	}
	return true
}

// deliverLoop hands the account's queued messages to this session, a
// window at a time; one refused or unanswered goes back to the queue.
func (c *conn) deliverLoop() {
	c.mu.Lock()
	acc := c.acc
	c.mu.Unlock()
	defer func() {
		acc.attMu.Lock()
		acc.rxN--
		last := acc.rxN == 0
		acc.attMu.Unlock()
		if last {
			for _, ep := range acc.eps {
				ep.SetAttached(false)
			}
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var sm *smppwire.SM
		select {
		case sm = <-acc.queue:
		case <-c.done:
			return
		}
		select {
		case c.window <- struct{}{}:
		case <-c.done:
			c.requeue(acc, sm)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-c.window }()
			if !c.deliver(sm) {
				c.s.st.deliverRetries.Add(1)
				c.requeue(acc, sm)
				select {
				case <-time.After(200 * time.Millisecond):
				case <-c.done:
				}
			}
		}()
	}
}

func (c *conn) requeue(acc *account, sm *smppwire.SM) {
	select {
	case acc.queue <- sm:
	default:
		c.s.st.receiptsDropped.Add(1)
	}
}

func (c *conn) deliver(sm *smppwire.SM) bool {
	body, err := sm.Marshal()
	if err != nil {
		return true // cannot ever go
	}
	ch := make(chan smppwire.Status, 1)
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.pending[seq] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, seq)
		c.mu.Unlock()
	}()
	c.write(smppwire.Marshal(smppwire.DeliverSM, 0, seq, body))
	if id, ok := sm.TLVs.CString(smppwire.TagReceiptedMessageID); ok && smppwire.IsReceipt(sm.ESMClass) {
		if v, ok := c.s.receiptOut.LoadAndDelete(id); ok {
			close(v.(chan struct{}))
		}
	}
	t := time.NewTimer(respTimeout)
	defer t.Stop()
	select {
	case st := <-ch:
		if st == smppwire.ROK {
			c.s.st.delivers.Add(1)
			return true
		}
		return st == smppwire.RXPAppn // permanent: the ESME will never take it
	case <-t.C:
		return false
	case <-c.done:
		return false
	}
}
