package modem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/warthog618/modem/at"
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
	m.mu.Unlock()
	ind := func(prefix string, trailing int) at.Option {
		return at.WithIndication(prefix, func(lines []string) { m.queueURC(gen, lines) }, at.WithTrailingLines(trailing))
	}
	to := m.Profile().CommandTimeout
	if to <= 0 {
		to = 5 * time.Second
	}
	a := at.New(rw, at.WithTimeout(to), at.WithCmds("Z", "E0"),
		ind("+CMT:", 1), ind("+CDS:", 1), ind("+CMTI:", 0), ind("+CDSI:", 0))
	s := &session{a: a, port: port, gen: gen}
	if err := m.setup(ctx, s); err != nil {
		_ = port.Close()
		return err
	}
	m.mu.Lock()
	if m.isClosing() {
		m.mu.Unlock()
		_ = port.Close()
		return ErrClosed
	}
	m.sess = s
	m.mu.Unlock()
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

// setup runs the init sequence on a new session.
func (m *Modem) setup(ctx context.Context, s *session) error {
	to := m.Profile().CommandTimeout
	initDone := make(chan error, 1)
	go func() { initDone <- s.a.Init(at.WithTimeout(to)) }()
	select {
	case err := <-initDone:
		if err != nil {
			return fmt.Errorf("modem: init: %w", mapATError(err))
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	run := func(cmd string) ([]string, error) { return m.exec(ctx, s, cmd, "", to) }
	if _, err := run("+CMEE=1"); err != nil {
		return fmt.Errorf("modem: init: %w", err)
	}
	if err := m.unlockSIM(ctx, s, run); err != nil {
		return err
	}
	var id Identity
	for _, q := range []struct {
		cmd string
		dst *string
	}{{"+CGMI", &id.Manufacturer}, {"+CGMM", &id.Model}, {"+CGMR", &id.Revision}, {"+CGSN", &id.IMEI}, {"+CIMI", &id.IMSI}} {
		info, err := run(q.cmd)
		if err != nil {
			if errors.Is(err, ErrLinkLost) || ctx.Err() != nil {
				return fmt.Errorf("modem: identity: %w", err)
			}
			continue // optional
		}
		*q.dst = plainInfo(info, q.cmd)
	}
	id.MSISDN = m.cfg.MSISDN
	if id.MSISDN == "" {
		if info, err := run("+CNUM"); err == nil {
			if l, ok := findPrefix(info, "+CNUM:"); ok {
				if n, perr := ParseCNUM(l); perr == nil {
					id.MSISDN = n
				}
			}
		}
	}
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
	for _, c := range []string{"+CMGF=0", fmt.Sprintf("+CSMS=%d", p.CSMS)} {
		if _, err := run(c); err != nil {
			return fmt.Errorf("modem: init: %w", err)
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
	for _, c := range []string{fmt.Sprintf(`+CPMS="%s","%s","%s"`, p.Storage, p.Storage, p.Storage), "+CNMI=" + p.CNMI} {
		if _, err := run(c); err != nil {
			return fmt.Errorf("modem: init: %w", err)
		}
	}
	return nil
}

func (m *Modem) unlockSIM(ctx context.Context, s *session, run func(string) ([]string, error)) error {
	for attempt := 0; attempt < 10; attempt++ {
		info, err := run("+CPIN?")
		if err != nil {
			var cme *CMEError
			if errors.As(err, &cme) && cme.Code == 14 { // SIM busy just after power-up
				if werr := sleepCtx(ctx, 500*time.Millisecond); werr != nil {
					return werr
				}
				continue
			}
			return fmt.Errorf("modem: SIM: %w", err)
		}
		l, _ := findPrefix(info, "+CPIN:")
		state := strings.TrimSpace(strings.TrimPrefix(l, "+CPIN:"))
		switch state {
		case "READY", "":
			return nil
		case "SIM PIN":
			if m.cfg.PIN == "" || attempt > 0 {
				return fmt.Errorf("%w (state %q)", ErrSIMPIN, state)
			}
			if _, err := run(fmt.Sprintf(`+CPIN="%s"`, m.cfg.PIN)); err != nil {
				return fmt.Errorf("%w: %w", ErrSIMPIN, err)
			}
		default:
			return fmt.Errorf("%w (state %q)", ErrSIMPIN, state)
		}
	}
	return fmt.Errorf("%w: SIM not ready", ErrSIMPIN)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
			case <-s.a.Closed():
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
			m.emit(EventDisconnected, reason, "")
		}
		backoff := m.cfg.ReconnectMin
		for {
			if err := sleepCtx(ctx, backoff); err != nil {
				return
			}
			err := m.connect(ctx)
			if err == nil {
				break
			}
			if m.isClosing() {
				return
			}
			m.emit(EventReconnectFailed, err, fmt.Sprintf("retry in %v", backoff))
			backoff *= 2
			if backoff > m.cfg.ReconnectMax {
				backoff = m.cfg.ReconnectMax
			}
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
	if p.DirectDelivery() || p.DirectStatusReports() {
		if s, err := m.current(); err == nil {
			_, _ = m.exec(ctx, s, "+CNMI="+p.CNMI, "", p.CommandTimeout)
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
