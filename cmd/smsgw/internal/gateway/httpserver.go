package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
)

// The HTTP listener holds out against clients that hold it: every request
// has a deadline for its headers, its body and its answer, chosen by the
// kind of its route; each client address has a bounded number of
// connections; every body has a bound, and a request over it gets 413
// before its body is read. Every refusal is a JSON APIError and counts in
// smsgw_api_refused_total{reason}.
//
// net/http gives the server-wide timeouts; the per-route deadlines are set
// through http.ResponseController by the guard handler, the connection
// bounds by a net.Listener wrapper. Both are ours.

// routeKind says which deadlines and body bound a route gets.
type routeKind int

const (
	// kindPlain: a small JSON body, a quick answer.
	kindPlain routeKind = iota
	// kindWait: the answer waits for a device (?wait= up to 10 min, or a
	// device timeout of up to 3 min over SMS).
	kindWait
	// kindUpload: a firmware image streamed in; a minimum data rate, no
	// answer deadline (the answer is small).
	kindUpload
	// kindStream: the event stream; no answer deadline, but each write
	// must go through within write_timeout.
	kindStream
	// kindDownload: firmware images and state snapshots; each write must
	// go through within write_timeout.
	kindDownload
)

// routeKinds maps route patterns ("POST /api/v1/firmware") to their kind;
// patterns not listed are classified by routeKindOf.
var routeKinds = map[string]routeKind{
	"GET /api/v1/events":          kindStream,
	"POST /api/v1/firmware":       kindUpload,
	"GET " + fwPrefix:             kindDownload,
	"GET /api/v1/state/{name...}": kindDownload,
	"GET /api/v1/jobs/{id}":       kindWait,
}

// routeKindOf classifies a route pattern: listed in routeKinds, else any
// route below /api/v1/devices/{ep}/ waits for its device, else plain.
func routeKindOf(pattern string) routeKind {
	if k, ok := routeKinds[pattern]; ok {
		return k
	}
	if _, p, ok := strings.Cut(pattern, " "); ok && strings.HasPrefix(p, "/api/v1/devices/{ep}/") {
		return kindWait
	}
	return kindPlain
}

// deviceWait is the longest a route waits for a device without ?wait=
// (an operation over SMS).
const deviceWait = 3 * time.Minute

// httpGuard holds the listener's limits and counters.
type httpGuard struct {
	lim       config.HTTPLimits
	uploadMax int64 // bound of a firmware upload body
	log       *slog.Logger

	refused *prometheus.CounterVec
	conns   prometheus.Gauge
}

// newHTTPGuard makes the guard of cfg's limits (the defaults for nil) and
// registers its series in m (when not nil).
func newHTTPGuard(cfg *config.Config, log *slog.Logger, m *Metrics) *httpGuard {
	if cfg == nil {
		cfg = config.Default()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &httpGuard{lim: cfg.API.Limits, log: log,
		// The multipart framing around the image is bounded by maxPreamble.
		uploadMax: cfg.Firmware.MaxImageBytes + maxPreamble,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsgw_api_refused_total",
			Help: "HTTP requests and connections refused by the listener's limits, by reason (client_conns, conns, header_too_large, body_too_large, body_timeout, not_found, method_not_allowed)."},
			[]string{"reason"}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "smsgw_api_connections", Help: "Open HTTP API connections."}),
	}
	if m != nil {
		for _, c := range []prometheus.Collector{h.refused, h.conns} {
			if err := m.reg.Register(c); err != nil {
				log.Error("http metrics", "err", err)
			}
		}
	}
	return h
}

// server returns the API's http.Server: headers within header_timeout,
// keep-alive connections closed after idle_timeout, request line and
// headers bounded. Body and answer deadlines are per route (guard).
func (h *httpGuard) server(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: h.lim.HeaderTimeout,
		IdleTimeout:       h.lim.IdleTimeout,
		// net/http answers a larger header block with a plain-text 431;
		// below it the guard answers JSON (maxHeaderBytes).
		MaxHeaderBytes: 2 * h.lim.MaxHeaderBytes,
		ErrorLog:       log.New(slogWriter{h.log}, "", 0),
	}
}

