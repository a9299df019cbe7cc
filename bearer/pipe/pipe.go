package pipe

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/internal/deadline"
	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Addr is the address of a pipe endpoint (network "pipe").
type Addr string

// Network returns "pipe".
func (a Addr) Network() string { return "pipe" }

// String returns the endpoint name.
func (a Addr) String() string { return string(a) }

// Faults describes what happens to datagrams a Conn sends. Probabilities
// are in [0, 1].
type Faults struct {
	// Loss is the probability that a datagram is dropped.
	Loss float64
	// Duplicate is the probability that a datagram is delivered twice.
	Duplicate float64
	// Reorder is the probability that a datagram is held back by
	// ReorderDelay, so later ones overtake it.
	Reorder float64
	// ReorderDelay is how long a reordered datagram is held (default 5 ms).
	ReorderDelay time.Duration
	// Delay is the fixed one-way delay.
	Delay time.Duration
	// Jitter adds a uniformly distributed delay in [0, Jitter).
	Jitter time.Duration
}

// Stats counts what a Conn did with the datagrams it sent and received.
type Stats struct {
	Sent       int64 // WriteTo calls accepted
	Delivered  int64 // datagrams queued at a receiver (duplicates included)
	Lost       int64 // dropped by the Loss fault
	Duplicated int64 // extra copies made by the Duplicate fault
	Reordered  int64 // held back by the Reorder fault
	Overflow   int64 // dropped because the receiver's queue was full
	Unroutable int64 // sent to an address with no endpoint
	TooLarge   int64 // refused by WriteTo (over MaxDatagram)
	Received   int64 // datagrams returned by ReadFrom
	Largest    int64 // size of the largest datagram accepted by WriteTo
}

// Option configures New and NewHub. An option given a value out of its
// range makes them fail with an error wrapping ErrInvalidOption.
type Option func(*config) error

// ErrInvalidOption is wrapped by the error of New and NewHub for an option
// out of its range (named in the error).
var ErrInvalidOption = errors.New("pipe: invalid option")

type config struct {
	params bearer.Params
	faults Faults
	seed   int64
	queue  int
	names  [2]string
}

// WithParams sets the bearer parameters every Conn reports (default:
// bearer.UDPParams("pipe")); they must pass Params.Validate. MaxDatagram is
// enforced by WriteTo.
func WithParams(p bearer.Params) Option {
	return func(c *config) error {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("%w: WithParams: %w", ErrInvalidOption, err)
		}
		c.params = p
		return nil
	}
}

// WithFaults sets the faults of every Conn's outgoing datagrams: each
// probability in [0, 1], no negative duration.
func WithFaults(f Faults) Option {
	return func(c *config) error {
		var bad cfgcheck.Fields
		cfgcheck.Probability(&bad, "Loss", f.Loss)
		cfgcheck.Probability(&bad, "Duplicate", f.Duplicate)
		cfgcheck.Probability(&bad, "Reorder", f.Reorder)
		cfgcheck.NonNegative(&bad, "ReorderDelay", f.ReorderDelay)
		cfgcheck.NonNegative(&bad, "Delay", f.Delay)
		cfgcheck.NonNegative(&bad, "Jitter", f.Jitter)
		if err := bad.Err(ErrInvalidOption, "WithFaults"); err != nil {
			return err
		}
		c.faults = f
		return nil
	}
}

// WithSeed seeds the fault decisions (default 1).
func WithSeed(seed int64) Option { return func(c *config) error { c.seed = seed; return nil } }

// WithQueue bounds each Conn's receive queue, at least 1 (default 1024
// datagrams); datagrams arriving at a full queue are dropped and counted.
func WithQueue(n int) Option {
	return func(c *config) error {
		c.queue = n
		return cfgcheck.AtLeast1(ErrInvalidOption, "WithQueue", n)
	}
}

// WithNames names the two Conns returned by New (default "a" and "b"):
// two different, non-empty names.
func WithNames(a, b string) Option {
	return func(c *config) error {
		if a == "" || b == "" || a == b {
			return fmt.Errorf("%w: WithNames(%q, %q): two different names", ErrInvalidOption, a, b)
		}
		c.names = [2]string{a, b}
		return nil
	}
}

