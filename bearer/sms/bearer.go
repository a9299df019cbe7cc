package sms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/internal/deadline"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Mode is a peer's security mode on the SMS binding (Peer.Security).
type Mode int

const (
	// ModeDTLS: only DTLS records are exchanged with the peer (the
	// bearer/secure layer runs over this bearer). The default.
	ModeDTLS Mode = iota
	// ModeNoSec: plain CoAP. LwM2M allows it on SMS only where it was
	// configured (triggers, tests); it must be chosen explicitly.
	ModeNoSec
	// ModeOSCORE: CoAP messages protected end to end by OSCORE
	// (bearer/oscore runs over this bearer); on the SMS they travel as CoAP,
	// like NoSec, and the OSCORE layer refuses what it cannot verify.
	ModeOSCORE
)

// String returns "dtls", "nosec" or "oscore".
func (s Mode) String() string {
	switch s {
	case ModeNoSec:
		return "nosec"
	case ModeOSCORE:
		return "oscore"
	}
	return "dtls"
}

// Framing is how outgoing datagrams are framed.
type Framing int

const (
	// FramingCoAP sends the datagram as the SMS user data.
	FramingCoAP Framing = iota
	// FramingWAPPush wraps it in the WAP Push form of the LwM2M trigger
	// (WDP port 2948, WSP push, X-WAP-Application-ID 0x9A).
	FramingWAPPush
)

// Peer configures one SMS peer.
type Peer struct {
	// Security is the mode datagrams to and from the peer must be in.
	Security Mode
	// SIM is the MSISDN of our SIM the peer knows (it accepts SMS only from
	// that number); "" lets the transport choose.
	SIM string
	// Framing of outgoing datagrams (incoming: both forms are accepted).
	Framing Framing
}

// Params defaults for CoAP over SMS. LwM2M transport binding: no CoAP
// retransmission on SMS (MAX_RETRANSMIT 0); SMS store-and-forward latency is
// seconds to minutes, so the timeouts are long.
//
// Bodies above one concatenated SMS go with RFC 9177 Q-Block to peers that
// support it (the probe rides on the first CON request, e.g. a Register):
// a body of N blocks costs N concatenated SMS and one answer, within 5 %
// of the segment minimum at 4-32 KiB. MAX_PAYLOADS is 32 (32 KiB without
// a 'Continue' or 2.31, each of which costs an SMS); NON_TIMEOUT is
// ACK_TIMEOUT (60 s), NON_RECEIVE_TIMEOUT 120 s, NON_MAX_RETRANSMIT 4.
func DefaultParams() bearer.Params {
	return bearer.Params{
		Name:              "sms",
		MaxDatagram:       255 * 134, // 34,170: 255 segments with the 8-bit reference
		PreferredDatagram: pdu.MaxUserData,
		// Bodies up to 1 KiB go as one concatenated SMS (8 segments for
		// typical headers); larger ones in 1,024-byte blocks.
		BlockDatagram:   9 * 134,
		AckTimeout:      60 * time.Second,
		AckRandomFactor: 1.5,
		MaxRetransmit:   0,
		NStart:          1,
		MaxLatency:      300 * time.Second,
		ProcessingDelay: 60 * time.Second,
		CostPerDatagram: 1,
		QBlock:          bearer.QBlockParams{Enabled: true, MaxPayloads: 32},
	}
}