// slogWriter sends net/http's own log lines (TLS, hijack, panics in
// handlers) to slog at debug level: a flood of broken connections must not
// flood the log.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug("http server", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}

// refuse writes a JSON error and, since the request body is left unread,
// closes the connection after the answer. The guard counts it by status.
func (h *httpGuard) refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Connection", "close")
	writeError(w, code, msg)
}

// refusalReason is the smsgw_api_refused_total reason of an answer's
// status, "" for answers that are not the listener's refusals.
func refusalReason(code int) string {
	switch code {
	case http.StatusRequestEntityTooLarge:
		return "body_too_large"
	case http.StatusRequestTimeout:
		return "body_timeout"
	case http.StatusRequestHeaderFieldsTooLarge:
		return "header_too_large"
	}
	return ""
}

// statusSniffer records the status of an answer.
type statusSniffer struct {
	http.ResponseWriter
	code int
}

func (s *statusSniffer) WriteHeader(c int) {
	if s.code == 0 {
		s.code = c
	}
	s.ResponseWriter.WriteHeader(c)
}

func (s *statusSniffer) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusSniffer) Flush() { _ = http.NewResponseController(s.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the connection.
func (s *statusSniffer) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// guard wraps the API mux: requests the mux does not route get a JSON
// 404/405; routed ones get their kind's header, body and answer bounds.
func (g *Gateway) guard(mux *http.ServeMux) http.Handler {
	h := g.web
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
		if hasBody {
			// Whatever happens to the request (refused, not routed, a
			// handler that ignores its body), net/http drains up to 256 KB
			// of an unread body after the answer: never longer than this.
			_ = rc.SetReadDeadline(now.Add(h.lim.BodyTimeout))
		}
		_ = rc.SetWriteDeadline(now.Add(h.lim.WriteTimeout))
		_, pattern := mux.Handler(r)
		if pattern == "" {
			h.notRouted(mux, w, r)
			return
		}
		sn := &statusSniffer{ResponseWriter: w}
		defer func() {
			if reason := refusalReason(sn.code); reason != "" {
				h.refused.WithLabelValues(reason).Inc()
			}
		}()
		w = sn
		if n := headerBytes(r); n > h.lim.MaxHeaderBytes {
			h.refuse(w, http.StatusRequestHeaderFieldsTooLarge,
				fmt.Sprintf("request line and headers of %d bytes; at most %d (api.limits.max_header_bytes)", n, h.lim.MaxHeaderBytes))
			return
		}
		kind := routeKindOf(pattern)
		limit := int64(maxBody)
		if kind == kindUpload {
			limit = h.uploadMax
		}
		if r.ContentLength > limit {
			h.refuse(w, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body of %d bytes; this route takes at most %d", r.ContentLength, limit))
			return
		}
		// The handler gets a copy: net/http must still see its own body
		// in the request it holds, to drain or close the connection
		// gracefully (so a client still sending reads the refusal).
		r = r.WithContext(r.Context())
		body := func() io.ReadCloser { return http.MaxBytesReader(sn.ResponseWriter, r.Body, limit) }
		switch kind {
		case kindUpload:
			if hasBody {
				r.Body = &rateBody{ReadCloser: body(), rc: rc, window: h.lim.BodyTimeout, minRate: h.lim.UploadMinRate, start: now}
			}
			_ = rc.SetWriteDeadline(time.Time{})
		case kindStream, kindDownload:
			if hasBody {
				r.Body = h.deadlineBody(body(), rc, now)
			}
			w = &progressWriter{ResponseWriter: w, rc: rc, window: h.lim.WriteTimeout}
		case kindWait:
			if hasBody {
				r.Body = h.deadlineBody(body(), rc, now)
			}
			wait, _ := parseWait(r.URL.Query().Get("wait"), 0)
			_ = rc.SetWriteDeadline(now.Add(h.lim.BodyTimeout + max(wait, deviceWait) + h.lim.WriteTimeout))
		default:
			if hasBody {
				r.Body = h.deadlineBody(body(), rc, now)
			}
			_ = rc.SetWriteDeadline(now.Add(h.lim.BodyTimeout + h.lim.WriteTimeout))
		}
		mux.ServeHTTP(w, r)
	})
}

// headerBytes approximates the request line and header block.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// deadlineBody bounds the time to send a whole (small) body.
func (h *httpGuard) deadlineBody(b io.ReadCloser, rc *http.ResponseController, now time.Time) io.ReadCloser {
	_ = rc.SetReadDeadline(now.Add(h.lim.BodyTimeout))
	return &clearingBody{ReadCloser: b, rc: rc}
}

// clearingBody drops the read deadline once the body is read: net/http
// then reads ahead to notice a client that leaves, and a read deadline
// passing meanwhile would cancel the request of a route that waits. A body
// that fails (too slow, too large) keeps an expired deadline: net/http's
// own draining of the rest must not wait for a client that stalls.
type clearingBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *clearingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		endBody(b.rc, err)
	}
	return n, err
}

