package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// Config describes a run.
type Config struct {
	// N is the number of registrations (distinct endpoint names).
	N int
	// Checkpoints are registration counts at which the rate is reported
	// (the rate over the last 10% before the checkpoint). Default: 10k and
	// 100k when N reaches them, and N.
	Checkpoints []int
	// Sockets is the number of client UDP sockets (default 32).
	Sockets int
	// Workers is the number of concurrent closed-loop registrations
	// (default 256).
	Workers int
	// Payload is the object list each client registers (default
	// "</1/0>,</3/0>,</4/0>,</5/0>").
	Payload string
	// Store keeps the registrations (default registry.NewMemory).
	Store registry.Store
}

// Checkpoint is the rate measured when Registered devices were reached.
type Checkpoint struct {
	Registered int
	// Rate is registrations per second over the window before the
	// checkpoint (the last 10% of registrations up to it).
	Rate float64
	// Elapsed is the time from the start to the checkpoint.
	Elapsed time.Duration
}

// Result is what a run measured.
type Result struct {
	N           int
	Elapsed     time.Duration
	Rate        float64 // overall registrations per second
	Checkpoints []Checkpoint
	// HeapPerDevice is (HeapAlloc after − before) / N after a GC, with the
	// server, its endpoint and the client sockets already created before.
	HeapPerDevice float64
	Errors        int64 // requests that failed or got a code other than 2.01
}