// Config configures a Bearer. A zero field takes its default; a negative
// size, count, rate or duration makes New fail with an error wrapping
// ErrInvalidOption that names the field.
type Config struct {
	// StateDir holds outbox.db and sms-state.db. Required.
	StateDir string
	// Peers are the numbers the bearer talks to, keyed by MSISDN in any
	// form ParseMSISDN accepts. More may be added with AddPeer.
	Peers map[string]Peer
	// MaxPeers bounds the peer table (default 1,000,000).
	MaxPeers int
	// Numbering resolves national originator numbers.
	Numbering Numbering
	// Submit are the options of every SMS-SUBMIT (DCS, validity, status
	// reports, 16-bit references).
	Submit []pdu.Option
	// Reassembly bounds incoming concatenated sets (MaxSetsPerOriginator
	// defaults to the RFC 9177 MAX_PAYLOADS of Params plus 8).
	Reassembly pdu.ReassemblerConfig
	// Outbox bounds the durable outbox; Worker tunes its sender.
	Outbox outbox.Limits
	Worker outbox.WorkerConfig
	// DailyBudgetPerDevice and DailyBudget cap the SMS segments sent per
	// peer and in all per UTC day: nil is unlimited, new(0) no SMS at all
	// (every send fails with a *BudgetError), new(n) n segments; negative
	// is refused by New. A budget of 0 is never read as "unlimited".
	DailyBudgetPerDevice, DailyBudget *int
	// BudgetWarnRatio is the share of a daily budget whose crossing is
	// reported to OnBudget (default 0.8; negative: never). OnBudget also
	// hears of the day's first refusal of each budget. Optional; must
	// not block.
	BudgetWarnRatio float64
	OnBudget        func(BudgetAlert)
	// LoopMax refuses a loop: more than LoopMax identical CoAP datagrams
	// (message ID and token aside) to or from one peer within LoopWindow
	// (default 1 h). A refused send fails with a *LoopError; a refused
	// receipt is dropped and counted (Stats.DroppedLoop). Both reach
	// OnLoop. 0 disables the check.
	LoopMax    int
	LoopWindow time.Duration
	OnLoop     func(LoopAlert)
	// PeerRate (segments a second) and PeerBurst limit sends per
	// destination; 0 disables.
	PeerRate  float64
	PeerBurst int
	// State keeps the inbox and the budget counters; nil: a BoltState in
	// StateDir/sms-state.db. The bearer closes it.
	State StateStore
	// RateLimiter enforces PeerRate/PeerBurst; nil: in memory.
	RateLimiter RateLimiter
	// OutboxBackend keeps the outbox; nil: a bbolt file,
	// StateDir/outbox.db. The bearer closes it.
	OutboxBackend outbox.Backend
	// Params overrides DefaultParams when non-nil.
	Params *bearer.Params
	// ReadQueue bounds complete datagrams waiting for ReadFrom (default 256).
	// A full queue holds the modems back: nothing is acknowledged meanwhile.
	ReadQueue int
	// SplitDTLS hands the datagrams of DTLS peers to DTLS() instead of
	// ReadFrom (see DTLSView), so that a bearer/secure Server runs on them
	// while the Bearer carries its NoSec and OSCORE peers. The view's
	// queue is ReadQueue long too.
	SplitDTLS bool
	// OnResult receives each outbox entry's end (sent, delivered, failed,
	// expired). Optional; must not block.
	OnResult func(outbox.Result)
	// Logger receives the bearer's logs (default: none, a discard logger).
	Logger *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Stats are the bearer's counters.
type Stats struct {
	// HeldForRestart counts datagrams of DTLS peers that came after the
	// DTLS view was closed: kept in the inbox store for the next start.
	HeldForRestart uint64

	DatagramsSent, SegmentsQueued          uint64
	DatagramsReceived, SegmentsReceived    uint64
	StatusReports                          uint64
	DroppedUnknownPeer, DroppedUndecodable uint64
	DroppedNotBinary, DroppedSecurity      uint64
	DroppedBadFraming, ReassemblyDropped   uint64
	BudgetRejected, RateRejected           uint64
	SendFailures, SendExpired, Delivered   uint64
	WAPPushReceived                        uint64
	// LoopRefused: sends refused as a loop; DroppedLoop: received
	// datagrams dropped as a loop; BudgetAlerts: alerts given to OnBudget.
	LoopRefused, DroppedLoop, BudgetAlerts uint64
	// Repeats counts datagrams sent again under the concatenation
	// reference of their first sending (see pdu.WithRepeat).
	Repeats     uint64
	Outbox      outbox.Stats
	Reassembly  pdu.ReassemblerStats
	Peers       int
	PendingRead int
}

type counters struct {
	datagramsSent, segmentsQueued                            atomic.Uint64
	datagramsReceived, segmentsReceived, statusReports       atomic.Uint64
	droppedUnknownPeer, droppedUndecodable, droppedNotBinary atomic.Uint64
	droppedSecurity, droppedBadFraming, reassemblyDropped    atomic.Uint64
	budgetRejected, rateRejected                             atomic.Uint64
	sendFailures, sendExpired, delivered, wapPushReceived    atomic.Uint64
	loopRefused, loopDropped, budgetAlerts                   atomic.Uint64
	heldForRestart                                           atomic.Uint64
	repeats                                                  atomic.Uint64
}

type received struct {
	data []byte
	from Addr
	sim  string
	form pdu.TriggerForm
}

// Bearer is CoAP over binary SMS: a bearer.Bearer whose addresses are Addr.
// WriteTo returns once the datagram is stored in the durable outbox; inbound
// SMS are stored before they are acknowledged to the modem and removed once
// the complete datagram is handed to ReadFrom.
//
// The zero Bearer is not usable: use New. It behaves as a closed Bearer:
// reads, writes, deadlines and AddPeer fail with errors wrapping
// ErrNotCreated (and net.ErrClosed), Close does nothing.
type Bearer struct {
	cfg    Config
	params bearer.Params
	t      Transport
	log    *slog.Logger
	now    func() time.Time

	enc    *pdu.Encoder
	rep    *repeats
	reasm  *pdu.Reassembler
	ob     *outbox.Outbox
	worker *outbox.Worker
	st     *state
	lim    RateLimiter

	peersMu sync.RWMutex
	peers   map[Addr]Peer

	// setIDs maps a pending reassembly set to the inbox records holding its
	// segments; touched only by the receive goroutine.
	setIDs map[pdu.SetKey][]uint64
	dropMu sync.Mutex
	drops  []pdu.SetKey

	readq     chan received
	rdeadline *deadline.Deadline
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	c         counters
	local     Addr
	usage     usageBook
	guard     *loopGuard
	budget    budgetWatch
	dtls      *DTLSView // with Config.SplitDTLS
}

// New opens the bearer's state in cfg.StateDir, replays the segments that
// were stored but not yet handed on, and starts the receive loop and the
// outbox worker. Close stops them. A Config that cannot work (see
// ErrInvalidOption) is refused before anything is opened.
func New(t Transport, cfg Config) (*Bearer, error) {
	b, err := newBearer(t, cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("sms: state dir: %w", err)
	}
	if err := b.openStores(); err != nil {
		return nil, err
	}
	if err := b.start(); err != nil {
		return nil, err
	}
	return b, nil
}

// check refuses a Config that cannot work and fills in the defaults of
// the Bearer's own fields; the sub-configs are checked by the
// constructors they go to.
func (c *Config) check(t Transport) error {
	var f cfgcheck.Fields
	if t == nil {
		f.Badf("Transport is nil")
	}
	if c.StateDir == "" {
		f.Badf("StateDir is required (the outbox and inbox are durable)")
	}
	cfgcheck.Default(&f, "MaxPeers", &c.MaxPeers, 1_000_000)
	cfgcheck.Default(&f, "ReadQueue", &c.ReadQueue, 256)
	cfgcheck.NonNegative(&f, "LoopMax", c.LoopMax)
	cfgcheck.NonNegative(&f, "LoopWindow", c.LoopWindow)
	cfgcheck.NonNegative(&f, "PeerRate", c.PeerRate)
	cfgcheck.NonNegative(&f, "PeerBurst", c.PeerBurst)
	cfgcheck.NonNegative(&f, "Outbox.MaxEntries", c.Outbox.MaxEntries)
	cfgcheck.NonNegative(&f, "Outbox.MaxBytes", c.Outbox.MaxBytes)
	cfgcheck.NonNegative(&f, "Outbox.MaxAge", c.Outbox.MaxAge)
	if c.BudgetWarnRatio > 1 || math.IsNaN(c.BudgetWarnRatio) {
		f.Badf("BudgetWarnRatio %v is not a share of a budget (0..1; negative: never)", c.BudgetWarnRatio)
	}
	ownBudgets(&f, c)
	if err := f.Err(ErrInvalidOption, "Config"); err != nil {
		return err
	}
	if c.Params != nil {
		if err := c.Params.Validate(); err != nil {
			return fmt.Errorf("%w: Config.Params: %w", ErrInvalidOption, err)
		}
	}
	return nil
}

// newBearer checks cfg and makes the Bearer's in-memory parts: peers,
// encoder, reassembler, limits, read queue. Nothing is opened yet.
func newBearer(t Transport, cfg Config) (*Bearer, error) {
	if err := cfg.check(t); err != nil {
		return nil, err
	}
	b := &Bearer{cfg: cfg, t: t, peers: map[Addr]Peer{}, setIDs: map[pdu.SetKey][]uint64{}}
	b.params = DefaultParams()
	if cfg.Params != nil {
		b.params = *cfg.Params
	}
	if b.log = cfg.Logger; b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now = cfg.Now; b.now == nil {
		b.now = time.Now
	}
	for n, p := range cfg.Peers {
		if err := b.AddPeer(n, p); err != nil {
			return nil, err
		}
	}
	var err error
	if b.enc, err = pdu.NewEncoder(pdu.WithDefaults(cfg.Submit...)); err != nil {
		return nil, fmt.Errorf("%w: Config.Submit: %w", ErrInvalidOption, err)
	}
	b.rep = newRepeats()
	rc := cfg.Reassembly
	if rc.MaxSetsPerOriginator == 0 {
		// A peer sends up to MAX_PAYLOADS concatenated SMS in one RFC 9177
		// burst; under loss each may be pending (incomplete) at once and
		// must stay until its missing segments come again.
		rc.MaxSetsPerOriginator = b.params.MaxPayloads() + 8
	}
	rc.Now = b.now
	rc.OnDrop = b.onDrop
	if b.reasm, err = pdu.NewReassembler(rc); err != nil {
		return nil, fmt.Errorf("%w: Config.Reassembly: %w", ErrInvalidOption, err)
	}
	if b.lim = cfg.RateLimiter; b.lim == nil {
		b.lim = newLimiter(cfg.PeerRate, cfg.PeerBurst, 0)
	}
	b.guard = newLoopGuard(cfg.LoopMax, cfg.LoopWindow)
	if b.budget.ratio = cfg.BudgetWarnRatio; b.budget.ratio == 0 {
		b.budget.ratio = 0.8
	}
	b.readq = make(chan received, b.cfg.ReadQueue)
	b.rdeadline = deadline.New()
	if cfg.SplitDTLS {
		b.dtls = newDTLSView(b, b.cfg.ReadQueue)
	}
	return b, nil
}

// openStores opens the inbox and budget state and the durable outbox (in
// StateDir unless the Config gives its own), closing what it opened when
// a later one fails.
func (b *Bearer) openStores() error {
	cfg := &b.cfg
	if cfg.State != nil {
		b.st = &state{cfg.State}
	} else {
		bs, err := OpenBoltState(filepath.Join(cfg.StateDir, "sms-state.db"))
		if err != nil {
			return err
		}
		b.st = &state{bs}
	}
	var err error
	oopts := []outbox.Option{outbox.WithLimits(cfg.Outbox), outbox.WithClock(b.now)}
	if cfg.OutboxBackend != nil {
		b.ob, err = outbox.OpenBackend(cfg.OutboxBackend, oopts...)
		if err != nil {
			cfg.OutboxBackend.Close()
		}
	} else {
		b.ob, err = outbox.Open(filepath.Join(cfg.StateDir, "outbox.db"), oopts...)
	}
	if err != nil {
		b.st.close()
		return err
	}
	return nil
}

// start makes the outbox worker, replays the stored inbound segments and
// starts the worker and the receive loop; on error it closes the stores.
func (b *Bearer) start() error {
	wc := b.cfg.Worker
	wc.OnDone = b.onResult
	if wc.Logger == nil {
		wc.Logger = b.log
	}
	var err error
	if b.worker, err = outbox.NewWorker(b.ob, b.t, wc); err != nil {
		err = fmt.Errorf("%w: Config.Worker: %w", ErrInvalidOption, err)
	} else {
		b.ctx, b.cancel = context.WithCancel(context.Background())
		if err = b.replay(); err != nil {
			b.cancel()
		}
	}
	if err != nil {
		b.ob.Close()
		b.st.close()
		return err
	}
	b.wg.Add(2)
	go func() { defer b.wg.Done(); b.worker.Run(b.ctx) }()
	go func() { defer b.wg.Done(); b.receiveLoop() }()
	return nil
}

// AddPeer configures (or reconfigures) the peer with MSISDN number.
func (b *Bearer) AddPeer(number string, p Peer) error {
	if b.peers == nil {
		return ErrNotCreated
	}
	a, err := b.parse(number)
	if err != nil {
		return err
	}
	if p.SIM != "" {
		sim, err := ParseMSISDN(p.SIM)
		if err != nil {
			return fmt.Errorf("sms: peer %s SIM: %w", a, err)
		}
		p.SIM = sim.String()
	}
	b.peersMu.Lock()
	defer b.peersMu.Unlock()
	if _, ok := b.peers[a]; !ok && len(b.peers) >= b.cfg.MaxPeers {
		return fmt.Errorf("%w: %d", ErrTooManyPeers, b.cfg.MaxPeers)
	}
	b.peers[a] = p
	return nil
}

// RemovePeer forgets the peer; its SMS are dropped from then on.
func (b *Bearer) RemovePeer(number string) {
	if a, err := b.parse(number); err == nil {
		b.peersMu.Lock()
		delete(b.peers, a)
		b.peersMu.Unlock()
	}
}

func (b *Bearer) peer(a Addr) (Peer, bool) {
	b.peersMu.RLock()
	defer b.peersMu.RUnlock()
	p, ok := b.peers[a]
	return p, ok
}

func (b *Bearer) parse(s string) (Addr, error) {
	a, err := ParseMSISDN(s)
	if err != nil && b.cfg.Numbering.CountryCode != "" {
		if a2, err2 := b.cfg.Numbering.Parse(s); err2 == nil {
			return a2, nil
		}
	}
	return a, err
}

// Params returns the bearer's parameters.
func (b *Bearer) Params() bearer.Params { return b.params }

// LocalAddr returns the zero Addr: a bearer may send from several SIMs.
func (b *Bearer) LocalAddr() net.Addr { return b.local }

// isDTLS reports whether a datagram is a DTLS record (content types 20..25,
// RFC 6347 §4.1 and RFC 9146's tls12_cid).
func isDTLS(p []byte) bool { return len(p) >= 13 && p[0] >= 20 && p[0] <= 25 && p[1] == 254 }

func checkMode(sec Mode, p []byte) error {
	if (sec == ModeDTLS) != isDTLS(p) {
		return fmt.Errorf("%w: peer mode %s", ErrSecurityMode, sec)
	}
	return nil
}

// checkSend is checkMode for a datagram to send: besides, a CoAP request
// to an OSCORE peer must carry the OSCORE option (RFC 8613): an
// unprotected one (an SMS trigger written straight onto the bearer, an
// Endpoint without the peer's OSCORE context) would cost an SMS the
// device refuses. Empty messages and responses pass (an OSCORE endpoint
// may answer a request it cannot verify with an unprotected error).
func checkSend(sec Mode, p []byte) error {
	if err := checkMode(sec, p); err != nil {
		return err
	}
	if sec == ModeOSCORE && plainRequest(p) {
		return fmt.Errorf("%w: peer mode %s: CoAP request without the OSCORE option", ErrSecurityMode, sec)
	}
	return nil
}

// oscoreOption is the OSCORE option number (RFC 8613 §2).
const oscoreOption message.OptionID = 9

// plainRequest reports whether p is a CoAP request (not an empty message,
// not a response) without an OSCORE option; a datagram that does not
// decode is not judged here.
func plainRequest(p []byte) bool {
	m := message.Message{Options: make(message.Options, 0, 16)}
	for {
		_, err := coder.DefaultCoder.Decode(p, &m)
		if errors.Is(err, message.ErrOptionsTooSmall) && cap(m.Options) < 256 {
			m.Options = make(message.Options, 0, 4*cap(m.Options))
			continue
		}
		if err != nil {
			return false
		}
		break
	}
	return m.Code != codes.Empty && m.Code>>5 == 0 && !m.Options.HasOption(oscoreOption)
}

// WriteTo stores the datagram p for addr in the outbox and returns once it is
// durable. Errors: ErrUnknownPeer, ErrSecurityMode, bearer.ErrTooLarge,
// *BudgetError, *RateError, outbox.ErrFull, net.ErrClosed. With
// Config.SplitDTLS, DTLS peers are written through DTLS() only.
func (b *Bearer) WriteTo(p []byte, addr net.Addr) (int, error) {
	return b.writeTo(p, addr, time.Time{}, false)
}

// WriteToBefore is WriteTo for a datagram that is worth nothing after
// deadline (an SMS wake-up for a request that expires then): its outbox
// entry expires at the deadline (at most Outbox.MaxAge away), and the
// outbox sends the entries of different peers earliest deadline first. The
// zero deadline is WriteTo.
func (b *Bearer) WriteToBefore(p []byte, addr net.Addr, deadline time.Time) (int, error) {
	return b.writeTo(p, addr, deadline, false)
}

// writeTo is WriteToBefore from the Bearer (view false) or its DTLS view.
// Its steps: resolve the peer and check the datagram against it, encode
// the segments, admit them (rate limit, loop guard, daily budgets), then
// store them in the outbox. Every error is returned as a *net.OpError.
func (b *Bearer) writeTo(p []byte, addr net.Addr, deadline time.Time, view bool) (int, error) {
	to, peer, err := b.sendPeer(p, addr, view)
	if err != nil {
		return 0, b.opErr("write", addr, err)
	}
	segs, err := b.encodeFor(to, peer, p)
	if err != nil {
		return 0, b.opErr("write", addr, err)
	}
	day, err := b.admit(to, p, len(segs))
	if err != nil {
		return 0, b.opErr("write", addr, err)
	}
	e := &outbox.Entry{From: peer.SIM, To: to.String(), WantReport: b.enc.Defaults().StatusReport, Expires: deadline}
	for _, s := range segs {
		e.Segments = append(e.Segments, outbox.Segment{TPDU: s.TPDU})
	}
	if _, err := b.ob.Enqueue(e); err != nil {
		if _, _, rerr := b.st.spend(day, to.String(), -len(segs), 0, 0); rerr != nil {
			b.log.Error("sms: refunding budget", "err", rerr)
		}
		return 0, b.opErr("write", addr, err)
	}
	b.c.datagramsSent.Add(1)
	b.c.segmentsQueued.Add(uint64(len(segs)))
	b.usage.sent(to, p, len(segs))
	return len(p), nil
}

// sendPeer is writeTo's first step: the bearer is open, addr names a known
// peer written through the right view, and p fits the peer's security mode
// and the bearer's datagram size.
func (b *Bearer) sendPeer(p []byte, addr net.Addr, view bool) (Addr, Peer, error) {
	if b.ctx == nil {
		return Addr{}, Peer{}, ErrNotCreated
	}
	if b.ctx.Err() != nil {
		return Addr{}, Peer{}, net.ErrClosed
	}
	to, err := toAddr(addr, b.parse)
	if err != nil {
		return Addr{}, Peer{}, err
	}
	peer, ok := b.peer(to)
	if !ok {
		return Addr{}, Peer{}, ErrUnknownPeer
	}
	if b.isSplitDTLS(peer.Security) != view {
		return Addr{}, Peer{}, modeError(peer.Security, view)
	}
	if err := checkSend(peer.Security, p); err != nil {
		return Addr{}, Peer{}, err
	}
	if len(p) > b.params.MaxDatagram {
		return Addr{}, Peer{}, fmt.Errorf("%w: %d > %d bytes", bearer.ErrTooLarge, len(p), b.params.MaxDatagram)
	}
	return to, peer, nil
}

// encodeFor is writeTo's second step: p framed for the peer (WAP push or
// plain) and encoded into SMS-SUBMIT segments; a repeat of the last
// concatenated datagram to the peer reuses its concatenation reference.
func (b *Bearer) encodeFor(to Addr, peer Peer, p []byte) ([]pdu.Segment, error) {
	data, opts := p, []pdu.Option(nil)
	if peer.Framing == FramingWAPPush {
		data = pdu.BuildWAPPush(byte(b.c.datagramsSent.Load()), p)
		opts = append(opts, pdu.WAPPushOptions(pdu.WAPPushPort))
	}
	ref, repeat := b.rep.lookup(to.String(), data)
	if repeat {
		opts = append(opts, pdu.WithRepeat(ref))
	}
	segs, err := b.enc.Encode(to.String(), data, opts...)
	if err != nil {
		if errors.Is(err, pdu.ErrTooLarge) {
			err = fmt.Errorf("%w: %w", bearer.ErrTooLarge, err)
		}
		return nil, err
	}
	if len(segs) > 1 {
		if repeat {
			b.c.repeats.Add(1)
		} else {
			b.rep.record(to.String(), data, segs[0].Concat.Ref)
		}
	}
	return segs, nil
}

// admit is writeTo's third step: n segments of p to the peer pass the rate
// limiter, the loop guard and the daily budgets, in that order; it returns
// the budget day they were charged to.
func (b *Bearer) admit(to Addr, p []byte, n int) (string, error) {
	now := b.now()
	if ok, wait, err := b.lim.Take(to.String(), n, now); err != nil {
		return "", err
	} else if !ok {
		b.c.rateRejected.Add(1)
		return "", &RateError{Peer: to.String(), RetryAfter: wait}
	}
	if count, loop := b.guard.check(to, false, p, now); loop {
		b.c.loopRefused.Add(1)
		b.loopAlert(LoopAlert{Peer: to.String(), Count: count, Window: b.guard.window})
		return "", &LoopError{Peer: to.String(), Count: count, Window: b.guard.window}
	}
	day := now.UTC().Format(time.DateOnly)
	if err := b.charge(day, to.String(), n); err != nil {
		return "", err
	}
	return day, nil
}

// charge takes n segments for peer from the budgets of day and raises the
// budget alerts: exhausted when a budget refuses them, warned when they
// cross a budget's warning ratio.
func (b *Bearer) charge(day, peer string, n int) error {
	dev, dep, err := b.spend(day, peer, n)
	if err != nil {
		var be *BudgetError
		if errors.As(err, &be) {
			b.c.budgetRejected.Add(1)
			if b.budget.once(day, be.Scope+"|"+peer+"|exhausted") {
				b.budgetAlert(BudgetAlert{Scope: be.Scope, Peer: peer, Used: be.Used, Limit: be.Limit, Exhausted: true})
			}
		}
		return err
	}
	if b.budget.crossed(dev-n, dev, limitOf(b.cfg.DailyBudgetPerDevice)) && b.budget.once(day, "device|"+peer) {
		b.budgetAlert(BudgetAlert{Scope: "device", Peer: peer, Used: dev, Limit: limitOf(b.cfg.DailyBudgetPerDevice)})
	}
	if b.budget.crossed(dep-n, dep, limitOf(b.cfg.DailyBudget)) && b.budget.once(day, "deployment|") {
		b.budgetAlert(BudgetAlert{Scope: "deployment", Peer: peer, Used: dep, Limit: limitOf(b.cfg.DailyBudget)})
	}
	return nil
}

func toAddr(addr net.Addr, parse func(string) (Addr, error)) (Addr, error) {
	switch a := addr.(type) {
	case Addr:
		if a.IsZero() {
			return a, fmt.Errorf("%w: zero address", ErrInvalidNumber)
		}
		return a, nil
	case *Addr:
		if a == nil || a.IsZero() {
			return Addr{}, fmt.Errorf("%w: zero address", ErrInvalidNumber)
		}
		return *a, nil
	case nil:
		return Addr{}, fmt.Errorf("%w: nil address", ErrInvalidNumber)
	}
	if addr.Network() != Network {
		return Addr{}, fmt.Errorf("%w: network %q is not %q", ErrInvalidNumber, addr.Network(), Network)
	}
	return parse(addr.String())
}

func (b *Bearer) opErr(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: Network, Addr: addr, Err: err}
}

