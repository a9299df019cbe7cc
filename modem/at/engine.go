package at

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Errors of Exec and Send. A final result code other than OK is a
// *ResultError.
var (
	// ErrTimeout: the command got no final result code within its timeout.
	ErrTimeout = errors.New("at: command timed out")
	// ErrClosed: the line failed (EOF, EIO, closed port) before or during
	// the command.
	ErrClosed = errors.New("at: line closed")
	// ErrTooLong: the answer had more lines than MaxAnswerLines.
	ErrTooLong = errors.New("at: answer too long")
	// ErrInvalidOption is wrapped by the error of a command given an
	// option out of its range (WithTimeout(0), WithEndOnInfo(-1)), and by
	// New's for a Config field out of its range (named in the error).
	ErrInvalidOption = errors.New("at: invalid option")
)

// ResultError is a final result code other than OK: ERROR, +CME ERROR,
// +CMS ERROR, a V.250 or vendor code, or one of the Dialect's. Line is the
// code as the modem sent it; Info holds the answer lines that came before.
type ResultError struct {
	Line string
	Info []string
}

func (e *ResultError) Error() string { return "at: final result code " + fmt.Sprintf("%q", e.Line) }

// Config configures an Engine. The zero value works: a zero field takes
// its default. A negative one, or a QuietMax below Quiet, makes New fail
// with an error wrapping ErrInvalidOption.
type Config struct {
	// Dialect adds final result codes and URCs; SetDialect changes it.
	Dialect Dialect
	// OnUnsolicited receives every URC (the header line and, for +CMT,
	// +CDS and +CBM, the PDU line when one followed) and every line that
	// came while no command ran. It runs on the reader goroutine and must
	// not block.
	OnUnsolicited func(lines []string)
	// OnDropped receives what the engine discarded: over-long lines, stray
	// prompts, answer lines beyond MaxAnswerLines. It runs on the reader
	// goroutine and must not block.
	OnDropped func(what, line string)
	// Timeout is the default command timeout (default 5 s).
	Timeout time.Duration
	// MaxLine bounds a line (default 4096 bytes); longer lines are dropped.
	MaxLine int
	// MaxAnswerLines bounds the lines of one answer (default 2048, room for
	// a +CMGL listing of 1000 messages).
	MaxAnswerLines int
	// Quiet is how long the line must stay silent before the command after
	// an abandoned one (timed out, cancelled) is written, so that the late
	// answer is not taken for the next one's (default 200 ms); QuietMax
	// bounds that wait (default 2 s).
	Quiet, QuietMax time.Duration
}

// Engine runs AT commands on one serial line; see the package
// documentation. Its methods are safe for concurrent use; commands run one
// at a time in the order they get the line. The zero Engine has no line:
// its commands fail with ErrClosed (New returns a working one).
type Engine struct {
	rw   io.ReadWriter
	cfg  Config
	sem  chan struct{} // held from a command's start until it is finished
	done chan struct{} // closed when the reader has returned
	err  error         // why the reader returned; read after done

	wmu sync.Mutex // serialises writes

	mu       sync.Mutex
	dialect  Dialect
	cur      *request
	pending  []string // a URC waiting for its PDU line
	resync   bool     // the last command was abandoned: wait for quiet first
	lastRx   atomic.Int64
	line     []byte
	overflow bool
}

// request is one running command. Its fields are guarded by Engine.mu,
// except timeout, set before the request is installed.
type request struct {
	cmd      string
	pdu      string // two-step commands: the text written after the prompt
	prefix   string
	shape    Shape
	timeout  time.Duration
	ends     bool // a prefixed line ends the command when no final follows within grace
	grace    time.Duration
	info     []string
	prompted bool
	err      error
	finished bool
	done     chan struct{}
	prompt   chan struct{} // the prompt came: the waiter writes the PDU
	abandon  bool          // the caller has left (context ended)
	graceT   *time.Timer
}

// New starts an engine on rw: its reader goroutine runs until a Read
// fails (close the port to stop it; Done tells when it has). A nil rw or a
// Config field out of its range is refused with an error wrapping
// ErrInvalidOption, and nothing is started.
func New(rw io.ReadWriter, cfg Config) (*Engine, error) {
	if err := cfg.check(rw); err != nil {
		return nil, err
	}
	e := &Engine{rw: rw, cfg: cfg, sem: make(chan struct{}, 1), done: make(chan struct{}), dialect: cfg.Dialect}
	e.lastRx.Store(time.Now().UnixNano())
	go e.readLoop()
	return e, nil
}