// Print writes the result as the command prints it.
func (r Result) Print(w io.Writer) {
	fmt.Fprintf(w, "registered %d devices in %v: %.0f registrations/s overall, %d errors\n", r.N, r.Elapsed.Round(time.Millisecond), r.Rate, r.Errors)
	for _, c := range r.Checkpoints {
		fmt.Fprintf(w, "  at %7d registered: %8.0f registrations/s (last 10%% window), elapsed %v\n", c.Registered, c.Rate, c.Elapsed.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "heap growth per registered device: %.0f bytes\n", r.HeapPerDevice)
}

func (c *Config) defaults() {
	if c.Sockets <= 0 {
		c.Sockets = 32
	}
	if c.Workers <= 0 {
		c.Workers = 256
	}
	if c.Payload == "" {
		c.Payload = "</1/0>,</3/0>,</4/0>,</5/0>"
	}
	if len(c.Checkpoints) == 0 {
		for _, k := range []int{10_000, 100_000} {
			if k < c.N {
				c.Checkpoints = append(c.Checkpoints, k)
			}
		}
		c.Checkpoints = append(c.Checkpoints, c.N)
	}
	if c.Store == nil {
		c.Store, _ = registry.NewMemory(registry.Options{MaxRegistrations: c.N + 1}) // c.N ≥ 0: never refused
	}
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Run performs one load run.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.defaults()
	if cfg.N <= 0 {
		return Result{}, errors.New("loadgen: N must be positive")
	}
	r, err := newRig(cfg)
	if err != nil {
		return Result{}, err
	}
	defer r.close()

	before := heap()
	pr := drive(ctx, cfg, r.clients, r.target)
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	// Let in-flight duplicates settle, then measure the heap with the
	// server still alive (the deferred close ends it after).
	after := heap()
	res := Result{N: cfg.N, Elapsed: pr.elapsed, Rate: float64(cfg.N) / pr.elapsed.Seconds(), Errors: pr.errs}
	if after > before {
		res.HeapPerDevice = float64(after-before) / float64(r.srv.Store().Len())
	}
	res.Checkpoints = checkpoints(cfg.Checkpoints, pr)
	if got := r.srv.Store().Len(); got != cfg.N-int(res.Errors) {
		return res, fmt.Errorf("loadgen: store holds %d registrations, want %d", got, cfg.N-int(res.Errors))
	}
	runtime.KeepAlive(r.srv)
	return res, nil
}

// rig is the server under load and the client sockets that load it.
type rig struct {
	srv     *server.Server
	srvEP   *bearer.Endpoint
	target  net.Addr
	clients []*bearer.Endpoint
}

// newRig starts the server on a loopback UDP socket and opens the client
// sockets; on an error it closes what it opened.
func newRig(cfg Config) (_ *rig, err error) {
	r := &rig{}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	srvConn, err := udp.Listen("udp", "127.0.0.1:0", udp.WithReadBuffer(8<<20), udp.WithWriteBuffer(8<<20))
	if err != nil {
		return nil, err
	}
	// Every simulated device is on 127.0.0.1: one source, whose rate the
	// server would hold to its default (a flood from one address).
	if r.srv, err = server.New(cfg.Store, server.WithLimits(server.Limits{SourceRate: -1})); err != nil {
		return nil, err
	}
	r.srvEP, err = bearer.NewEndpoint(srvConn, bearer.WithHandler(r.srv.Handler("udp")),
		bearer.WithLimits(bearer.Limits{MaxHandlers: 1024}))
	if err != nil {
		return nil, err
	}
	r.srv.Attach("udp", r.srvEP)
	r.target = srvConn.LocalAddr()

	// Client sockets: NSTART raised so one socket carries many outstanding
	// Registers (each is a different LwM2M client multiplexed on it).
	p := bearer.UDPParams("udp")
	p.NStart = cfg.Workers
	for range cfg.Sockets {
		c, err := udp.Listen("udp", "127.0.0.1:0", udp.WithParams(p), udp.WithReadBuffer(4<<20))
		if err != nil {
			return nil, err
		}
		ep, err := bearer.NewEndpoint(c)
		if err != nil {
			return nil, err
		}
		r.clients = append(r.clients, ep)
	}
	return r, nil
}

// close closes the client sockets (last first), then the server's
// endpoint and the server.
func (r *rig) close() {
	for i := len(r.clients) - 1; i >= 0; i-- {
		r.clients[i].Close()
	}
	if r.srvEP != nil {
		r.srvEP.Close()
	}
	if r.srv != nil {
		r.srv.Close()
	}
}

// progress is what the workers of a run measured.
type progress struct {
	start   time.Time
	elapsed time.Duration
	errs    int64
	stamps  map[int]time.Time // registrations → time reached, at the checkpoints and their window starts
}

// drive runs cfg.Workers closed-loop workers, spread over the client
// sockets, until cfg.N Registers were answered or ctx ends.
func drive(ctx context.Context, cfg Config, clients []*bearer.Endpoint, target net.Addr) progress {
	var (
		next   atomic.Int64
		done   atomic.Int64
		errs   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		stamps = make(map[int]time.Time) // registrations → time reached
	)
	marks := map[int]bool{}
	for _, c := range cfg.Checkpoints {
		marks[c] = true
		if w := c - c/10; w > 0 {
			marks[w] = true
		}
	}
	payload := []byte(cfg.Payload)
	start := time.Now()
	for w := range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep := clients[w%len(clients)]
			for {
				i := next.Add(1) - 1
				if i >= int64(cfg.N) || ctx.Err() != nil {
					return
				}
				if err := register(ctx, ep, target, int(i), payload); err != nil {
					errs.Add(1)
				}
				n := int(done.Add(1))
				if marks[n] {
					mu.Lock()
					stamps[n] = time.Now()
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return progress{start: start, elapsed: time.Since(start), errs: errs.Load(), stamps: stamps}
}

// checkpoints computes the rate over the last 10% of registrations before
// each checkpoint.
func checkpoints(marks []int, pr progress) []Checkpoint {
	var cps []Checkpoint
	for _, c := range marks {
		from := c - c/10
		t0, t1 := pr.start, pr.stamps[c]
		if from > 0 {
			t0 = pr.stamps[from]
		}
		cp := Checkpoint{Registered: c, Elapsed: t1.Sub(pr.start)}
		if d := t1.Sub(t0); d > 0 {
			cp.Rate = float64(c-from) / d.Seconds()
		}
		cps = append(cps, cp)
	}
	return cps
}

func register(ctx context.Context, ep *bearer.Endpoint, to net.Addr, i int, payload []byte) error {
	req := bearer.NewRequest(codes.POST, to, "/rd")
	req.AddOption(bearer.StringOption(message.URIQuery, "ep=load-"+itoa(i)))
	req.AddOption(bearer.StringOption(message.URIQuery, "lt=86400"))
	req.AddOption(bearer.StringOption(message.URIQuery, "lwm2m=1.1"))
	req.AddOption(bearer.StringOption(message.URIQuery, "b=U"))
	req.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
	req.Payload = payload
	resp, err := ep.Do(ctx, req)
	if err != nil {
		return err
	}
	if resp.Code != codes.Created {
		return fmt.Errorf("register %d: %v", i, resp.Code)
	}
	return nil
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// StateBytes measures the server's registration state alone: it registers
// n devices, each from its own UDP address, by calling the server's handler
// directly (no sockets, no CoAP message layer), and returns the heap growth
// per registered device. This is the memory a registration costs the
// server: the Registration record, the store's indexes and expiry heap,
// and the server's address index.
func StateBytes(n int, payload string) (float64, error) {
	if payload == "" {
		payload = "</1/0>,</3/0>,</4/0>,</5/0>"
	}
	store, err := registry.NewMemory(registry.Options{MaxRegistrations: n + 1})
	if err != nil {
		return 0, err
	}
	srv, err := server.New(store, server.WithLimits(server.Limits{SourceRate: -1}))
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	h := srv.Handler("udp")
	body := []byte(payload)
	before := heap()
	var w nopWriter
	for i := range n {
		peer := &net.UDPAddr{IP: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)), Port: 5683 + i%1000}
		req := bearer.NewRequest(codes.POST, peer, "/rd")
		req.AddOption(bearer.StringOption(message.URIQuery, "ep=urn:imei:35"+pad(i, 13)))
		req.AddOption(bearer.StringOption(message.URIQuery, "lt=86400"))
		req.AddOption(bearer.StringOption(message.URIQuery, "lwm2m=1.1"))
		req.AddOption(bearer.StringOption(message.URIQuery, "b=U"))
		req.Payload = body
		w.code = 0
		h.ServeCoAP(&w, req)
		if w.code != codes.Created {
			return 0, fmt.Errorf("loadgen: register %d: %v", i, w.code)
		}
	}
	after := heap()
	if store.Len() != n {
		return 0, fmt.Errorf("loadgen: %d registered, want %d", store.Len(), n)
	}
	runtime.KeepAlive(srv)
	return (float64(after) - float64(before)) / float64(n), nil
}

func pad(i, width int) string {
	s := itoa(i)
	for len(s) < width {
		s = "0" + s
	}
	return s
}

type nopWriter struct{ code codes.Code }

func (w *nopWriter) SetOption(message.Option) {}
func (w *nopWriter) AddOption(message.Option) {}
func (w *nopWriter) WriteResponse(c codes.Code, _ []byte) error {
	w.code = c
	return nil
}
func (w *nopWriter) Observe() (*bearer.Observer, error) { return nil, bearer.ErrNotObservable }
