package sim

import (
	"io"
	"sync"
)

// maxPipeBuffer bounds the bytes buffered in one direction of a pipe, as a
// UART FIFO and a driver buffer would; beyond it writes block.
const maxPipeBuffer = 1 << 20

// halfPipe is one direction of a buffered in-memory pipe.
type halfPipe struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	closed bool // no more data will come: readers get EOF once drained
	broken bool // the reading side is gone: writers fail
}

func newHalfPipe() *halfPipe {
	h := &halfPipe{}
	h.cond = sync.NewCond(&h.mu)
	return h
}

func (h *halfPipe) read(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.buf) == 0 && !h.closed && !h.broken {
		h.cond.Wait()
	}
	if h.broken {
		return 0, io.ErrClosedPipe
	}
	if len(h.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, h.buf)
	h.buf = h.buf[n:]
	if len(h.buf) == 0 {
		h.buf = nil
	}
	h.cond.Broadcast()
	return n, nil
}

func (h *halfPipe) write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	written := 0
	for len(p) > 0 {
		for len(h.buf) >= maxPipeBuffer && !h.closed && !h.broken {
			h.cond.Wait()
		}
		if h.closed || h.broken {
			return written, io.ErrClosedPipe
		}
		n := min(len(p), maxPipeBuffer-len(h.buf))
		h.buf = append(h.buf, p[:n]...)
		p = p[n:]
		written += n
		h.cond.Broadcast()
	}
	return written, nil
}

// closeWrite marks the end of data: the reader drains then sees EOF.
func (h *halfPipe) closeWrite() {
	h.mu.Lock()
	h.closed = true
	h.cond.Broadcast()
	h.mu.Unlock()
}

// closeRead breaks the pipe for its reader and writer at once.
func (h *halfPipe) closeRead() {
	h.mu.Lock()
	h.broken = true
	h.buf = nil
	h.cond.Broadcast()
	h.mu.Unlock()
}

// pipeEnd is one end of a bidirectional buffered pipe.
type pipeEnd struct {
	r, w *halfPipe
	once sync.Once
}

func newPipe() (a, b *pipeEnd) {
	ab, ba := newHalfPipe(), newHalfPipe()
	return &pipeEnd{r: ba, w: ab}, &pipeEnd{r: ab, w: ba}
}

func (p *pipeEnd) Read(b []byte) (int, error)  { return p.r.read(b) }
func (p *pipeEnd) Write(b []byte) (int, error) { return p.w.write(b) }

// Close closes this end: the peer reads EOF after draining what was
// written, and its writes fail.
func (p *pipeEnd) Close() error {
	p.once.Do(func() {
		p.w.closeWrite()
		p.r.closeRead()
	})
	return nil
}