// check refuses negative fields and a QuietMax below Quiet, and fills in
// the defaults of zero ones.
func (c *Config) check(rw io.ReadWriter) error {
	var f cfgcheck.Fields
	if rw == nil {
		f.Badf("the line (rw) is nil")
	}
	cfgcheck.Default(&f, "Timeout", &c.Timeout, 5*time.Second)
	cfgcheck.Default(&f, "MaxLine", &c.MaxLine, 4096)
	cfgcheck.Default(&f, "MaxAnswerLines", &c.MaxAnswerLines, 2048)
	cfgcheck.Default(&f, "Quiet", &c.Quiet, 200*time.Millisecond)
	cfgcheck.Default(&f, "QuietMax", &c.QuietMax, max(2*time.Second, c.Quiet))
	if c.QuietMax < c.Quiet {
		f.Badf("QuietMax %v is below Quiet %v", c.QuietMax, c.Quiet)
	}
	return f.Err(ErrInvalidOption, "Config")
}

// SetDialect replaces the dialect (after the modem's profile is known).
func (e *Engine) SetDialect(d Dialect) {
	e.mu.Lock()
	e.dialect = d
	e.mu.Unlock()
}

// Done is closed when the reader goroutine has returned: the line failed
// or was closed.
func (e *Engine) Done() <-chan struct{} { return e.done }

// Err returns why the line ended (nil while it is up).
func (e *Engine) Err() error {
	select {
	case <-e.done:
		return e.err
	default:
		return nil
	}
}

// Option configures one command. An option given a value out of its
// range fails the command with an error wrapping ErrInvalidOption before
// anything is sent.
type Option func(*request) error

// WithTimeout sets the command's timeout, above 0 (default
// Config.Timeout; 0 or less used to be ignored).
func WithTimeout(d time.Duration) Option {
	return func(r *request) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithTimeout(%v): must be positive", ErrInvalidOption, d)
		}
		r.timeout = d
		return nil
	}
}

// WithShape sets which lines belong to the answer (default ShapePrefixed).
func WithShape(s Shape) Option { return func(r *request) error { r.shape = s; return nil } }

// WithEndOnInfo makes a line with the command's prefix end the command
// successfully when no final result code follows within grace: for modems
// that answer AT+CPIN? with "+CPIN: READY" and no OK (old Wavecom
// firmware; python-gsmmodem test/fakemodems.py).
func WithEndOnInfo(grace time.Duration) Option {
	return func(r *request) error {
		if grace < 0 {
			return fmt.Errorf("%w: WithEndOnInfo(%v): negative grace", ErrInvalidOption, grace)
		}
		r.ends, r.grace = true, grace
		return nil
	}
}

// Exec runs the command line "AT"+cmd and returns its answer lines. It
// returns when the final result code arrives (a *ResultError unless OK),
// when the timeout passes (ErrTimeout), when the line fails (ErrClosed), or
// when ctx ends (ctx.Err()). A command whose caller left keeps the line
// until its own answer or timeout, so that its late answer is not taken for
// the next command's.
func (e *Engine) Exec(ctx context.Context, cmd string, opts ...Option) ([]string, error) {
	return e.run(ctx, cmd, "", opts)
}

// Send runs a two-step command such as +CMGS: it writes "AT"+cmd, waits for
// the "> " prompt, writes pdu and Ctrl-Z, and returns like Exec. On timeout,
// or when the prompt comes after the caller left, ESC cancels the prompt
// (TS 27.005 §3.5.1).
func (e *Engine) Send(ctx context.Context, cmd, pdu string, opts ...Option) ([]string, error) {
	if pdu == "" {
		return nil, errors.New("at: Send without a PDU")
	}
	return e.run(ctx, cmd, pdu, opts)
}

