package modem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/modem/at"
)

// Config describes one modem.
type Config struct {
	// Device is the serial device path (/dev/ttyUSB2, a pty slave path).
	// It is used by the default dialer; WithDialer replaces it.
	Device string
	// Baud is the serial speed (default 115200).
	Baud int
	// PIN is the SIM PIN, sent when +CPIN? asks for it.
	PIN string
	// MSISDN is the SIM's own number (E.164 with '+'). When empty, +CNUM is
	// asked; many SIMs do not store it, so configure it for real use.
	MSISDN string
	// Profile names a built-in profile; empty means detect from +CGMI/+CGMM.
	// WithProfile gives a custom one.
	Profile string
	// SMSC, when set, is put in front of every submitted TPDU; empty uses
	// the SMSC stored on the SIM.
	SMSC string
	// HealthInterval is the period of the health poll (+CSQ, +CREG, +CPMS
	// and a sweep when storage holds messages we were not told about).
	// 0 means 30 s; negative disables the poll.
	HealthInterval time.Duration
	// ReconnectMin and ReconnectMax bound the re-open backoff (defaults 1 s
	// and 30 s, or ReconnectMin when that is longer); a negative value or
	// a ReconnectMax below ReconnectMin makes Open fail with
	// ErrInvalidOption.
	ReconnectMin, ReconnectMax time.Duration
	// TimeoutStorm is the number of consecutive command timeouts after which
	// the link is considered hung and re-opened (default 3). Here and in
	// InboxSize and EventsSize, 0 takes the default and a negative value
	// makes Open fail with ErrInvalidOption.
	TimeoutStorm int
	// InboxSize bounds the queue of received messages not yet taken by the
	// consumer (default 64). A full inbox holds the URC worker back; stored
	// messages stay on the SIM, direct ones are not acknowledged.
	InboxSize int
	// EventsSize bounds the event queue (default 64); events that do not fit
	// are dropped and counted.
	EventsSize int
}

// Dialer opens the byte stream to a modem. It is called at Open and on
// every re-open after a link loss.
type Dialer func(ctx context.Context) (io.ReadWriteCloser, error)

// Option configures a Modem.
type Option func(*Modem)

// WithDialer replaces the serial-port dialer (for pipes and simulators).
func WithDialer(d Dialer) Option { return func(m *Modem) { m.dial = d } }

// WithLogger sets the logger (default: none, a discard logger).
func WithLogger(l *slog.Logger) Option { return func(m *Modem) { m.log = l } }

// WithTrace logs every line to and from the modem at debug level.
func WithTrace() Option { return func(m *Modem) { m.trace = true } }

// WithProfile forces a profile (overrides Config.Profile and detection).
func WithProfile(p Profile) Option { return func(m *Modem) { m.forced = &p } }

// WithMetrics sets the metrics hook.
func WithMetrics(mt Metrics) Option { return func(m *Modem) { m.metrics = mt } }

// Identity is what a modem says about itself.
type Identity struct {
	Manufacturer string // +CGMI
	Model        string // +CGMM
	Revision     string // +CGMR (firmware)
	IMEI         string // +CGSN
	IMSI         string // +CIMI
	MSISDN       string // Config.MSISDN or +CNUM
	SMSC         string // the SIM's SMSC address (+CSCA?), when the modem says
	Profile      string // the profile in use
}

// Health is the result of a health poll.
//
// The zero Health is that of a modem never polled: not connected, not
// registered, not OK.
type Health struct {
	Connected bool
	Signal    Signal
	CSReg     Registration // +CREG
	EPSReg    Registration // +CEREG (Stat RegUnknown when unsupported)
	Storage   []StorageUse // +CPMS?
	Time      time.Time
	Err       error // why the poll failed, if it did (timeout, lost link)
	// Degraded lists what the poll could not read although the modem
	// answered (an unparseable +CPMS, a refused +CSQ): the rest of the
	// result stands.
	Degraded []string
}

// Registered reports whether the modem is registered on any domain that
// carries SMS.
func (h Health) Registered() bool { return h.CSReg.Stat.Registered() || h.EPSReg.Stat.Registered() }

