package secure

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// memNet is an in-memory datagram network for tests: bearers attach under
// a name and exchange datagrams through bounded channels. Delivery to a
// full or unknown receiver drops the datagram, as a network would.
type memNet struct {
	mu    sync.Mutex
	nodes map[string]*memBearer
}

func newMemNet() *memNet { return &memNet{nodes: make(map[string]*memBearer)} }

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

type memPkt struct {
	b    []byte
	from net.Addr
}

// memBearer is one node of a memNet. Its address can change (rebind) to
// simulate NAT rebinding.
type memBearer struct {
	net    *memNet
	params bearer.Params
	mu     sync.Mutex
	addr   memAddr
	in     chan memPkt
	closed chan struct{}
	once   sync.Once
	rd     deadline

	// counters of what this node sent and received
	sentN, sentB, recvN, recvB atomic.Int64
	sizesMu                    sync.Mutex
	sentSizes, recvSizes       []int
}

// sizes returns the sizes of the datagrams sent and received so far.
func (b *memBearer) sizes() (sent, recv []int) {
	b.sizesMu.Lock()
	defer b.sizesMu.Unlock()
	return append([]int(nil), b.sentSizes...), append([]int(nil), b.recvSizes...)
}

func (n *memNet) attach(name string, p bearer.Params) *memBearer {
	b := &memBearer{net: n, params: p, addr: memAddr(name), in: make(chan memPkt, 256), closed: make(chan struct{})}
	n.mu.Lock()
	n.nodes[name] = b
	n.mu.Unlock()
	return b
}

func memParams() bearer.Params {
	p := bearer.UDPParams("mem")
	p.MaxDatagram = 1500
	return p
}

// rebind moves the node to a new address.
func (b *memBearer) rebind(name string) {
	b.net.mu.Lock()
	defer b.net.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.net.nodes, string(b.addr))
	b.addr = memAddr(name)
	b.net.nodes[name] = b
}

func (b *memBearer) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case pk := <-b.in:
		b.recvN.Add(1)
		b.recvB.Add(int64(len(pk.b)))
		b.sizesMu.Lock()
		b.recvSizes = append(b.recvSizes, len(pk.b))
		b.sizesMu.Unlock()
		return copy(p, pk.b), pk.from, nil
	case <-b.closed:
		return 0, nil, net.ErrClosed
	case <-b.rd.done():
		return 0, nil, &timeoutError{op: "read"}
	}
}

func (b *memBearer) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-b.closed:
		return 0, net.ErrClosed
	default:
	}
	if len(p) > b.params.MaxDatagram {
		return 0, fmt.Errorf("mem: %d bytes: %w", len(p), bearer.ErrTooLarge)
	}
	b.mu.Lock()
	from := b.addr
	b.mu.Unlock()
	b.net.mu.Lock()
	dst := b.net.nodes[addr.String()]
	b.net.mu.Unlock()
	b.sentN.Add(1)
	b.sentB.Add(int64(len(p)))
	b.sizesMu.Lock()
	b.sentSizes = append(b.sentSizes, len(p))
	b.sizesMu.Unlock()
	if dst != nil {
		select {
		case dst.in <- memPkt{b: append([]byte(nil), p...), from: from}:
		default:
		}
	}
	return len(p), nil
}

func (b *memBearer) Close() error {
	b.once.Do(func() {
		close(b.closed)
		b.net.mu.Lock()
		b.mu.Lock()
		if b.net.nodes[string(b.addr)] == b {
			delete(b.net.nodes, string(b.addr))
		}
		b.mu.Unlock()
		b.net.mu.Unlock()
	})
	return nil
}

func (b *memBearer) LocalAddr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}
func (b *memBearer) SetDeadline(t time.Time) error      { b.rd.set(t); return nil }
func (b *memBearer) SetReadDeadline(t time.Time) error  { b.rd.set(t); return nil }
func (b *memBearer) SetWriteDeadline(t time.Time) error { return nil }
func (b *memBearer) Params() bearer.Params              { return b.params }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
