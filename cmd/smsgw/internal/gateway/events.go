package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// maxSubscribers bounds the server-sent event streams.
const maxSubscribers = 64

type sseEvent struct {
	kind string
	data []byte
}

// hub fans events out to server-sent event streams. Each stream has a
// bounded buffer; a slow stream loses events (counted), never blocks.
type hub struct {
	mu      sync.Mutex
	subs    map[chan sseEvent]struct{}
	buf     int
	closed  bool
	dropped atomic.Uint64
}

func newHub(buf int) *hub { return &hub{subs: map[chan sseEvent]struct{}{}, buf: buf} }

func (h *hub) publish(kind string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		select {
		case c <- sseEvent{kind, data}:
		default:
			h.dropped.Add(1)
		}
	}
}

func (h *hub) subscribe() (chan sseEvent, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.subs) >= maxSubscribers {
		return nil, false
	}
	c := make(chan sseEvent, h.buf)
	h.subs[c] = struct{}{}
	return c, true
}

func (h *hub) unsubscribe(c chan sseEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[c]; ok {
		delete(h.subs, c)
		close(c)
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.subs {
		delete(h.subs, c)
		close(c)
	}
}

// serveSSE streams events as text/event-stream until the client leaves, a
// write does not go through within api.limits.write_timeout (a client that
// stopped reading), or the gateway shuts down.
func (h *hub) serveSSE(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	c, ok := h.subscribe()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many event streams (max %d)", maxSubscribers))
		return
	}
	defer h.unsubscribe(c)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(format string, a ...any) bool {
		if _, err := fmt.Fprintf(w, format, a...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(": m2mbearer smsgw events\n\n") {
		return
	}
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			if !send(": keep-alive\n\n") {
				return
			}
		case ev, ok := <-c:
			if !ok {
				return
			}
			if !send("event: %s\ndata: %s\n\n", ev.kind, ev.data) {
				return
			}
		}
	}
}

func pathsString(ps []path.Path) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// ValueJSON is one decoded resource value in API answers.
type ValueJSON struct {
	Path  string `json:"path"`
	Value any    `json:"value"`
}

func recordsJSON(recs []content.Record) []ValueJSON {
	out := make([]ValueJSON, len(recs))
	for i, r := range recs {
		out[i] = ValueJSON{Path: r.Path.String(), Value: r.Value.Any()}
	}
	return out
}
