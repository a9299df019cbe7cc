package bearer

import (
	"sort"
	"strings"
	"sync"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Handler responds to a CoAP request, as http.Handler does for HTTP.
//
// ServeCoAP writes the response with w.WriteResponse and returns. A handler
// that returns without writing gets a default empty success response (2.05
// Content for GET and FETCH, 2.01 Created for POST, 2.02 Deleted for DELETE,
// 2.04 Changed otherwise). A handler may keep w and answer later from another
// goroutine; it must then call w.WriteResponse exactly once (the Endpoint
// sends an empty ACK once the handler is late, then a separate CON response).
// Handlers run on a bounded pool of goroutines (Limits.MaxHandlers).
type Handler interface {
	ServeCoAP(w ResponseWriter, r *Request)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(w ResponseWriter, r *Request)

// ServeCoAP calls f(w, r).
func (f HandlerFunc) ServeCoAP(w ResponseWriter, r *Request) { f(w, r) }

// ResponseWriter is how a Handler answers a request.
type ResponseWriter interface {
	// SetOption replaces the response options with opt's ID by opt.
	SetOption(opt message.Option)
	// AddOption adds a (repeatable) response option.
	AddOption(opt message.Option)
	// WriteResponse sends the response with code and payload. Payloads
	// larger than the block size go out with Block2 automatically. Only the
	// first call has an effect; later calls return ErrAlreadyWritten.
	WriteResponse(code codes.Code, payload []byte) error
	// Observe accepts the observation the request asked for (a GET with
	// Observe=0, RFC 7641). It returns nil and ErrNotObservable when the
	// request is not an observe registration, or an error wrapping
	// ErrLimit when the Endpoint's observation limit is reached; the
	// response then goes out without the Observe option and the client
	// knows it is not registered. Call it before WriteResponse; the
	// response then carries the Observe option, and later notifications go
	// through the returned Observer.
	Observe() (*Observer, error)
}

// ServeMux routes requests by Uri-Path to handlers, like http.ServeMux: a
// pattern "/3/0" matches exactly that path; a pattern ending in "/"
// ("/fw/") matches every path under it, the longest such prefix winning.
// An exact match wins over a prefix. Unmatched requests get 4.04 Not Found.
// The zero value is an empty ServeMux ready to use, as NewServeMux's.
type ServeMux struct {
	mu       sync.RWMutex
	exact    map[string]Handler
	prefixes []muxPrefix // sorted by decreasing length
}

type muxPrefix struct {
	prefix string
	h      Handler
}

// NewServeMux returns an empty ServeMux.
func NewServeMux() *ServeMux { return &ServeMux{exact: make(map[string]Handler)} }

// Handle registers h for pattern; a pattern registered twice replaces the
// first registration. Patterns must begin with '/'.
func (m *ServeMux) Handle(pattern string, h Handler) {
	if pattern == "" || pattern[0] != '/' {
		pattern = "/" + pattern
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.exact == nil {
		m.exact = make(map[string]Handler)
	}
	if strings.HasSuffix(pattern, "/") {
		for i := range m.prefixes {
			if m.prefixes[i].prefix == pattern {
				m.prefixes[i].h = h
				return
			}
		}
		m.prefixes = append(m.prefixes, muxPrefix{pattern, h})
		sort.SliceStable(m.prefixes, func(i, j int) bool {
			return len(m.prefixes[i].prefix) > len(m.prefixes[j].prefix)
		})
		return
	}
	m.exact[pattern] = h
}

// HandleFunc registers f for pattern.
func (m *ServeMux) HandleFunc(pattern string, f func(ResponseWriter, *Request)) {
	m.Handle(pattern, HandlerFunc(f))
}

// Handler returns the handler for path, or nil.
func (m *ServeMux) Handler(path string) Handler {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if h, ok := m.exact[path]; ok {
		return h
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(path, p.prefix) || path+"/" == p.prefix {
			return p.h
		}
	}
	return nil
}

// ServeCoAP dispatches r to the handler for its path, or answers 4.04.
func (m *ServeMux) ServeCoAP(w ResponseWriter, r *Request) {
	h := m.Handler(r.Path())
	if h == nil {
		_ = w.WriteResponse(codes.NotFound, nil)
		return
	}
	h.ServeCoAP(w, r)
}

// NotFoundHandler answers every request with 4.04 Not Found.
func NotFoundHandler() Handler {
	return HandlerFunc(func(w ResponseWriter, _ *Request) { _ = w.WriteResponse(codes.NotFound, nil) })
}
