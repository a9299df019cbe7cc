package modem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/backoff"
	"github.com/m2mbearer/m2mbearer/modem/at"
)

// connect dials, initialises and sweeps; on success the session is live.
func (m *Modem) connect(ctx context.Context) error {
	port, err := m.dial(ctx)
	if err != nil {
		return fmt.Errorf("modem: dial: %w", err)
	}
	var rw io.ReadWriter = port
	if m.trace {
		rw = &traceRW{rw: port, log: m.log, name: m.cfg.Device}
	}
	m.mu.Lock()
	m.gen++
	gen := m.gen
	live := make(chan struct{})
	m.liveCh = live
	m.mu.Unlock()
	fail := func() {
		m.mu.Lock()
		m.failedGen = gen
		m.mu.Unlock()
		close(live)
	}
	to := m.Profile().CommandTimeout
	if to <= 0 {
		to = 5 * time.Second
	}
	e, err := at.New(rw, at.Config{
		Dialect: dialectOf(m.Profile()), Timeout: to, Quiet: syncQuiet, QuietMax: syncQuietMax,
		OnUnsolicited: func(lines []string) { m.queueURC(gen, lines) },
		OnDropped: func(what, line string) {
			m.emit(EventBadInput, fmt.Errorf("%w: %s", ErrBadResponse, what), clip(line))
		},
	})
	if err != nil { // a Profile timeout out of range
		_ = port.Close()
		fail()
		return fmt.Errorf("modem: %w", err)
	}
	s := &session{e: e, port: port, gen: gen}
	if err := m.setup(ctx, s); err != nil {
		_ = port.Close()
		s.waitReader()
		fail()
		return err
	}
	m.mu.Lock()
	if m.isClosing() {
		m.mu.Unlock()
		_ = port.Close()
		s.waitReader()
		fail()
		return ErrClosed
	}
	m.sess = s
	m.mu.Unlock()
	close(live)
	if m.everUp.Swap(true) {
		m.st.reconn.Add(1)
	}
	m.timeouts.Store(0)
	m.emit(EventConnected, nil, m.Identity().Model)
	if err := m.Sweep(ctx); err != nil && !errors.Is(err, context.Canceled) {
		m.log.Warn("modem: sweep after open failed", "modem", m.Name(), "err", err)
	}
	return nil
}

// readerGrace bounds the wait for the engine's reader after the port was
// closed: a Dialer's stream whose Close does not end a pending Read must
// not hang Close or the supervisor.
const readerGrace = 2 * time.Second

// waitReader waits (bounded) until the engine's reader has returned after
// the port was closed.
func (s *session) waitReader() {
	t := time.NewTimer(readerGrace)
	defer t.Stop()
	select {
	case <-s.e.Done():
	case <-t.C:
	}
}

// errOutOfStep reports an answer without the information line its command
// always returns (TS 27.007 +CPIN?, TS 27.005 +CSMS= and +CPMS=): it was the
// answer to an earlier command.
var errOutOfStep = errors.New("answers out of step with the commands")

const (
	// syncAttempts bounds the init sequences run on one session when the
	// answers are found out of step; the last one no longer insists on the
	// information lines (a modem that leaves one out still opens).
	syncAttempts = 3
	// syncQuiet is how long the port must stay silent before the channel
	// is taken as drained; syncQuietMax bounds the wait on a chatty port.
	syncQuiet    = 200 * time.Millisecond
	syncQuietMax = 2 * time.Second
)

// setup runs the init sequence on a new session. The port may still carry
// the late answer to a command of an earlier session (the host process was
// killed during a +CMGS, the USB device re-enumerated): the at engine would
// take it as the answer to ATZ, and every later command would get the
// answer of the one before it (+CGMM the manufacturer, +CMGL the OK of
// +CNMI, +CMGS a listing and no message reference). The answers that must
// carry an information line are checked; when one does not, setup waits
// until the port is quiet (the at engine drops lines while no command
// runs) and runs the init sequence again, at most syncAttempts times.
func (m *Modem) setup(ctx context.Context, s *session) error {
	for attempt := 1; ; attempt++ {
		strict := attempt < syncAttempts
		err := m.setupOnce(ctx, s, strict)
		if err == nil || !strict || ctx.Err() != nil || !resyncable(err) {
			return err
		}
		m.log.Warn("modem: answers out of step at open (a late answer on the line?); initialising again once the port is quiet",
			"modem", m.Name(), "attempt", attempt, "err", err)
		if err := s.e.WaitQuiet(ctx, syncQuiet, syncQuietMax); err != nil {
			return err
		}
	}
}