// Hub connects named Conns; any Conn can send to any other by Addr. The
// zero Hub is ready to use, with NewHub's defaults.
type Hub struct {
	cfg   config
	mu    sync.RWMutex
	conns map[Addr]*Conn
	nseed atomic.Int64
}

// NewHub returns an empty Hub, or an error wrapping ErrInvalidOption.
func NewHub(opts ...Option) (*Hub, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	return &Hub{cfg: cfg, conns: make(map[Addr]*Conn)}, nil
}

func defaultConfig() config {
	return config{params: bearer.UDPParams("pipe"), seed: 1, queue: 1024, names: [2]string{"a", "b"}}
}

// New returns two connected Conns, a pair of bearers, or an error
// wrapping ErrInvalidOption.
func New(opts ...Option) (a, b *Conn, err error) {
	h, err := NewHub(opts...)
	if err != nil {
		return nil, nil, err
	}
	a, _ = h.Conn(h.cfg.names[0]) // a new Hub: the two names are free
	b, _ = h.Conn(h.cfg.names[1])
	return a, b, nil
}

// ErrNameInUse is returned by Hub.Conn for a name already attached.
var ErrNameInUse = errors.New("pipe: name in use")

// Conn attaches a new endpoint called name to the hub.
func (h *Hub) Conn(name string) (*Conn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns == nil { // the zero Hub
		h.cfg, h.conns = defaultConfig(), make(map[Addr]*Conn)
	}
	addr := Addr(name)
	if _, ok := h.conns[addr]; ok {
		return nil, fmt.Errorf("%w: %q", ErrNameInUse, name)
	}
	n := h.nseed.Add(1)
	c := &Conn{
		hub:    h,
		addr:   addr,
		self:   addr,
		params: h.cfg.params,
		faults: h.cfg.faults,
		rng:    rand.New(rand.NewPCG(uint64(h.cfg.seed), uint64(n))),
		in:     make(chan packet, h.cfg.queue),
		closed: make(chan struct{}),
	}
	c.rdl = deadline.New()
	h.conns[addr] = c
	return c, nil
}

func (h *Hub) lookup(a net.Addr) *Conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if a == nil {
		return nil
	}
	return h.conns[Addr(a.String())]
}

func (h *Hub) remove(c *Conn) {
	h.mu.Lock()
	if h.conns[c.addr] == c {
		delete(h.conns, c.addr)
	}
	h.mu.Unlock()
}

type packet struct {
	data []byte
	from net.Addr
}

// Conn is one endpoint of a Hub; it implements bearer.Bearer. A zero Conn
// (not made by a Hub) is a closed one: its methods fail with
// net.ErrClosed.
type Conn struct {
	hub    *Hub
	addr   Addr
	self   net.Addr // addr boxed once: ReadFrom and LocalAddr do not allocate
	params bearer.Params

	mu     sync.Mutex // guards faults and rng
	faults Faults
	rng    *rand.Rand

	in     chan packet
	closed chan struct{}
	once   sync.Once
	rdl    *deadline.Deadline
	timers sync.WaitGroup

	stats struct {
		sent, delivered, lost, duplicated, reordered, overflow, unroutable, tooLarge, received, largest atomic.Int64
	}
}

var _ bearer.Bearer = (*Conn)(nil)

// Params returns the configured bearer parameters.
func (c *Conn) Params() bearer.Params { return c.params }

// SetFaults replaces the faults applied to datagrams this Conn sends.
func (c *Conn) SetFaults(f Faults) {
	c.mu.Lock()
	c.faults = f
	c.mu.Unlock()
}

// Stats returns the counters.
func (c *Conn) Stats() Stats {
	s := &c.stats
	return Stats{
		Sent: s.sent.Load(), Delivered: s.delivered.Load(), Lost: s.lost.Load(),
		Duplicated: s.duplicated.Load(), Reordered: s.reordered.Load(), Overflow: s.overflow.Load(),
		Unroutable: s.unroutable.Load(), TooLarge: s.tooLarge.Load(), Received: s.received.Load(),
		Largest: s.largest.Load(),
	}
}

// LocalAddr returns the Conn's Addr.
func (c *Conn) LocalAddr() net.Addr { return c.self }

func opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "pipe", Addr: addr, Err: err}
}