// ReadFrom returns the next complete datagram and the peer that sent it.
// Both raw CoAP and WAP-Push-framed triggers are returned with the framing
// removed (see ReadFromForm to learn which).
func (b *Bearer) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, _, err := b.ReadFromForm(p)
	if err != nil {
		return n, nil, err
	}
	return n, a, nil
}

// ReadFromForm is ReadFrom that also says how the datagram was framed.
func (b *Bearer) ReadFromForm(p []byte) (int, Addr, pdu.TriggerForm, error) {
	if b.ctx == nil {
		return 0, Addr{}, 0, b.opErr("read", nil, ErrNotCreated)
	}
	select {
	case r := <-b.readq:
		n := copy(p, r.data)
		if n < len(r.data) {
			return n, r.from, r.form, b.opErr("read", r.from, io.ErrShortBuffer)
		}
		return n, r.from, r.form, nil
	case <-b.ctx.Done():
		return 0, Addr{}, 0, b.opErr("read", nil, net.ErrClosed)
	case <-b.rdeadline.Wait():
		return 0, Addr{}, 0, b.opErr("read", nil, os.ErrDeadlineExceeded)
	}
}

// SetDeadline sets the read deadline (writes do not block on the network).
func (b *Bearer) SetDeadline(t time.Time) error { return b.SetReadDeadline(t) }