// OK reports whether the modem can send now: connected and registered.
func (h Health) OK() bool { return h.Connected && h.Err == nil && h.Registered() }

// Stats are cumulative counters of one modem.
type Stats struct {
	Sent, SendErrors           uint64
	Received, StatusReports    uint64
	Acked, Rejected            uint64
	Reconnects                 uint64
	DroppedEvents, DroppedURCs uint64
	BadInput                   uint64
	Quarantined                uint64 // messages put in the quarantine (then deleted or acknowledged)
	LengthMismatches           uint64 // PDUs used although their <length> was wrong
}

type session struct {
	e    *at.Engine
	port io.Closer
	gen  uint64
}

// Modem is one AT-command cellular modem with one SIM. It is safe for
// concurrent use. Commands are serialised by the at engine; URCs are
// handled by one worker goroutine; a supervisor goroutine re-opens the link
// when it is lost. Close stops them all.
//
// The zero Modem is not usable: use Open or New. Its commands fail with
// ErrNotCreated, it is never connected, and Close does nothing.
type Modem struct {
	cfg     Config
	dial    Dialer
	log     *slog.Logger
	trace   bool
	forced  *Profile
	metrics Metrics
	quar    Quarantine

	mu   sync.Mutex
	sess *session
	gen  uint64
	// liveCh is closed when the session of generation gen goes live or
	// fails (failedGen); URCs of a session being set up wait for it.
	liveCh    chan struct{}
	failedGen uint64
	id        Identity
	profile   Profile
	health    Health
	// pending holds the stored messages handed to the consumer and not yet
	// acknowledged or rejected; the value records that the slot was
	// announced (+CMTI/+CDSI) or listed again meanwhile, so that it is read
	// again once released (see unpend).
	pending map[storeKey]bool
	recheck map[storeKey]struct{} // released slots the URC worker reads again
	stores  map[string]bool       // storages seen in +CMTI/+CDSI besides the preferred one
	// stuck records slots whose message can be neither delivered nor
	// quarantined (bounded), so that each is reported once, not at every
	// sweep.
	stuck map[storeKey]string

	memMu sync.Mutex // serialises +CPMS switching around +CMGR/+CMGD

	inbox   chan *Received
	events  chan Event
	urcs    chan urc
	kick    chan struct{}
	reread  chan struct{} // wakes the URC worker for recheck
	closing chan struct{}
	life    context.Context // cancelled by Close
	endLife context.CancelFunc
	closeMu sync.Once
	wg      sync.WaitGroup

	timeouts atomic.Int32
	everUp   atomic.Bool
	st       struct {
		sent, sendErr, recv, sr, acked, rejected, reconn, dropEv, dropURC, bad, quar, mismatch atomic.Uint64
	}
}

type storeKey struct {
	mem string
	idx int
}

type urc struct {
	gen   uint64
	lines []string
}

// Open opens the modem named by cfg (its serial device, or WithDialer),
// initialises it, reads its identity, sweeps the messages already stored and
// starts the supervisor, the URC worker and the health poll. The returned
// Modem re-opens the link by itself after a loss until Close.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Modem, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, fmt.Errorf("modem: Open: %w", err)
	}
	m := &Modem{cfg: cfg, metrics: nopMetrics{}}
	for _, o := range opts {
		o(m)
	}
	m.defaults()
	if m.dial == nil {
		if cfg.Device == "" {
			m.endLife()
			return nil, errors.New("modem: Config.Device is empty and no WithDialer given")
		}
		dev, baud := cfg.Device, m.cfg.Baud
		m.dial = func(context.Context) (io.ReadWriteCloser, error) {
			p, err := openSerial(dev, baud)
			if err != nil {
				return nil, fmt.Errorf("modem: open %s: %w", dev, err)
			}
			return p, nil
		}
	}
	if err := m.connect(ctx); err != nil {
		m.endLife()
		return nil, err
	}
	m.wg.Add(2)
	go m.supervise()
	go m.urcWorker()
	if m.cfg.HealthInterval > 0 {
		m.wg.Add(1)
		go m.healthLoop()
	}
	return m, nil
}