func (e *Engine) run(ctx context.Context, cmd, pdu string, opts []Option) ([]string, error) {
	if strings.ContainsAny(cmd, "\r\n\x1a\x1b") || strings.ContainsAny(pdu, "\r\n\x1a\x1b") {
		return nil, fmt.Errorf("at: control character in command %q", cmd)
	}
	if e.done == nil {
		return nil, ErrClosed
	}
	r := &request{cmd: cmd, pdu: pdu, prefix: commandPrefix(cmd), timeout: e.cfg.Timeout,
		done: make(chan struct{}), prompt: make(chan struct{}, 1)}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, fmt.Errorf("at: %s: %w", cmd, err)
		}
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-e.done:
		return nil, ErrClosed
	}
	if err := e.prepare(ctx, r); err != nil {
		<-e.sem
		return nil, err
	}
	timer := time.NewTimer(r.timeout)
	if err := e.write("AT" + cmd + "\r"); err != nil {
		e.finish(r, ErrClosed)
	}
	if e.wait(ctx.Done(), r, timer) {
		return r.result()
	}
	// The caller leaves; the command keeps the line until it ends. This
	// goroutine belongs to the command and returns with it (at the latest
	// at its timeout).
	e.mu.Lock()
	r.abandon = true
	e.mu.Unlock()
	go e.wait(nil, r, timer)
	return nil, ctx.Err()
}

// wait serves r until it is finished (true) or cancel fires first
// (false). When it returns true it has released the line.
func (e *Engine) wait(cancel <-chan struct{}, r *request, timer *time.Timer) bool {
	for {
		select {
		case <-r.done:
			timer.Stop()
			<-e.sem
			return true
		case <-r.prompt:
			e.mu.Lock()
			text := r.pdu + "\x1a"
			if r.abandon {
				text = "\x1b" // nobody waits for the answer: cancel the send
			}
			e.mu.Unlock()
			if err := e.write(text); err != nil {
				e.finish(r, ErrClosed)
			}
		case <-timer.C:
			if r.pdu != "" {
				_ = e.write("\x1b") // cancel the prompt, should it come late
			}
			e.finish(r, ErrTimeout)
		case <-e.done:
			e.finish(r, ErrClosed)
		case <-cancel:
			return false
		}
	}
}

func (r *request) result() ([]string, error) {
	if r.err != nil {
		var re *ResultError
		if errors.As(r.err, &re) {
			re.Info = r.info
		}
		return r.info, r.err
	}
	return r.info, nil
}

// prepare installs r as the running command, after waiting for a quiet
// line when the previous command was abandoned.
func (e *Engine) prepare(ctx context.Context, r *request) error {
	e.mu.Lock()
	resync := e.resync
	e.resync = false
	e.mu.Unlock()
	if resync {
		if err := e.WaitQuiet(ctx, e.cfg.Quiet, e.cfg.QuietMax); err != nil {
			return err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-e.done:
		return ErrClosed
	default:
	}
	e.cur = r
	return nil
}

// finish ends r with err (nil: OK) unless it is already finished.
func (e *Engine) finish(r *request, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.finishLocked(r, err)
}

func (e *Engine) finishLocked(r *request, err error) {
	if r.finished {
		return
	}
	r.finished = true
	r.err = err
	if r.graceT != nil {
		r.graceT.Stop()
	}
	if e.cur == r {
		e.cur = nil
	}
	if errors.Is(err, ErrTimeout) || r.abandon {
		e.resync = true
	}
	close(r.done)
}

func (e *Engine) write(s string) error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	_, err := io.WriteString(e.rw, s)
	return err
}

// Escape writes ESC CR, which cancels a "> " prompt the modem may be
// waiting at (TS 27.005 §3.5.1), and waits until the line has been quiet
// for Config.Quiet (at most Config.QuietMax), so that the answer to the
// ESC is not taken for the next command's. It waits for a running command
// to end first.
func (e *Engine) Escape(ctx context.Context) error {
	if e.done == nil {
		return ErrClosed
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-e.done:
		return ErrClosed
	}
	defer func() { <-e.sem }()
	if err := e.write("\x1b\r"); err != nil {
		return ErrClosed
	}
	return e.WaitQuiet(ctx, e.cfg.Quiet, e.cfg.QuietMax)
}