// endBody sets the read deadline at the end of a request body: none after
// the whole body, an expired one after a failure.
func endBody(rc *http.ResponseController, err error) {
	if errors.Is(err, io.EOF) {
		_ = rc.SetReadDeadline(time.Time{})
		return
	}
	_ = rc.SetReadDeadline(time.Now())
}

// errSlowUpload is a firmware upload under api.limits.upload_min_rate.
var errSlowUpload = errors.New("upload slower than api.limits.upload_min_rate")

// rateBody is an upload body: each read must come within window of the
// previous one, and once window has passed the average rate must stay at
// or above minRate.
type rateBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	window  time.Duration
	minRate int64
	start   time.Time
	n       int64
	err     error
}

func (b *rateBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	now := time.Now()
	if el := now.Sub(b.start); el > b.window && float64(b.n) < el.Seconds()*float64(b.minRate) {
		b.err = fmt.Errorf("%w: %d bytes in %v", errSlowUpload, b.n, el.Round(time.Second))
		endBody(b.rc, b.err)
		return 0, b.err
	}
	_ = b.rc.SetReadDeadline(now.Add(b.window))
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err != nil {
		b.err = err
		endBody(b.rc, err)
	}
	return n, err
}

// bodyError maps an error from reading a request body to an HTTP status
// and a message; ok is false for other errors.
func bodyError(err error) (code int, msg string, ok bool) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", mbe.Limit), true
	case errors.Is(err, errSlowUpload):
		return http.StatusRequestTimeout, err.Error(), true
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout, "request body not received in time (api.limits.body_timeout)", true
	}
	return 0, "", false
}

// progressWriter sets a write deadline before each write of a long
// answer: the answer may take hours, but no single write more than window.
type progressWriter struct {
	http.ResponseWriter
	rc     *http.ResponseController
	window time.Duration
}

func (p *progressWriter) Write(b []byte) (int, error) {
	_ = p.rc.SetWriteDeadline(time.Now().Add(p.window))
	return p.ResponseWriter.Write(b)
}

func (p *progressWriter) FlushError() error {
	_ = p.rc.SetWriteDeadline(time.Now().Add(p.window))
	return p.rc.Flush()
}

func (p *progressWriter) Flush() { _ = p.FlushError() }

