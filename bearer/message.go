package bearer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Request is a CoAP request: one the Endpoint received (server side, handed
// to a Handler) or one to send (client side, given to Endpoint.Do).
//
// On the server side Payload is complete: a Block1 upload has been
// reassembled before the handler runs. On the client side a Payload larger
// than the Endpoint's block size is uploaded with Block1 transparently.
//
// The zero Request is a confirmable request with code 0 (Empty), no peer
// and the root path: Endpoint.Do refuses it; use NewRequest.
type Request struct {
	// Code is the method: codes.GET, codes.POST, codes.PUT, codes.DELETE,
	// codes.FETCH, codes.PATCH or codes.IPATCH.
	Code codes.Code
	// Type is message.Confirmable (the zero value) or message.NonConfirmable.
	Type message.Type
	// Token is the request token. Client side: left empty, the Endpoint
	// allocates a random one.
	Token message.Token
	// Options are the CoAP options, sorted by ID (go-coap message.Options).
	Options message.Options
	// Payload is the request body.
	Payload []byte
	// Peer is the remote address: where the request came from (server side)
	// or where it goes (client side).
	Peer net.Addr
	// Identity is the authenticated identity of Peer (server side), taken
	// from the address with PeerIdentity; zero for unauthenticated peers.
	Identity Identity
	// Expires, set on a request sent with Endpoint.Fire, is when it stops
	// being worth sending: a bearer with a queue of its own that implements
	// DeadlineWriter (the SMS outbox) gives up then and sends the earliest
	// first (an SMS wake-up for a request that expires then). Zero: none.
	Expires time.Time

	ctx    context.Context
	mid    uint16
	midSet bool
	steer  *Steer

	body     io.ReaderAt // SetBody: the body, read block by block
	bodySize int64
}

// SetBody makes the request's body the first size bytes of body instead
// of Payload, read block by block as the blocks are sent (and again for
// blocks the peer asks for again), so that a large body such as a
// firmware image is never held whole in memory (client side, Do).
func (r *Request) SetBody(body io.ReaderAt, size int64) {
	r.body, r.bodySize, r.Payload = body, size, nil
}

// bodyLen is the length of the body: SetBody's size, or len(Payload).
func (r *Request) bodyLen() int {
	if r.body != nil {
		return int(min(r.bodySize, math.MaxInt32))
	}
	return len(r.Payload)
}

// readBody returns n bytes of the body at off, in buf when it is large
// enough.
func (r *Request) readBody(buf []byte, off, n int) ([]byte, error) {
	if r.body == nil {
		return r.Payload[off : off+n], nil
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := r.body.ReadAt(buf, int64(off)); err != nil && !(errors.Is(err, io.EOF) && off+n == r.bodyLen()) {
		return nil, fmt.Errorf("bearer: read request body at %d: %w", off, err)
	}
	return buf, nil
}

// SetSteer lets s re-send or abort the request while Endpoint.Do waits
// for its answer (see Steer).
func (r *Request) SetSteer(s *Steer) { r.steer = s }

// SetMessageID fixes the message ID of a client request (Endpoint.Do)
// instead of taking the next one of the Endpoint. With the same Token it
// makes a re-send of the request after a restart a CoAP duplicate that the
// peer answers from its duplicate cache without running it again (RFC 7252
// §4.5): lwm2m/queue derives both from a queued request's attempt. Do fails
// if an exchange with that ID to the peer is still in flight. A request
// uploaded with Block1 uses fixed IDs for none of its blocks.
func (r *Request) SetMessageID(mid uint16) { r.mid, r.midSet = mid, true }

// MessageID returns the ID set with SetMessageID, if any.
func (r *Request) MessageID() (uint16, bool) { return r.mid, r.midSet }

// NewRequest returns a confirmable request for method code to path on peer.
// path is split on '/' into Uri-Path options; a "?a=b&c" suffix becomes
// Uri-Query options.
func NewRequest(code codes.Code, peer net.Addr, path string) *Request {
	r := &Request{Code: code, Type: message.Confirmable, Peer: peer}
	r.SetPath(path)
	return r
}

// Context returns the request's context: on the server side it is cancelled
// when the Endpoint closes; never nil.
func (r *Request) Context() context.Context {
	if r.ctx == nil {
		return context.Background()
	}
	return r.ctx
}

// WithContext returns a shallow copy of r with its context set to ctx.
func (r *Request) WithContext(ctx context.Context) *Request {
	r2 := *r
	r2.ctx = ctx
	return &r2
}

// Path returns the Uri-Path options joined with '/', with a leading '/'.
func (r *Request) Path() string { return optionsPath(r.Options) }

// Queries returns the Uri-Query options in order.
func (r *Request) Queries() []string { return optionStrings(r.Options, message.URIQuery) }

// SetPath replaces the Uri-Path and Uri-Query options with those of path
// ("/3/0/1" or "/rd?ep=x&lt=300").
func (r *Request) SetPath(path string) {
	r.Options = r.Options.Remove(message.URIPath).Remove(message.URIQuery)
	query := ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg != "" {
			r.Options = r.Options.Add(message.Option{ID: message.URIPath, Value: []byte(seg)})
		}
	}
	if query != "" {
		for q := range strings.SplitSeq(query, "&") {
			if q != "" {
				r.Options = r.Options.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
			}
		}
	}
}

// SetOption replaces all options with the option's ID by opt.
func (r *Request) SetOption(opt message.Option) { r.Options = r.Options.Set(opt) }

// AddOption adds opt, keeping the options sorted (repeatable options).
func (r *Request) AddOption(opt message.Option) { r.Options = r.Options.Add(opt) }

// Response is a CoAP response received by the client side of an Endpoint.
// Payload is complete: a Block2 transfer has been fetched and reassembled.
//
// The zero Response has no code, options or payload (ContentFormat and
// Observe report none).
type Response struct {
	// Code is the response code (codes.Content, codes.NotFound, ...).
	Code codes.Code
	// Type is the type of the message that carried the response
	// (Acknowledgement for piggybacked, Confirmable or NonConfirmable).
	Type message.Type
	// Token is the token of the request.
	Token message.Token
	// Options are the response options (of the first block for Block2).
	Options message.Options
	// Payload is the complete response body.
	Payload []byte
	// Peer is the address the response came from.
	Peer net.Addr
}

// ContentFormat returns the Content-Format option and whether it is present.
func (r *Response) ContentFormat() (message.MediaType, bool) {
	cf, err := r.Options.ContentFormat()
	return cf, err == nil
}

// Observe returns the Observe option value and whether it is present.
func (r *Response) Observe() (uint32, bool) {
	v, err := r.Options.Observe()
	return v, err == nil
}

// LocationPath returns the Location-Path options joined with '/' with a
// leading '/', or "" if there are none.
func (r *Response) LocationPath() string {
	segs := optionStrings(r.Options, message.LocationPath)
	if len(segs) == 0 {
		return ""
	}
	return "/" + strings.Join(segs, "/")
}

// UintOption returns an option carrying v in the minimal CoAP uint encoding.
func UintOption(id message.OptionID, v uint32) message.Option {
	var b [4]byte
	n, _ := message.EncodeUint32(b[:], v)
	return message.Option{ID: id, Value: append([]byte(nil), b[:n]...)}
}

// StringOption returns an option carrying s.
func StringOption(id message.OptionID, s string) message.Option {
	return message.Option{ID: id, Value: []byte(s)}
}

// ContentFormatOption returns a Content-Format option.
func ContentFormatOption(cf message.MediaType) message.Option {
	return UintOption(message.ContentFormat, uint32(cf))
}

func optionsPath(opts message.Options) string {
	var sb strings.Builder
	for _, o := range opts {
		if o.ID == message.URIPath {
			sb.WriteByte('/')
			sb.Write(o.Value)
		}
	}
	if sb.Len() == 0 {
		return "/"
	}
	return sb.String()
}

func optionStrings(opts message.Options, id message.OptionID) []string {
	var out []string
	for _, o := range opts {
		if o.ID == id {
			out = append(out, string(o.Value))
		}
	}
	return out
}

func optionUint(opts message.Options, id message.OptionID) (uint32, bool) {
	for _, o := range opts {
		if o.ID == id {
			if len(o.Value) > 4 {
				return 0, false
			}
			v, _, _ := message.DecodeUint32(o.Value)
			return v, true
		}
	}
	return 0, false
}

func optionBytes(opts message.Options, id message.OptionID) ([]byte, bool) {
	for _, o := range opts {
		if o.ID == id {
			return o.Value, true
		}
	}
	return nil, false
}

// cloneOptions deep-copies opts into one allocation.
func cloneOptions(opts message.Options) message.Options {
	if len(opts) == 0 {
		return nil
	}
	n := 0
	for _, o := range opts {
		n += len(o.Value)
	}
	buf := make([]byte, 0, n)
	out := make(message.Options, len(opts))
	for i, o := range opts {
		start := len(buf)
		buf = append(buf, o.Value...)
		out[i] = message.Option{ID: o.ID, Value: buf[start:len(buf):len(buf)]}
	}
	return out
}