// ReadFrom returns the next datagram. It blocks until one arrives, the
// read deadline passes (an error with Timeout() true, wrapping
// os.ErrDeadlineExceeded) or the Conn is closed (net.ErrClosed).
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.closed == nil {
		return 0, nil, opError("read", c.addr, net.ErrClosed)
	}
	select {
	case <-c.closed:
		return 0, nil, opError("read", c.addr, net.ErrClosed)
	default:
	}
	select {
	case pk := <-c.in:
		c.stats.received.Add(1)
		return copy(p, pk.data), pk.from, nil
	case <-c.closed:
		return 0, nil, opError("read", c.addr, net.ErrClosed)
	case <-c.rdl.Wait():
		return 0, nil, opError("read", c.addr, os.ErrDeadlineExceeded)
	}
}

// WriteTo sends p to addr, applying this Conn's faults. A datagram over
// Params().MaxDatagram is refused with an error wrapping
// bearer.ErrTooLarge. Sending to an unknown address succeeds and is
// counted as unroutable, as UDP would.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.closed == nil {
		return 0, opError("write", addr, net.ErrClosed)
	}
	select {
	case <-c.closed:
		return 0, opError("write", addr, net.ErrClosed)
	default:
	}
	if len(p) > c.params.MaxDatagram {
		c.stats.tooLarge.Add(1)
		return 0, opError("write", addr, fmt.Errorf("%w: %d bytes > %d", bearer.ErrTooLarge, len(p), c.params.MaxDatagram))
	}
	c.stats.sent.Add(1)
	for n := int64(len(p)); ; {
		cur := c.stats.largest.Load()
		if n <= cur || c.stats.largest.CompareAndSwap(cur, n) {
			break
		}
	}
	dst := c.hub.lookup(addr)
	if dst == nil {
		c.stats.unroutable.Add(1)
		return len(p), nil
	}
	c.mu.Lock()
	f := c.faults
	lost := f.Loss > 0 && c.rng.Float64() < f.Loss
	copies := 1
	if !lost && f.Duplicate > 0 && c.rng.Float64() < f.Duplicate {
		copies = 2
	}
	delays := [2]time.Duration{}
	for i := 0; i < copies; i++ {
		d := f.Delay
		if f.Jitter > 0 {
			d += time.Duration(c.rng.Int64N(int64(f.Jitter)))
		}
		if f.Reorder > 0 && c.rng.Float64() < f.Reorder {
			rd := f.ReorderDelay
			if rd <= 0 {
				rd = 5 * time.Millisecond
			}
			d += rd
			c.stats.reordered.Add(1)
		}
		delays[i] = d
	}
	c.mu.Unlock()
	if lost {
		c.stats.lost.Add(1)
		return len(p), nil
	}
	if copies == 2 {
		c.stats.duplicated.Add(1)
	}
	data := append([]byte(nil), p...)
	for i := 0; i < copies; i++ {
		if delays[i] <= 0 {
			c.deliver(dst, data)
			continue
		}
		c.timers.Add(1)
		time.AfterFunc(delays[i], func() {
			defer c.timers.Done()
			c.deliver(dst, data)
		})
	}
	return len(p), nil
}

func (c *Conn) deliver(dst *Conn, data []byte) {
	select {
	case <-dst.closed:
		return
	default:
	}
	select {
	case dst.in <- packet{data: data, from: c.self}:
		c.stats.delivered.Add(1)
	default:
		c.stats.overflow.Add(1)
	}
}

// Close detaches the Conn; pending and later reads and writes fail with
// net.ErrClosed. Delayed datagrams still in flight are discarded.
func (c *Conn) Close() error {
	err := opError("close", c.addr, net.ErrClosed)
	if c.closed == nil {
		return err
	}
	c.once.Do(func() {
		close(c.closed)
		c.hub.remove(c)
		err = nil
	})
	return err
}

// SetDeadline sets the read deadline (writes never block).
func (c *Conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline sets the deadline for ReadFrom; the zero time clears it.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.rdl == nil {
		return opError("set deadline", c.addr, net.ErrClosed)
	}
	c.rdl.Set(t)
	return nil
}

// SetWriteDeadline is accepted and ignored: writes never block.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }
