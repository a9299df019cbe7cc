package smsc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/internal/smppwire"
	"github.com/m2mbearer/m2mbearer/modem/sim"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Account is one ESME account: its credentials and the numbers it sends
// from and receives for (each becomes an Endpoint on the network).
type Account struct {
	SystemID, Password string
	Numbers            []string
}

// Faults are injectable misbehaviours; change them with SetFaults.
type Faults struct {
	// MaxRate answers ESME_RTHROTTLED to submit_sm above this many a
	// second (0: no limit), as operators' SMSCs do.
	MaxRate float64
	// Throttle is the probability that a submit_sm is answered
	// ESME_RTHROTTLED; QueueFull that it is answered ESME_RMSGQFUL.
	Throttle, QueueFull float64
	// RefuseBind answers every bind with ESME_RBINDFAIL.
	RefuseBind bool
	// ReceiptDelay holds receipts back; DropReceipts is the probability
	// that a receipt is never sent.
	ReceiptDelay time.Duration
	DropReceipts float64
	// ReceiptFirst holds back the submit_sm_resp of a submit that asked for
	// a receipt until that receipt was written to the ESME (10 s at most):
	// the receipt reaches the ESME before the message_id it names, on a
	// receiver bind or ahead of the response on a transceiver.
	ReceiptFirst bool
	// HoldResponses withholds the submit_sm_resp of the next this many
	// accepted submits (the messages go to the network): an SMSC that
	// accepted a message the ESME never learnt about, as when the ESME
	// dies first. Counted in Stats.ResponsesHeld.
	HoldResponses int
}

// Config configures a Server.
type Config struct {
	Network  *sim.Network
	Accounts []Account
	// Listen is the TCP address (default 127.0.0.1:0).
	Listen string
	// TLS, when set, makes the listener speak SMPP over TLS with this
	// configuration (its Certificates; ClientAuth to ask for client
	// certificates). A handshake that fails is counted (Stats.TLSFailures)
	// and its connection closed.
	TLS *tls.Config
	// Window bounds deliver_sm outstanding per session (default 10).
	Window int
	// QueueLen bounds the messages held per account for its ESMEs
	// (default 100,000); beyond it the network keeps them and retries.
	QueueLen int
	// MaxSessions bounds connections (default 64).
	MaxSessions int
	Faults      Faults
	Seed        uint64
	// Logger receives the SMSC's logs (default: none, a discard logger).
	Logger *slog.Logger
	// OnSubmit, when set, is told of every submit_sm accepted, before it is
	// answered (tests and tools: which connection sent what). It must not
	// block.
	OnSubmit func(Submitted)
}

// Submitted is a submit_sm the SMSC accepted.
type Submitted struct {
	ID      string // the message_id answered
	Session int64  // the connection it came on, numbered from 1 in accept order
	From    string // the account's number, "+digits"
	To      string // "+digits"
	// TPDUs are the SMS-SUBMITs it became on the network (one per
	// segment of a split message_payload).
	TPDUs [][]byte
}

// Stats are the server's counters.
type Stats struct {
	Binds, BindsRefused, Sessions        int64
	Submits, Throttled, SubmitsRefused   int64
	Delivers, DeliverRetries             int64
	Receipts, ReceiptsDropped, Malformed int64
	TLSFailures                          int64 // handshakes that failed
	ResponsesHeld                        int64 // submit_sm_resp withheld (Faults.HoldResponses)
}

// Server is the simulated SMSC. The zero Server was never started (use
// Start): its Addr is "" and Close does nothing.
type Server struct {
	cfg Config
	log *slog.Logger
	ln  net.Listener

	mu       sync.Mutex
	faults   Faults
	rng      *rand.Rand
	tat      time.Time
	accounts map[string]*account // system_id
	sessions map[*conn]bool
	closed   bool
	msgSeq   uint64
	idBase   uint32 // distinguishes message_ids across restarts
	ref      uint16
	// receiptOut: message_id -> closed once its receipt was written
	// (Faults.ReceiptFirst).
	receiptOut sync.Map

	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
	st     struct {
		binds, bindsRefused, sessions, submits, throttled, submitsRefused atomic.Int64
		delivers, deliverRetries, receipts, receiptsDropped, malformed    atomic.Int64
		tlsFailures, responsesHeld                                        atomic.Int64
	}
}

// account holds what waits for an account's ESMEs and the receipts owed.
type account struct {
	Account
	eps   map[string]*sim.Endpoint // number -> endpoint
	queue chan *smppwire.SM        // deliver_sm waiting for a receiver
	// ids maps (number, recipient, TP-MR) to the message_ids submitted.
	ids   map[idKey][]string
	rxN   int // bound sessions that receive
	attMu sync.Mutex
}

type idKey struct {
	from, to string
	mr       uint8
}

// ErrInvalidOption is wrapped by Start's error for a Config that cannot
// work: no Network, a negative Window, QueueLen or MaxSessions (named in
// the error).
var ErrInvalidOption = errors.New("smsc: invalid option")

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	var f cfgcheck.Fields
	if cfg.Network == nil {
		f.Badf("Network is required")
	}
	cfgcheck.Default(&f, "Window", &cfg.Window, 10)
	cfgcheck.Default(&f, "QueueLen", &cfg.QueueLen, 100_000)
	cfgcheck.Default(&f, "MaxSessions", &cfg.MaxSessions, 64)
	if err := f.Err(ErrInvalidOption, "Config"); err != nil {
		return nil, err
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, faults: cfg.Faults, accounts: map[string]*account{}, sessions: map[*conn]bool{},
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed)), idBase: uint32(time.Now().UnixNano() >> 24)}
	for _, a := range cfg.Accounts {
		acc := &account{Account: a, eps: map[string]*sim.Endpoint{}, queue: make(chan *smppwire.SM, cfg.QueueLen), ids: map[idKey][]string{}}
		for _, n := range a.Numbers {
			num := sim.NormalizeMSISDN(n)
			ep, err := cfg.Network.AddEndpoint(num, func(m sim.EndpointMessage) bool { return s.fromNetwork(acc, num, m) })
			if err != nil {
				s.closeEndpoints()
				return nil, fmt.Errorf("smsc: number %s: %w", num, err)
			}
			ep.SetAttached(false) // until an ESME binds to receive
			acc.eps[num] = ep
		}
		s.accounts[a.SystemID] = acc
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.closeEndpoints()
		return nil, fmt.Errorf("smsc: listen: %w", err)
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	s.ln = ln
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() string {
	if s.ln == nil {
		return "" // the zero Server: not started
	}
	return s.ln.Addr().String()
}

// SetFaults replaces the fault settings.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// DropSessions closes every connection without unbind, as a broken link.
func (s *Server) DropSessions() {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.sessions))
	for c := range s.sessions {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Binds: s.st.binds.Load(), BindsRefused: s.st.bindsRefused.Load(), Sessions: s.st.sessions.Load(),
		Submits: s.st.submits.Load(), Throttled: s.st.throttled.Load(), SubmitsRefused: s.st.submitsRefused.Load(),
		Delivers: s.st.delivers.Load(), DeliverRetries: s.st.deliverRetries.Load(), Receipts: s.st.receipts.Load(),
		ReceiptsDropped: s.st.receiptsDropped.Load(), Malformed: s.st.malformed.Load(), TLSFailures: s.st.tlsFailures.Load(),
		ResponsesHeld: s.st.responsesHeld.Load()}
}

// Close stops listening, drops every session and detaches the numbers.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed || s.ln == nil {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	err := s.ln.Close()
	s.DropSessions()
	s.wg.Wait()
	s.closeEndpoints()
	return err
}

func (s *Server) closeEndpoints() {
	for _, a := range s.accounts {
		for _, ep := range a.eps {
			ep.SetAttached(false)
		}
	}
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &conn{s: s, nc: nc, done: make(chan struct{}), pending: map[uint32]chan smppwire.Status{},
			window: make(chan struct{}, s.cfg.Window)}
		s.mu.Lock()
		if s.closed || len(s.sessions) >= s.cfg.MaxSessions {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.sessions[c] = true
		s.mu.Unlock()
		c.id = s.st.sessions.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.sessions, c)
			s.mu.Unlock()
		}()
	}
}