// New is Open over an already open stream (a pipe or a pty). The stream is
// used once; after a link loss the modem stays disconnected unless a
// WithDialer option is also given.
func New(ctx context.Context, rw io.ReadWriteCloser, cfg Config, opts ...Option) (*Modem, error) {
	var used atomic.Bool
	d := func(context.Context) (io.ReadWriteCloser, error) {
		if used.Swap(true) {
			return nil, ErrNotConnected
		}
		return rw, nil
	}
	return Open(ctx, cfg, append([]Option{WithDialer(d)}, opts...)...)
}

// checkConfig refuses the Config values that used to be corrected
// silently: negative sizes and backoff bounds, ReconnectMax below
// ReconnectMin.
func checkConfig(c Config) error {
	switch {
	case c.Baud < 0, c.ReconnectMin < 0, c.ReconnectMax < 0, c.TimeoutStorm < 0, c.InboxSize < 0, c.EventsSize < 0:
		return fmt.Errorf("%w: negative Baud, ReconnectMin, ReconnectMax, TimeoutStorm, InboxSize or EventsSize", ErrInvalidOption)
	case c.ReconnectMax != 0 && c.ReconnectMax < c.ReconnectMin:
		return fmt.Errorf("%w: ReconnectMax %v below ReconnectMin %v", ErrInvalidOption, c.ReconnectMax, c.ReconnectMin)
	}
	return nil
}

func (m *Modem) defaults() {
	c := &m.cfg
	if c.Baud == 0 {
		c.Baud = 115200
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 30 * time.Second
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = time.Second
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(30*time.Second, c.ReconnectMin)
	}
	if c.TimeoutStorm == 0 {
		c.TimeoutStorm = 3
	}
	if c.InboxSize == 0 {
		c.InboxSize = 64
	}
	if c.EventsSize == 0 {
		c.EventsSize = 64
	}
	m.inbox = make(chan *Received, c.InboxSize)
	m.events = make(chan Event, c.EventsSize)
	m.urcs = make(chan urc, 256)
	m.kick = make(chan struct{}, 1)
	m.closing = make(chan struct{})
	m.life, m.endLife = context.WithCancel(context.Background())
	m.pending = make(map[storeKey]bool)
	m.recheck = make(map[storeKey]struct{})
	m.reread = make(chan struct{}, 1)
	m.stores = make(map[string]bool)
	m.stuck = make(map[storeKey]string)
	m.profile = mustProfile("generic")
	if m.forced != nil {
		m.profile = *m.forced
	} else if p, ok := ProfileByName(c.Profile); ok {
		m.profile = p
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.metrics == nil {
		m.metrics = nopMetrics{}
	}
}

// Name is the modem's MSISDN when known, else its device.
func (m *Modem) Name() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.id.MSISDN != "" {
		return m.id.MSISDN
	}
	if m.cfg.Device != "" {
		return m.cfg.Device
	}
	return "modem"
}

// MSISDN is the SIM's number (Config.MSISDN or +CNUM), possibly empty.
func (m *Modem) MSISDN() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id.MSISDN
}

// Identity returns what the modem said about itself at the last open.
func (m *Modem) Identity() Identity {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

// Profile returns the profile in use.
func (m *Modem) Profile() Profile {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.profile
}

// Connected reports whether the link is up.
func (m *Modem) Connected() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sess != nil
}

// Ready reports whether the modem can take a send: connected and, if a
// health poll has run, registered.
func (m *Modem) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sess == nil {
		return false
	}
	if m.health.Time.IsZero() || m.health.Err != nil {
		return true // no poll yet, or a poll failed for a transient reason: let a send try
	}
	return m.health.Registered()
}

// LastHealth returns the result of the last health poll.
func (m *Modem) LastHealth() Health {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.health
	h.Connected = m.sess != nil
	return h
}