// WaitQuiet returns once nothing was read for quiet, or after at most max
// (a line that never goes quiet), or when ctx ends.
func (e *Engine) WaitQuiet(ctx context.Context, quiet, max time.Duration) error {
	end := time.Now().Add(max)
	for {
		idle := time.Since(time.Unix(0, e.lastRx.Load()))
		left := time.Until(end)
		if idle >= quiet || left <= 0 {
			return nil
		}
		t := time.NewTimer(min(quiet-idle, left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// readLoop reads the line until a Read fails.
func (e *Engine) readLoop() {
	buf := make([]byte, 4096)
	for {
		n, err := e.rw.Read(buf)
		if n > 0 {
			e.lastRx.Store(time.Now().UnixNano())
			e.feed(buf[:n])
		}
		if err != nil {
			e.mu.Lock()
			if len(e.pending) > 0 {
				e.deliverLocked(e.pending)
				e.pending = nil
			}
			e.mu.Unlock()
			e.err = fmt.Errorf("%w: %w", ErrClosed, err)
			close(e.done)
			return
		}
	}
}

// feed splits bytes into lines and prompts.
func (e *Engine) feed(p []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '\r', '\n':
			if len(e.line) > 0 || e.overflow {
				e.endLineLocked()
			}
			continue
		case 0x00, 0x1a, 0x1b:
			continue
		}
		if c == '>' && len(e.line) == 0 && !e.overflow {
			j := i + 1
			for j < len(p) && p[j] == ' ' {
				j++
			}
			if j == len(p) {
				e.promptLocked()
				i = j - 1
				continue
			}
		}
		if len(e.line) >= e.cfg.MaxLine {
			e.overflow = true
			continue
		}
		e.line = append(e.line, c)
	}
}

func (e *Engine) endLineLocked() {
	raw := string(e.line)
	over := e.overflow
	e.line, e.overflow = e.line[:0], false
	if over {
		e.dropLocked("line longer than the limit", clip(raw))
		return
	}
	l := strings.TrimSpace(raw)
	if l == "" {
		return
	}
	e.classifyLocked(l)
}

func (e *Engine) promptLocked() {
	r := e.cur
	if r == nil || r.pdu == "" || r.prompted || r.finished {
		e.dropLocked("prompt while no send waits for one", ">")
		return
	}
	r.prompted = true
	select {
	case r.prompt <- struct{}{}:
	default:
	}
}

// classifyLocked sorts one non-empty, trimmed line; see the package
// documentation for the order.
func (e *Engine) classifyLocked(l string) {
	if e.pending != nil {
		u := e.pending
		e.pending = nil
		if IsHex(l) {
			e.deliverLocked(append(u, l))
			return
		}
		e.deliverLocked(u)
	}
	r := e.cur
	if r != nil && r.finished {
		r = nil
	}
	if r != nil && (strings.EqualFold(l, "AT"+r.cmd) || (r.pdu != "" && l == r.pdu)) {
		return // echo
	}
	if final, ok := IsFinal(l, e.dialect); final {
		if r == nil {
			e.deliverLocked([]string{l})
			return
		}
		if ok {
			e.finishLocked(r, nil)
		} else {
			e.finishLocked(r, &ResultError{Line: l})
		}
		return
	}
	own := r != nil && r.prefix != "" && strings.HasPrefix(strings.ToUpper(l), r.prefix)
	if !own && IsUnsolicited(l, e.dialect) {
		if hasTrailingPDU(l) {
			e.pending = []string{l}
			return
		}
		e.deliverLocked([]string{l})
		return
	}
	if r == nil || !belongs(l, r.prefix, r.shape, e.dialect) {
		e.deliverLocked([]string{l})
		return
	}
	if len(r.info) >= e.cfg.MaxAnswerLines {
		e.dropLocked("answer line beyond the limit", clip(l))
		return
	}
	r.info = append(r.info, l)
	if r.ends && own && r.graceT == nil {
		r.graceT = time.AfterFunc(r.grace, func() { e.finish(r, nil) })
	}
}

func (e *Engine) deliverLocked(lines []string) {
	if e.cfg.OnUnsolicited != nil {
		e.cfg.OnUnsolicited(lines)
	}
}

func (e *Engine) dropLocked(what, line string) {
	if e.cfg.OnDropped != nil {
		e.cfg.OnDropped(what, line)
	}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