// Unwrap lets http.ResponseController reach the connection.
func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// notRouted runs the mux's own answer for a request it does not route
// (404, 405 with Allow, or a redirect to the canonical path) and turns an
// error into JSON.
func (h *httpGuard) notRouted(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	rec := &headerRecorder{h: http.Header{}}
	mux.ServeHTTP(rec, r)
	for k, v := range rec.h {
		if k != "Content-Type" && k != "Content-Length" && k != "X-Content-Type-Options" {
			w.Header()[k] = v
		}
	}
	switch rec.code {
	case http.StatusNotFound:
		h.refused.WithLabelValues("not_found").Inc()
		writeError(w, rec.code, fmt.Sprintf("no route %s %s; the API is described at /openapi.json", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		h.refused.WithLabelValues("method_not_allowed").Inc()
		writeError(w, rec.code, fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, rec.h.Get("Allow")))
	default:
		if rec.code >= 400 {
			writeError(w, rec.code, strings.TrimSpace(rec.body.String()))
			return
		}
		w.Header().Set("Content-Type", rec.h.Get("Content-Type"))
		w.WriteHeader(rec.code)
		w.Write(rec.body.Bytes())
	}
}

// headerRecorder captures the mux's small fallback answers.
type headerRecorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *headerRecorder) Header() http.Header { return r.h }
func (r *headerRecorder) WriteHeader(c int) {
	if r.code == 0 {
		r.code = c
	}
}
func (r *headerRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	if r.body.Len() < 4096 {
		r.body.Write(b[:min(len(b), 4096-r.body.Len())])
	}
	return len(b), nil
}

// connLimiter bounds the open connections of the API listener, per client
// (an IPv4 address, an IPv6 /64) and in all. A connection over a bound gets
// a JSON 429 or 503 and is closed before any of its request is read.
type connLimiter struct {
	net.Listener
	h                *httpGuard
	perClient, total int

	mu      sync.Mutex
	byKey   map[netip.Prefix]int
	n       int
	closing sync.WaitGroup // refusals finishing their answer
	linger  chan struct{}  // bounds refusals in progress
}

func (h *httpGuard) listener(ln net.Listener) *connLimiter {
	return &connLimiter{Listener: ln, h: h, perClient: h.lim.MaxConnsPerClient, total: h.lim.MaxConns,
		byKey: map[netip.Prefix]int{}, linger: make(chan struct{}, 64)}
}

// clientKey is the unit a client is counted by: its IPv4 address, or the
// /64 of its IPv6 address (one subscriber's prefix).
func clientKey(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr())
		l.mu.Lock()
		switch {
		case l.n >= l.total:
			l.mu.Unlock()
			l.refuse(c, http.StatusServiceUnavailable, "conns", fmt.Sprintf("too many open connections (%d, api.limits.max_conns); retry later", l.total))
			continue
		case l.byKey[key] >= l.perClient:
			l.mu.Unlock()
			l.refuse(c, http.StatusTooManyRequests, "client_conns", fmt.Sprintf("too many open connections from %s (%d, api.limits.max_conns_per_client); close some or retry later", key.Addr(), l.perClient))
			continue
		}
		l.n++
		l.byKey[key]++
		l.mu.Unlock()
		l.h.conns.Inc()
		return &limitedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

func (l *connLimiter) release(key netip.Prefix) {
	l.mu.Lock()
	l.n--
	if l.byKey[key]--; l.byKey[key] <= 0 {
		delete(l.byKey, key)
	}
	l.mu.Unlock()
	l.h.conns.Dec()
}

// refuse answers a connection over a bound and closes it. The answer fits
// the socket buffer; the connection then lingers (at most a second, and
// for at most cap(linger) connections at once) so that the client reads
// the answer instead of a reset.
func (l *connLimiter) refuse(c net.Conn, code int, reason, msg string) {
	l.h.refused.WithLabelValues(reason).Inc()
	body := fmt.Sprintf("{\n  \"error\": %q\n}\n", msg)
	resp := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, resp); err != nil {
		c.Close()
		return
	}
	select {
	case l.linger <- struct{}{}:
	default:
		c.Close()
		return
	}
	l.closing.Add(1)
	go func() {
		defer l.closing.Done()
		defer func() { <-l.linger }()
		defer c.Close()
		if tc, ok := c.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// Close closes the listener and waits for the refusals in progress (each
// ends within a second).
func (l *connLimiter) Close() error {
	err := l.Listener.Close()
	l.closing.Wait()
	return err
}

// limitedConn gives its slot back once, when closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes a TCP connection (net/http uses it to let a
// client read an error answer before the close).
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