// SetReadDeadline sets the deadline for ReadFrom.
func (b *Bearer) SetReadDeadline(t time.Time) error {
	if b.rdeadline == nil {
		return b.opErr("set deadline", nil, ErrNotCreated)
	}
	b.rdeadline.Set(t)
	return nil
}

// SetWriteDeadline is accepted and ignored: WriteTo waits only for a local
// fsync.
func (b *Bearer) SetWriteDeadline(time.Time) error { return nil }

// Close stops the receive loop and the outbox worker and closes the state
// files. Stored datagrams stay in the outbox and go out after the next New.
func (b *Bearer) Close() error {
	if b.cancel == nil { // a zero Bearer: nothing runs
		return nil
	}
	b.closeOnce.Do(func() {
		b.cancel()
		b.wg.Wait()
		b.closeErr = errors.Join(b.ob.Close(), b.st.close())
	})
	return b.closeErr
}

// Stats returns the bearer's counters.
func (b *Bearer) Stats() Stats {
	if b.ob == nil { // a zero Bearer
		return Stats{}
	}
	b.peersMu.RLock()
	np := len(b.peers)
	b.peersMu.RUnlock()
	return Stats{
		HeldForRestart: b.c.heldForRestart.Load(),

		DatagramsSent: b.c.datagramsSent.Load(), SegmentsQueued: b.c.segmentsQueued.Load(),
		DatagramsReceived: b.c.datagramsReceived.Load(), SegmentsReceived: b.c.segmentsReceived.Load(),
		StatusReports: b.c.statusReports.Load(), DroppedUnknownPeer: b.c.droppedUnknownPeer.Load(),
		DroppedUndecodable: b.c.droppedUndecodable.Load(), DroppedNotBinary: b.c.droppedNotBinary.Load(),
		DroppedSecurity: b.c.droppedSecurity.Load(), DroppedBadFraming: b.c.droppedBadFraming.Load(),
		ReassemblyDropped: b.c.reassemblyDropped.Load(), BudgetRejected: b.c.budgetRejected.Load(),
		RateRejected: b.c.rateRejected.Load(), SendFailures: b.c.sendFailures.Load(),
		SendExpired: b.c.sendExpired.Load(), Delivered: b.c.delivered.Load(),
		WAPPushReceived: b.c.wapPushReceived.Load(), Repeats: b.c.repeats.Load(),
		LoopRefused: b.c.loopRefused.Load(), DroppedLoop: b.c.loopDropped.Load(), BudgetAlerts: b.c.budgetAlerts.Load(),
		Outbox: b.ob.Stats(), Reassembly: b.reasm.Stats(), Peers: np, PendingRead: len(b.readq),
	}
}