// Received returns the channel of received messages and status reports.
// Each must be acknowledged with Ack after the consumer stored it, or
// given back with Reject.
func (m *Modem) Received() <-chan *Received { return m.inbox }

// Events returns the bounded event channel.
func (m *Modem) Events() <-chan Event { return m.events }

// Stats returns the counters.
func (m *Modem) Stats() Stats {
	return Stats{
		Sent: m.st.sent.Load(), SendErrors: m.st.sendErr.Load(),
		Received: m.st.recv.Load(), StatusReports: m.st.sr.Load(),
		Acked: m.st.acked.Load(), Rejected: m.st.rejected.Load(),
		Reconnects: m.st.reconn.Load(), DroppedEvents: m.st.dropEv.Load(),
		DroppedURCs: m.st.dropURC.Load(), BadInput: m.st.bad.Load(),
		Quarantined: m.st.quar.Load(), LengthMismatches: m.st.mismatch.Load(),
	}
}

// Close stops the modem's goroutines and closes the link. Messages in the
// inbox that were not acknowledged stay stored in the modem (or, for direct
// deliveries, are redelivered by the network).
func (m *Modem) Close() error {
	if m.closing == nil { // a zero Modem: nothing runs
		return nil
	}
	m.closeMu.Do(func() {
		close(m.closing)
		m.endLife()
		m.mu.Lock()
		s := m.sess
		m.sess = nil
		m.mu.Unlock()
		if s != nil {
			_ = s.port.Close()
			s.waitReader()
		}
	})
	m.wg.Wait()
	return nil
}

func (m *Modem) isClosing() bool {
	select {
	case <-m.closing:
		return true
	default:
		return false
	}
}

func (m *Modem) emit(t EventType, err error, detail string) {
	ev := Event{Time: time.Now(), Modem: m.Name(), Type: t, Err: err, Detail: detail}
	m.metrics.Event(ev.Modem, t)
	switch t {
	case EventBadInput:
		m.st.bad.Add(1)
	case EventQuarantined:
		m.st.quar.Add(1)
	case EventLengthMismatch:
		m.st.mismatch.Add(1)
	}
	select {
	case m.events <- ev:
	default:
		m.st.dropEv.Add(1)
	}
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelWarn
	}
	if t != EventHealth {
		m.log.Log(context.Background(), lvl, "modem event", "modem", ev.Modem, "event", t.String(), "detail", detail, "err", err)
	}
}