// resyncable reports whether a failed init sequence may have been misled
// by a late answer: an answer without its information line, or an error
// result that may have belonged to an earlier command. A wrong PIN is not
// retried (each try costs one of the SIM's attempts), nor are timeouts,
// a lost link or a cancelled context.
func resyncable(err error) bool {
	if errors.Is(err, errOutOfStep) {
		return true
	}
	if errors.Is(err, ErrSIMPIN) {
		return false
	}
	var cms *CMSError
	var cme *CMEError
	return errors.Is(err, ErrATError) || errors.As(err, &cms) || errors.As(err, &cme)
}

// needInfo returns errOutOfStep when strict and no line of info has prefix.
func needInfo(strict bool, cmd string, info []string, prefix string) error {
	if _, ok := findPrefix(info, prefix); ok || !strict {
		return nil
	}
	return fmt.Errorf("modem: init: %w: AT%s answered without %s (got %q)", errOutOfStep, cmd, prefix, info)
}

// cpinGrace is how long AT+CPIN? waits for its OK after the +CPIN line:
// old Wavecom firmware sends none.
const cpinGrace = 500 * time.Millisecond

// setupOnce runs the init sequence once; see setup.
func (m *Modem) setupOnce(ctx context.Context, s *session, strict bool) error {
	to := m.Profile().CommandTimeout
	// ESC CR cancels a "> " prompt left from before (TS 27.005 §3.5.1);
	// its answer, if any, is drained while the line goes quiet.
	if err := s.e.Escape(ctx); err != nil {
		return fmt.Errorf("modem: init: %w", mapEngineError(err))
	}
	run := func(cmd string) ([]string, error) { return m.exec(ctx, s, cmd, to) }
	for _, c := range []string{"Z", "E0"} {
		if _, err := run(c); err != nil {
			return fmt.Errorf("modem: init: %w", err)
		}
	}
	if _, err := run("+CMEE=1"); err != nil {
		return fmt.Errorf("modem: init: %w", err)
	}
	if err := m.unlockSIM(ctx, s, strict); err != nil {
		return err
	}
	id, err := m.identify(ctx, run)
	if err != nil {
		return err
	}
	p := m.adoptProfile(id)
	s.e.SetDialect(dialectOf(p))
	if err := m.setupSMS(ctx, run, p, strict); err != nil {
		return err
	}
	return m.setupStorage(ctx, run, p, strict)
}

// atRun runs one init command on the session being set up.
type atRun func(cmd string) ([]string, error)

// identify reads the modem's identity (each command optional), its
// number (configured, else +CNUM) and its SMSC.
func (m *Modem) identify(ctx context.Context, run atRun) (Identity, error) {
	var id Identity
	for _, q := range []struct {
		cmd string
		dst *string
	}{{"+CGMI", &id.Manufacturer}, {"+CGMM", &id.Model}, {"+CGMR", &id.Revision}, {"+CGSN", &id.IMEI}, {"+CIMI", &id.IMSI}} {
		info, err := run(q.cmd)
		if err != nil {
			if errors.Is(err, ErrLinkLost) || ctx.Err() != nil {
				return id, fmt.Errorf("modem: identity: %w", err)
			}
			continue // optional
		}
		*q.dst = plainInfo(info, q.cmd)
	}
	id.MSISDN = m.cfg.MSISDN
	if id.MSISDN == "" {
		if info, err := run("+CNUM"); err == nil {
			for _, l := range info {
				if n, perr := ParseCNUM(l); perr == nil {
					id.MSISDN = n
					break
				}
			}
		}
	}
	if info, err := run("+CSCA?"); err == nil {
		for _, l := range info {
			if n, perr := ParseCSCA(l); perr == nil {
				id.SMSC = n
				break
			}
		}
	} else if errors.Is(err, ErrLinkLost) || ctx.Err() != nil {
		return id, fmt.Errorf("modem: identity: %w", err)
	}
	return id, nil
}