// fromNetwork runs on the network's timer goroutine for a message to one
// of acc's numbers: deliveries are queued for the account's receivers,
// status reports become receipts.
func (s *Server) fromNetwork(acc *account, num string, m sim.EndpointMessage) bool {
	if m.StatusReport {
		s.statusReport(acc, num, m.TPDU)
		return true
	}
	sm, err := deliverSM(m.TPDU, num)
	if err != nil {
		s.st.malformed.Add(1)
		s.log.Warn("smsc: delivery cannot become a deliver_sm; dropped", "to", num, "err", err)
		return true
	}
	select {
	case acc.queue <- sm:
		return true
	default:
		return false // the network keeps it and tries again
	}
}

func (s *Server) statusReport(acc *account, num string, tpdu []byte) {
	in, err := pdu.Decode(tpdu)
	if err != nil || in.StatusReport == nil {
		s.st.malformed.Add(1)
		return
	}
	sr := in.StatusReport
	k := idKey{num, sim.NormalizeMSISDN(sr.Recipient.String()), sr.MR}
	acc.attMu.Lock()
	ids := acc.ids[k]
	var id string
	if len(ids) > 0 {
		id = ids[0]
		if len(ids) == 1 {
			delete(acc.ids, k)
		} else {
			acc.ids[k] = ids[1:]
		}
	}
	acc.attMu.Unlock()
	if id == "" {
		return
	}
	state := smppwire.StateDelivered
	switch pdu.ClassifyStatus(sr.Status) {
	case pdu.StatusPending:
		state = smppwire.StateEnroute
	case pdu.StatusFailed:
		state = smppwire.StateUndeliverable
		if sr.Status == sim.StatusValidityExpired {
			state = smppwire.StateExpired
		}
	}
	s.mu.Lock()
	f := s.faults
	drop := f.DropReceipts > 0 && s.rng.Float64() < f.DropReceipts
	s.mu.Unlock()
	if drop {
		s.st.receiptsDropped.Add(1)
		return
	}
	r := &smppwire.Receipt{ID: id, Submitted: 1, Delivered: 1, SubmitDate: sr.SCTS, DoneDate: sr.Discharge, State: state, Err: "000"}
	if state != smppwire.StateDelivered {
		r.Delivered, r.Err = 0, fmt.Sprintf("%03d", sr.Status)
	}
	sm := &smppwire.SM{SourceTON: smppwire.TONInternational, SourceNPI: smppwire.NPIISDN, SourceAddr: trimPlus(k.to),
		DestTON: smppwire.TONInternational, DestNPI: smppwire.NPIISDN, DestAddr: trimPlus(num),
		ESMClass: smppwire.ESMDeliveryReceipt, ShortMessage: []byte(r.Format()),
		TLVs: smppwire.TLVs{smppwire.CString(smppwire.TagReceiptedMessageID, id), smppwire.U8(smppwire.TagMessageState, byte(state))}}
	queue := func() {
		select {
		case acc.queue <- sm:
			s.st.receipts.Add(1)
		default:
			s.st.receiptsDropped.Add(1)
		}
	}
	if f.ReceiptDelay > 0 {
		time.AfterFunc(f.ReceiptDelay, func() {
			if s.ctx.Err() == nil {
				queue()
			}
		})
		return
	}
	queue()
}

// admit applies the throttling faults to one submit_sm.
func (s *Server) admit() smppwire.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	if f.Throttle > 0 && s.rng.Float64() < f.Throttle {
		return smppwire.RThrottled
	}
	if f.QueueFull > 0 && s.rng.Float64() < f.QueueFull {
		return smppwire.RMsgQFul
	}
	if f.MaxRate > 0 {
		now := time.Now()
		iv := time.Duration(float64(time.Second) / f.MaxRate)
		if s.tat.Before(now) {
			s.tat = now
		}
		// A burst of a tenth of a second is tolerated.
		if s.tat.Sub(now) > max(iv, 100*time.Millisecond) {
			return smppwire.RThrottled
		}
		s.tat = s.tat.Add(iv)
	}
	return smppwire.ROK
}

func (s *Server) nextID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgSeq++
	return fmt.Sprintf("%08X%08X", s.idBase, s.msgSeq)
}

func (s *Server) nextRef() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ref++
	return s.ref
}