// current returns the live session or ErrNotConnected / ErrClosed
// (ErrNotCreated for a zero Modem).
func (m *Modem) current() (*session, error) {
	if m.closing == nil {
		return nil, ErrNotCreated
	}
	if m.isClosing() {
		return nil, ErrClosed
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sess == nil {
		return nil, ErrNotConnected
	}
	return m.sess, nil
}

// Command sends one AT command (without the "AT" prefix) and returns its
// information lines: every line but URCs and the final result code. It is
// the escape hatch for diagnostics and lab tests.
func (m *Modem) Command(ctx context.Context, cmd string) ([]string, error) {
	s, err := m.current()
	if err != nil {
		return nil, err
	}
	return m.run(ctx, s, atRequest{cmd: cmd, timeout: m.Profile().CommandTimeout}, at.WithShape(at.ShapeText))
}

// shapeOf returns which lines belong to the answer of a driver command:
// the PDU lines for +CMGR/+CMGL, bare text for the identity commands, only
// the command's own prefixed lines for the rest.
func shapeOf(cmd string) at.Shape {
	if cmd == "" || !strings.ContainsRune("+^*#%$!", rune(cmd[0])) {
		return at.ShapeText // a basic command (I, I4): bare text
	}
	switch cmdName(cmd) {
	case "+CMGR", "+CMGL":
		return at.ShapePDU
	case "+CGMI", "+CGMM", "+CGMR", "+CGSN", "+CIMI", "+GMI", "+GMM", "+GMR", "+GSN", "I":
		return at.ShapeText
	}
	return at.ShapePrefixed
}

// atRequest is one AT command: the command line without "AT", the PDU
// line that follows its prompt (+CMGS; "" for none), and its timeout (<= 0:
// 5 s).
type atRequest struct {
	cmd, pdu string
	timeout  time.Duration
}

// exec runs one driver command on session s, bounded by timeout and ctx.
func (m *Modem) exec(ctx context.Context, s *session, cmd string, timeout time.Duration, opts ...at.Option) ([]string, error) {
	return m.execRequest(ctx, s, atRequest{cmd: cmd, timeout: timeout}, opts...)
}

// execRequest is exec for a request that may carry a PDU line.
func (m *Modem) execRequest(ctx context.Context, s *session, r atRequest, opts ...at.Option) ([]string, error) {
	return m.run(ctx, s, r, append([]at.Option{at.WithShape(shapeOf(r.cmd))}, opts...)...)
}

// run runs one command; see exec. When ctx ends first it returns ctx.Err()
// at once; the engine keeps the command until its answer or timeout.
func (m *Modem) run(ctx context.Context, s *session, r atRequest, opts ...at.Option) ([]string, error) {
	cmd, pdu, timeout := r.cmd, r.pdu, r.timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	opts = append(opts, at.WithTimeout(timeout))
	start := time.Now()
	var info []string
	var err error
	if pdu == "" {
		info, err = s.e.Exec(ctx, cmd, opts...)
	} else {
		info, err = s.e.Send(ctx, cmd, pdu, opts...)
	}
	if ctx.Err() != nil && err != nil && errors.Is(err, ctx.Err()) {
		return nil, err
	}
	err = mapEngineError(err)
	m.metrics.Command(m.Name(), cmdName(cmd), time.Since(start), err)
	switch {
	case errors.Is(err, ErrTimeout):
		if int(m.timeouts.Add(1)) >= m.cfg.TimeoutStorm {
			select {
			case m.kick <- struct{}{}:
			default:
			}
		}
	case err == nil || errors.As(err, new(*CMSError)) || errors.As(err, new(*CMEError)) || errors.Is(err, ErrATError):
		m.timeouts.Store(0) // the modem answered
	}
	if err != nil {
		if m.trace {
			m.log.Debug("AT error", "cmd", cmd, "err", err)
		}
		return info, fmt.Errorf("AT%s: %w", cmdName(cmd), err)
	}
	return info, nil
}

func cmdName(cmd string) string {
	if i := strings.IndexAny(cmd, "=?"); i >= 0 {
		return cmd[:i]
	}
	return cmd
}

// SendPDU sends one SMS-SUBMIT TPDU (binary, without SMSC address) with
// +CMGS and returns the TP-Message-Reference the modem assigned. Errors
// are typed: *CMSError (see Retryable), ErrTimeout, ErrLinkLost,
// ErrNotConnected, ErrBadPDU.
func (m *Modem) SendPDU(ctx context.Context, tpdu []byte) (int, error) {
	line, err := EncodeSubmitLine(m.cfg.SMSC, tpdu)
	if err != nil {
		return 0, err
	}
	s, err := m.current()
	if err != nil {
		m.st.sendErr.Add(1)
		return 0, err
	}
	info, err := m.execRequest(ctx, s, atRequest{cmd: fmt.Sprintf("+CMGS=%d", len(tpdu)), pdu: line, timeout: m.Profile().SendTimeout})
	if err != nil {
		m.st.sendErr.Add(1)
		return 0, err
	}
	for _, l := range info {
		if strings.HasPrefix(l, "+CMGS:") {
			mr, perr := ParseCMGS(l)
			if perr != nil {
				m.st.sendErr.Add(1)
				return 0, perr
			}
			m.st.sent.Add(1)
			return mr, nil
		}
	}
	// An OK without +CMGS: was the answer to something else (a late answer
	// still on the line): the answers are out of step with the commands,
	// and the modem may be sitting at this command's "> " prompt, where it
	// would take the next command line as PDU text. ESC cancels the prompt
	// (TS 27.005 §3.5.1); its own answer and the rest of the late ones are
	// drained while the line goes quiet.
	_ = s.e.Escape(ctx)
	m.st.sendErr.Add(1)
	return 0, fmt.Errorf("%w: +CMGS gave OK without a message reference", ErrBadResponse)
}

// Health polls signal, registration and storage now, records and returns
// the result.
func (m *Modem) Health(ctx context.Context) (Health, error) {
	h := Health{Time: time.Now(), EPSReg: Registration{Stat: RegUnknown, AcT: -1}, CSReg: Registration{Stat: RegUnknown, AcT: -1}}
	s, err := m.current()
	if err != nil {
		h.Err = err
		m.setHealth(h)
		return h, err
	}
	h.Connected = true
	err = m.poll(ctx, s, &h)
	h.Err = err
	m.setHealth(h)
	return h, err
}

func (m *Modem) setHealth(h Health) {
	m.mu.Lock()
	m.health = h
	m.mu.Unlock()
}

// poll reads signal, registration and storage. A command the modem
// refuses or an answer the parsers cannot read degrades that part of the
// result (h.Degraded) and the poll goes on; a timeout, a lost link or an
// ended context stops it.
func (m *Modem) poll(ctx context.Context, s *session, h *Health) error {
	to := m.Profile().CommandTimeout
	fatal := func(err error) bool {
		return ctx.Err() != nil || errors.Is(err, ErrLinkLost) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrNotConnected)
	}
	degrade := func(what string, err error) {
		h.Degraded = append(h.Degraded, what+": "+err.Error())
		if errors.Is(err, ErrBadResponse) {
			m.emit(EventBadInput, err, what)
		}
	}
	step := func(cmd, prefix string, parse func(string) error) error {
		info, err := m.exec(ctx, s, cmd, to)
		if err != nil {
			if fatal(err) {
				return err
			}
			degrade(cmd, err)
			return nil
		}
		var perr error
		found := false
		for _, l := range info {
			if !strings.HasPrefix(l, prefix) {
				continue
			}
			found = true
			if perr = parse(l); perr == nil {
				return nil
			}
		}
		if perr != nil {
			degrade(cmd, perr)
		} else if !found {
			degrade(cmd, fmt.Errorf("%w: no %s line", ErrBadResponse, prefix))
		}
		return nil
	}
	if err := step("+CSQ", "+CSQ:", func(l string) (err error) { h.Signal, err = ParseCSQ(l); return }); err != nil {
		return err
	}
	if err := step("+CREG?", "+CREG:", func(l string) (err error) { h.CSReg, err = ParseCREG(l, true); return }); err != nil {
		return err
	}
	// +CEREG? is refused by 2G modems: not a degradation.
	if info, err := m.exec(ctx, s, "+CEREG?", to); err == nil {
		for _, l := range info {
			if r, perr := ParseCREG(l, true); perr == nil && strings.HasPrefix(l, "+CEREG:") {
				h.EPSReg = r
				break
			}
		}
	} else if fatal(err) {
		return err
	}
	return step("+CPMS?", "+CPMS:", func(l string) (err error) { h.Storage, err = ParseCPMS(l); return })
}

// findPrefix returns the first line with the prefix.
func findPrefix(info []string, prefix string) (string, bool) {
	for _, l := range info {
		if strings.HasPrefix(l, prefix) {
			return l, true
		}
	}
	return "", false
}

// plainInfo returns the first information line of a command such as +CGMI
// that answers with bare text, with an optional "+CGMI:" prefix removed.
func plainInfo(info []string, cmd string) string {
	for _, l := range info {
		l = strings.TrimSpace(l)
		if l == "" || at.IsUnsolicited(l, allURCs()) {
			continue
		}
		if strings.HasPrefix(l, cmd+":") {
			l = strings.TrimSpace(l[len(cmd)+1:])
		}
		if cmd == "+CGMR" && strings.HasPrefix(l, "Revision:") { // SIMCom
			l = strings.TrimSpace(l[len("Revision:"):])
		}
		return strings.TrimSpace(strings.Trim(l, `"`))
	}
	return ""
}