// Backlog returns how many datagrams written to addr still wait in the
// outbox for a modem to send them (bearer.Backlogger): the message layer's
// RFC 9177 timers do not run out on blocks that have not left yet.
func (b *Bearer) Backlog(addr net.Addr) int {
	to, err := toAddr(addr, b.parse)
	if err != nil {
		return 0
	}
	return b.ob.PendingTo(to.String())
}

var _ bearer.Backlogger = (*Bearer)(nil)

// LastHeard returns when an SMS segment from addr last arrived, whether
// or not it completed a datagram (bearer.PeerActivity: an answer on its
// way whose blocks are not whole yet counts). The zero time: none since
// the bearer started.
func (b *Bearer) LastHeard(addr net.Addr) time.Time {
	if b == nil || b.ob == nil {
		return time.Time{}
	}
	a, err := toAddr(addr, b.parse)
	if err != nil {
		return time.Time{}
	}
	return b.usage.lastHeard(a)
}

var _ bearer.PeerActivity = (*Bearer)(nil)

// BudgetUsed returns the SMS segments spent today for peer ("" for the
// whole deployment).
func (b *Bearer) BudgetUsed(peer string) (int, error) {
	if b.st == nil {
		return 0, ErrNotCreated
	}
	who := deploymentKey
	if peer != "" {
		a, err := b.parse(peer)
		if err != nil {
			return 0, err
		}
		who = a.String()
	}
	return b.st.used(b.now().UTC().Format(time.DateOnly), who), nil
}

