package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	coapudp "github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
	coapserver "github.com/plgd-dev/go-coap/v3/udp/server"
)

// Config describes a load run.
type Config struct {
	// Workers is the number of concurrent sockets (peers), each with one
	// outstanding request (NSTART = 1). Default 16.
	Workers int
	// Path is the Uri-Path of the GET, e.g. "/bench".
	Path string
	// Duration ends the run after this long (if Requests is 0).
	Duration time.Duration
	// Requests ends the run after this many answered requests in total
	// (if > 0; Duration is then only a safety bound, default 1 minute).
	Requests int
	// Timeout is how long a worker waits for a response before counting
	// the request as lost and sending a new one. Default 1 s.
	Timeout time.Duration
	// WantCode is the response code to accept. Default codes.Content.
	WantCode codes.Code
}

// Result is what a run measured.
type Result struct {
	// OK is the number of requests answered with WantCode.
	OK int64
	// Lost is the number of requests not answered within Timeout.
	Lost int64
	// Bad is the number of matching responses with another code or type.
	Bad int64
	// Elapsed is the wall time of the run.
	Elapsed time.Duration
}

// PerSecond is the rate of answered requests.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

func (r Result) String() string {
	return fmt.Sprintf("%d ok, %d lost, %d bad in %v: %.0f req/s", r.OK, r.Lost, r.Bad, r.Elapsed.Round(time.Millisecond), r.PerSecond())
}

// tokenLen is the token length of generated requests.
const tokenLen = 4