// adoptProfile chooses the profile (forced, named in the configuration,
// else detected from the identity) and records it with the identity.
func (m *Modem) adoptProfile(id Identity) Profile {
	p := m.Profile()
	if m.forced == nil {
		if named, ok := ProfileByName(m.cfg.Profile); ok {
			p = named
		} else {
			p = DetectProfile(id.Manufacturer, id.Model)
		}
	}
	id.Profile = p.Name
	m.mu.Lock()
	m.id = id
	m.profile = p
	m.mu.Unlock()
	return p
}

// setupSMS selects PDU mode, the message service and the vendor extras.
func (m *Modem) setupSMS(ctx context.Context, run atRun, p Profile, strict bool) error {
	if _, err := run("+CMGF=0"); err != nil {
		return fmt.Errorf("modem: init: %w", err)
	}
	if p.CSMS >= 0 {
		csms := fmt.Sprintf("+CSMS=%d", p.CSMS)
		info, err := run(csms)
		if err != nil {
			return fmt.Errorf("modem: init: %w", err)
		}
		if err := needInfo(strict, csms, info, "+CSMS:"); err != nil {
			return err
		}
	}
	// Vendor extras are best effort: firmware versions differ in what
	// they accept, and none of them is needed for PDU-mode SMS.
	for _, c := range p.Init {
		if _, err := run(c); err != nil {
			if errors.Is(err, ErrLinkLost) || ctx.Err() != nil {
				return fmt.Errorf("modem: init: %w", err)
			}
			m.log.Info("modem: vendor init command refused", "cmd", c, "err", err)
		}
	}
	return nil
}

// setupStorage notes the storages in use, selects the preferred ones and
// turns on new-message indications.
func (m *Modem) setupStorage(ctx context.Context, run atRun, p Profile, strict bool) error {
	// Messages that came before this init are stored where the modem put
	// them at power-up (its saved <mem3>), which may not be the preferred
	// storage: those memories are swept too.
	if info, err := run("+CPMS?"); err == nil {
		for _, l := range info {
			if su, perr := ParseCPMS(l); perr == nil {
				for _, u := range su {
					m.noteStorage(u.Mem, p)
				}
			}
		}
	} else if errors.Is(err, ErrLinkLost) || ctx.Err() != nil {
		return fmt.Errorf("modem: init: %w", err)
	}
	cpms := p.cpmsSet()
	info, err := run(cpms)
	if err != nil {
		return fmt.Errorf("modem: init: %w", err)
	}
	if err := needInfo(strict, cpms, info, "+CPMS:"); err != nil {
		return err
	}
	if _, err := run("+CNMI=" + p.CNMI); err != nil {
		return fmt.Errorf("modem: init: %w", err)
	}
	// A last answer that must carry its line: a late answer that came
	// during +CNMI would otherwise leave the sweep's +CMGL with the OK of
	// +CNMI.
	if info, err = run("+CPMS?"); err != nil {
		if !strict && (ctx.Err() == nil && !errors.Is(err, ErrLinkLost)) {
			return nil
		}
		return fmt.Errorf("modem: init: %w", err)
	}
	return needInfo(strict, "+CPMS?", info, "+CPMS:")
}

// unlockSIM reads the SIM state and gives the PIN when asked for. It
// accepts "+CPIN: READY" without OK (Wavecom) and quoted states
// (+CPIN: "SIM PIN").
func (m *Modem) unlockSIM(ctx context.Context, s *session, strict bool) error {
	to := m.Profile().CommandTimeout
	for attempt := 0; attempt < 10; attempt++ {
		info, err := m.exec(ctx, s, "+CPIN?", to, at.WithEndOnInfo(cpinGrace))
		if err != nil {
			var cme *CMEError
			if errors.As(err, &cme) && cme.Code == 14 { // SIM busy just after power-up
				if werr := backoff.Wait(ctx, 500*time.Millisecond); werr != nil {
					return werr
				}
				continue
			}
			return fmt.Errorf("modem: SIM: %w", err)
		}
		if err := needInfo(strict, "+CPIN?", info, "+CPIN:"); err != nil {
			return err
		}
		l, _ := findPrefix(info, "+CPIN:")
		state := strings.ToUpper(strings.TrimSpace(strings.Trim(strings.TrimSpace(strings.TrimPrefix(l, "+CPIN:")), `"`)))
		switch state {
		case "READY", "":
			return nil
		case "SIM PIN":
			if m.cfg.PIN == "" || attempt > 0 {
				return fmt.Errorf("%w (state %q)", ErrSIMPIN, state)
			}
			if _, err := m.exec(ctx, s, fmt.Sprintf(`+CPIN="%s"`, m.cfg.PIN), to); err != nil {
				return fmt.Errorf("%w: %w", ErrSIMPIN, err)
			}
		default:
			return fmt.Errorf("%w (state %q)", ErrSIMPIN, state)
		}
	}
	return fmt.Errorf("%w: SIM not ready", ErrSIMPIN)
}