func (b *Bearer) budgetAlert(a BudgetAlert) {
	b.c.budgetAlerts.Add(1)
	b.log.Warn("sms: daily budget", "scope", a.Scope, "peer", a.Peer, "used", a.Used, "limit", a.Limit, "exhausted", a.Exhausted)
	if b.cfg.OnBudget != nil {
		b.cfg.OnBudget(a)
	}
}

func (b *Bearer) loopAlert(a LoopAlert) {
	if a.Count == b.guard.max+1 || a.Count%b.guard.max == 0 {
		b.log.Warn("sms: loop of identical SMS refused", "peer", a.Peer, "received", a.Received, "count", a.Count, "window", a.Window)
	}
	if b.cfg.OnLoop != nil {
		b.cfg.OnLoop(a)
	}
}

func (b *Bearer) onResult(r outbox.Result) {
	switch r.Outcome {
	case outbox.Failed:
		b.c.sendFailures.Add(1)
	case outbox.Expired:
		b.c.sendExpired.Add(1)
	case outbox.DeliveredOutcome:
		b.c.delivered.Add(1)
	}
	if r.Err != nil {
		b.log.Warn("sms: datagram not delivered", "to", r.Entry.To, "outcome", r.Outcome.String(), "err", r.Err)
	}
	if b.cfg.OnResult != nil {
		b.cfg.OnResult(r)
	}
}