// encodeGET returns a CON GET for path with a zero MID and a tokenLen-byte
// zero token; worker code patches MID (bytes 2-3) and token (4-7) in place.
func encodeGET(path string) ([]byte, error) {
	buf := make([]byte, 256)
	opts, _, err := message.Options{}.SetPath(buf, path)
	if err != nil {
		return nil, fmt.Errorf("loadgen: path %q: %w", path, err)
	}
	m := message.Message{
		Code:    codes.GET,
		Type:    message.Confirmable,
		Token:   make(message.Token, tokenLen),
		Options: opts,
	}
	n, err := coder.DefaultCoder.Size(m)
	if err != nil {
		return nil, err
	}
	out := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(m, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Run loads target until ctx ends, cfg.Duration passes or cfg.Requests are
// answered.
func Run(ctx context.Context, target *net.UDPAddr, cfg Config) (Result, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.WantCode == 0 {
		cfg.WantCode = codes.Content
	}
	if cfg.Requests <= 0 && cfg.Duration <= 0 {
		return Result{}, errors.New("loadgen: neither Duration nor Requests set")
	}
	bound := cfg.Duration
	if cfg.Requests > 0 && bound <= 0 {
		bound = time.Minute
	}
	req, err := encodeGET(cfg.Path)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()

	conns := make([]*net.UDPConn, cfg.Workers)
	laddr := &net.UDPAddr{IP: target.IP}
	for i := range conns {
		c, err := net.DialUDP("udp", laddr, target)
		if err != nil {
			for _, c := range conns[:i] {
				_ = c.Close()
			}
			return Result{}, fmt.Errorf("loadgen: %w", err)
		}
		_ = c.SetReadBuffer(1 << 20)
		conns[i] = c
	}
	// Closing the sockets unblocks the workers when the run ends.
	stop := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			_ = c.SetReadDeadline(time.Now())
		}
	})
	defer stop()

	var t tally
	t.budget.Store(int64(cfg.Requests))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range conns {
		w := worker{
			c: c, req: append([]byte(nil), req...), timeout: cfg.Timeout, want: cfg.WantCode,
			mid: uint16(i * 7919), token: uint32(i) << 24,
		}
		wg.Go(func() {
			w.run(ctx, cfg.Requests > 0, &t)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, c := range conns {
		_ = c.Close()
	}
	return Result{OK: t.ok.Load(), Lost: t.lost.Load(), Bad: t.bad.Load(), Elapsed: elapsed}, nil
}

type worker struct {
	c       *net.UDPConn
	req     []byte
	timeout time.Duration
	want    codes.Code
	mid     uint16
	token   uint32
}

// tally is what the workers share: the requests left to send (when
// counted) and the answers counted by kind.
type tally struct {
	budget, ok, lost, bad atomic.Int64
}

func (w *worker) run(ctx context.Context, counted bool, t *tally) {
	budget, ok, lost, bad := &t.budget, &t.ok, &t.lost, &t.bad
	buf := make([]byte, 2048)
	wantType := byte(message.Acknowledgement)
	for ctx.Err() == nil {
		if counted && budget.Add(-1) < 0 {
			return
		}
		w.mid++
		w.token++
		binary.BigEndian.PutUint16(w.req[2:4], w.mid)
		binary.BigEndian.PutUint32(w.req[4:8], w.token)
		if _, err := w.c.Write(w.req); err != nil {
			if ctx.Err() != nil {
				return
			}
			lost.Add(1)
			continue
		}
		deadline := time.Now().Add(w.timeout)
		_ = w.c.SetReadDeadline(deadline)
		answered := false
		for !answered {
			n, err := w.c.Read(buf)
			if err != nil {
				if ctx.Err() != nil {
					if counted {
						budget.Add(1)
					}
					return
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					lost.Add(1)
					break
				}
				// ECONNREFUSED and the like: the server is not there
				// (yet); wait out the timeout.
				if time.Now().After(deadline) {
					lost.Add(1)
					break
				}
				continue
			}
			// Header: ver/type/TKL, code, MID; then the token.
			if n < 4+tokenLen || buf[0]&0x0f != tokenLen ||
				binary.BigEndian.Uint16(buf[2:4]) != w.mid ||
				binary.BigEndian.Uint32(buf[4:8]) != w.token {
				continue // a late answer to an earlier request
			}
			answered = true
			if (buf[0]>>4)&0x3 == wantType && codes.Code(buf[1]) == w.want {
				ok.Add(1)
			} else {
				bad.Add(1)
			}
		}
	}
}

// GoCoapServer is go-coap v3's own UDP server answering GET path with 2.05
// Content, Content-Format text/plain and payload: the reference server.
type GoCoapServer struct {
	// Addr is where it listens.
	Addr   *net.UDPAddr
	srv    *coapserver.Server
	l      *coapnet.UDPConn
	done   chan error
	errors atomic.Int64
}

// Errors returns how many errors the server reported through its error
// callback (instead of logging them).
func (g *GoCoapServer) Errors() int64 { return g.errors.Load() }

// StartGoCoap starts a GoCoapServer on address ("127.0.0.1:0").
func StartGoCoap(address, path string, payload []byte) (*GoCoapServer, error) {
	r := mux.NewRouter()
	err := r.Handle(path, mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
		_ = w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader(payload))
	}))
	if err != nil {
		return nil, fmt.Errorf("loadgen: go-coap route: %w", err)
	}
	laddr, err := net.ResolveUDPAddr("udp", address)
	if err != nil {
		return nil, fmt.Errorf("loadgen: go-coap listen: %w", err)
	}
	uc, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: go-coap listen: %w", err)
	}
	// The same socket buffers as the m2mbearer UDP bearer's default.
	_ = uc.SetReadBuffer(4 << 20)
	_ = uc.SetWriteBuffer(4 << 20)
	l := coapnet.NewUDPConn("udp", uc)
	g := &GoCoapServer{Addr: l.LocalAddr().(*net.UDPAddr), l: l, done: make(chan error, 1)}
	s := coapudp.NewServer(options.WithMux(r), options.WithErrors(func(error) { g.errors.Add(1) }))
	g.srv = s
	go func() { g.done <- s.Serve(l) }()
	return g, nil
}

// Stop stops the server and waits for Serve to return (at most timeout).
func (g *GoCoapServer) Stop(timeout time.Duration) error {
	g.srv.Stop()
	_ = g.l.Close()
	select {
	case err := <-g.done:
		return err
	case <-time.After(timeout):
		return errors.New("loadgen: go-coap server did not stop")
	}
}