// supervise waits for the link to fail and re-opens it with backoff.
func (m *Modem) supervise() {
	defer m.wg.Done()
	ctx := m.life
	for {
		m.mu.Lock()
		s := m.sess
		m.mu.Unlock()
		var reason error
		if s != nil {
			select {
			case <-m.closing:
				return
			case <-s.e.Done():
				reason = fmt.Errorf("%w: port closed (EOF/EIO)", ErrLinkLost)
			case <-m.kick:
				reason = fmt.Errorf("%w: %d consecutive command timeouts", ErrTimeout, m.cfg.TimeoutStorm)
			}
			m.mu.Lock()
			if m.sess == s {
				m.sess = nil
			}
			m.mu.Unlock()
			_ = s.port.Close()
			s.waitReader()
			m.emit(EventDisconnected, reason, "")
		}
		reopen := backoff.Policy{Min: m.cfg.ReconnectMin, Max: m.cfg.ReconnectMax}
		for fails := 0; ; fails++ {
			wait := reopen.Delay(fails)
			if err := backoff.Wait(ctx, wait); err != nil {
				return
			}
			err := m.connect(ctx)
			if err == nil {
				break
			}
			if m.isClosing() {
				return
			}
			m.emit(EventReconnectFailed, err, fmt.Sprintf("retry in %v", wait))
		}
	}
}

// healthLoop polls health, re-arms +CNMI for direct delivery (a modem
// disables routing when a +CMT was not acknowledged in time, TS 27.005
// §3.4.4) and sweeps storage that holds messages nobody announced.
func (m *Modem) healthLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-m.closing:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(m.life, m.cfg.HealthInterval)
		m.healthOnce(ctx)
		cancel()
	}
}

func (m *Modem) healthOnce(ctx context.Context) {
	h, err := m.Health(ctx)
	if err != nil {
		m.emit(EventHealth, err, "poll failed")
		return
	}
	m.emit(EventHealth, nil, fmt.Sprintf("rssi=%d reg=%d/%d", h.Signal.RSSI, h.CSReg.Stat, h.EPSReg.Stat))
	p := m.Profile()
	if p.DirectDelivery() || p.DirectStatusReports() || p.NoStorage {
		if s, err := m.current(); err == nil {
			_, _ = m.exec(ctx, s, "+CNMI="+p.CNMI, p.CommandTimeout)
		}
	}
	used := 0
	for i, su := range h.Storage {
		if i == 0 {
			used = su.Used
		}
		if su.Full() {
			m.emit(EventStorageFull, ErrStorageFull, fmt.Sprintf("%s %d/%d", su.Mem, su.Used, su.Total))
		}
	}
	m.mu.Lock()
	npend := len(m.pending)
	m.mu.Unlock()
	if used > npend {
		if err := m.Sweep(ctx); err != nil {
			m.log.Warn("modem: sweep failed", "modem", m.Name(), "err", err)
		}
	}
}

// traceRW logs every read and write at debug level.
type traceRW struct {
	rw   io.ReadWriter
	log  *slog.Logger
	name string
}

func (t *traceRW) Read(p []byte) (int, error) {
	n, err := t.rw.Read(p)
	if n > 0 {
		t.log.Debug("AT <-", "dev", t.name, "data", fmt.Sprintf("%q", p[:n]))
	}
	return n, err
}

func (t *traceRW) Write(p []byte) (int, error) {
	t.log.Debug("AT ->", "dev", t.name, "data", fmt.Sprintf("%q", p))
	return t.rw.Write(p)
}
