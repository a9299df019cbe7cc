package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/internal/logthrottle"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// Account is one server account a bootstrap server writes to a client:
// an LwM2M Security object instance and, for a DM server, the matching
// LwM2M Server object instance (Core 1.1 §5.2.7, objects 0 and 1). The
// zero Account is refused by Check: its Mode 0 is PSK, with no key.
type Account struct {
	// Security object instance (/0/SecurityInstance).
	SecurityInstance uint16
	ServerURI        string // coap://host:port, coaps://..., sms://+number
	Bootstrap        bool   // a bootstrap-server account (no Server object)
	Mode             int64  // Security Mode: 0 PSK, 1 RPK, 2 certificate, 3 NoSec
	Identity         []byte // Public Key or Identity (the PSK identity)
	ServerKey        []byte // Server Public Key
	SecretKey        []byte // Secret Key (the PSK)
	ServerSMS        string // LwM2M Server SMS Number
	ShortID          int64  // Short Server ID (1..65534)
	// Server object instance (/1/ServerInstance), for DM servers.
	ServerInstance uint16
	Lifetime       int64
	Binding        string
	DefaultMin     int64
	DefaultMax     int64
}

// Security modes of Account.Mode (LwM2M Security object, resource 2).
const (
	ModePSK   = 0
	ModeRPK   = 1
	ModeCert  = 2
	ModeNoSec = 3
)

// Check refuses an account whose security mode does not fit its URI or
// its credentials. The Security Mode resource numbers PSK 0, so an Account
// whose Mode was forgotten would otherwise be written as PSK with no key;
// a coap:// URI must say ModeNoSec, a coaps:// one a secure mode, and PSK
// needs Identity and SecretKey.
func (a Account) Check() error {
	secure := strings.HasPrefix(a.ServerURI, "coaps://") || strings.HasPrefix(a.ServerURI, "coaps+")
	plain := strings.HasPrefix(a.ServerURI, "coap://") || strings.HasPrefix(a.ServerURI, "coap+")
	switch {
	case a.Mode < ModePSK || a.Mode > 4:
		return fmt.Errorf("lwm2m bootstrap: account %d: unknown security mode %d", a.SecurityInstance, a.Mode)
	case plain && a.Mode != ModeNoSec:
		return fmt.Errorf("lwm2m bootstrap: account %d: %s is unsecured but the mode is %d (NoSec is %d)", a.SecurityInstance, a.ServerURI, a.Mode, ModeNoSec)
	case secure && a.Mode == ModeNoSec:
		return fmt.Errorf("lwm2m bootstrap: account %d: %s needs a secure mode, not NoSec", a.SecurityInstance, a.ServerURI)
	case a.Mode == ModePSK && (len(a.Identity) == 0 || len(a.SecretKey) == 0):
		return fmt.Errorf("lwm2m bootstrap: account %d: PSK mode needs Identity and SecretKey", a.SecurityInstance)
	}
	return nil
}

// BootstrapConfig is what a client gets: the accounts, written after the
// existing Security and Server instances are deleted (Bootstrap-Delete).
type BootstrapConfig struct {
	Accounts []Account
}

// BootstrapServer is an LwM2M bootstrap server (Core 1.1 §6.1): clients
// send Bootstrap-Request (POST /bs?ep=…), the server answers 2.04, deletes
// the client's Security and Server instances, writes the configured ones
// (Bootstrap-Write) and ends with Bootstrap-Finish (POST /bs). Provision
// does the same server-initiated. A zero BootstrapServer has no
// configuration for anybody: it refuses every client.
type BootstrapServer struct {
	lookup  func(ep string, id bearer.Identity) (*BootstrapConfig, bool)
	log     *slog.Logger
	done    func(ep string, err error)
	timeout time.Duration

	refusedLog logthrottle.Limiter

	mu        sync.Mutex
	endpoints map[string]*bearer.Endpoint
	sessions  map[string]bool // endpoint names being bootstrapped
	max       int
	closed    bool
	wg        sync.WaitGroup
	stop      chan struct{}
}

// BootstrapOption configures NewBootstrapServer. An option given a value
// out of its range makes NewBootstrapServer fail with an error wrapping
// ErrInvalidOption.
type BootstrapOption func(*BootstrapServer) error

// WithBootstrapDone sets a callback run when a bootstrap session ends
// (err nil after a successful Bootstrap-Finish).
func WithBootstrapDone(f func(ep string, err error)) BootstrapOption {
	return func(b *BootstrapServer) error { b.done = f; return nil }
}

// WithBootstrapLogger sets the logger (default: none, a discard logger).
func WithBootstrapLogger(l *slog.Logger) BootstrapOption {
	return func(b *BootstrapServer) error { b.log = l; return nil }
}

// WithBootstrapLimits bounds concurrent sessions, at least 1 (default
// 1024), and the duration of one session, above 0 (default 5 min).
func WithBootstrapLimits(sessions int, timeout time.Duration) BootstrapOption {
	return func(b *BootstrapServer) error {
		if sessions < 1 || timeout <= 0 {
			return fmt.Errorf("%w: WithBootstrapLimits(%d, %v): at least 1 session and a positive timeout",
				ErrInvalidOption, sessions, timeout)
		}
		b.max, b.timeout = sessions, timeout
		return nil
	}
}

// NewBootstrapServer returns a bootstrap server; lookup returns the
// configuration of an endpoint name presented with a security identity
// (false refuses the client: Bootstrap-Request gets 4.00 Bad Request).
// It fails on a nil lookup or an option out of its range
// (ErrInvalidOption).
func NewBootstrapServer(lookup func(ep string, id bearer.Identity) (*BootstrapConfig, bool), opts ...BootstrapOption) (*BootstrapServer, error) {
	if lookup == nil {
		return nil, fmt.Errorf("lwm2m bootstrap: %w: nil lookup", ErrInvalidOption)
	}
	b := &BootstrapServer{lookup: lookup, endpoints: map[string]*bearer.Endpoint{}, sessions: map[string]bool{},
		max: 1024, timeout: 5 * time.Minute, stop: make(chan struct{})}
	for _, o := range opts {
		if err := o(b); err != nil {
			return nil, fmt.Errorf("lwm2m bootstrap: %w", err)
		}
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	return b, nil
}

// Attach sets the Endpoint used to reach clients on a transport.
func (b *BootstrapServer) Attach(transport string, ep *bearer.Endpoint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.endpoints == nil {
		b.endpoints = map[string]*bearer.Endpoint{}
	}
	b.endpoints[transport] = ep
}

// Close stops the running sessions and waits for them.
func (b *BootstrapServer) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		if b.stop != nil {
			close(b.stop)
		}
	}
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

// Handler returns the bearer.Handler serving Bootstrap-Request on a
// transport. An unknown endpoint gets 4.00 Bad Request, a busy server 5.03.
func (b *BootstrapServer) Handler(transport string) bearer.Handler {
	return bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		segs := uriPath(r.Options)
		if len(segs) != 1 || segs[0] != "bs" {
			_ = w.WriteResponse(codes.NotFound, nil)
			return
		}
		if r.Code != codes.POST {
			_ = w.WriteResponse(codes.MethodNotAllowed, nil)
			return
		}
		ep := ""
		for _, q := range r.Queries() {
			if v, ok := cutPrefix(q, "ep="); ok {
				ep = v
			}
		}
		if ep == "" && r.Identity.Mode == "psk" {
			ep = string(r.Identity.PSKIdentity)
		}
		cfg, ok := b.config(ep, r.Identity)
		if ep == "" || !ok {
			if ok, held := b.refusedLog.Allow(); ok { // anyone can ask: limited
				b.log.Info("lwm2m bootstrap refused", "ep", ep, "peer", addrString(r.Peer), "suppressed", held)
			}
			_ = w.WriteResponse(codes.BadRequest, []byte("unknown endpoint"))
			return
		}
		b.mu.Lock()
		e, haveEP := b.endpoints[transport]
		busy := b.closed || len(b.sessions) >= b.max || b.sessions[ep]
		if haveEP && !busy {
			b.sessions[ep] = true
			b.wg.Add(1)
		}
		b.mu.Unlock()
		if !haveEP || busy {
			_ = w.WriteResponse(codes.ServiceUnavailable, nil)
			return
		}
		_ = w.WriteResponse(codes.Changed, nil)
		peer := r.Peer
		go func() {
			defer b.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
			defer cancel()
			go func() {
				select {
				case <-b.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			err := b.provision(ctx, e, peer, ep, cfg)
			b.mu.Lock()
			delete(b.sessions, ep)
			b.mu.Unlock()
			if err != nil {
				b.log.Warn("lwm2m bootstrap failed", "ep", ep, "err", err)
			}
			if b.done != nil {
				b.done(ep, err)
			}
		}()
	})
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

// config looks up an endpoint's configuration; a zero BootstrapServer
// (no lookup) has none for anybody.
func (b *BootstrapServer) config(ep string, id bearer.Identity) (*BootstrapConfig, bool) {
	if b.lookup == nil {
		return nil, false
	}
	return b.lookup(ep, id)
}

// Provision bootstraps the client at peer (server-initiated bootstrap).
func (b *BootstrapServer) Provision(ctx context.Context, e *bearer.Endpoint, peer net.Addr, ep string) error {
	cfg, ok := b.config(ep, bearer.Identity{})
	if !ok {
		return fmt.Errorf("lwm2m bootstrap: no configuration for %q", ep)
	}
	return b.provision(ctx, e, peer, ep, cfg)
}

// ErrBootstrap wraps a failed bootstrap step.
var ErrBootstrap = errors.New("lwm2m bootstrap: failed")

func (b *BootstrapServer) provision(ctx context.Context, e *bearer.Endpoint, peer net.Addr, ep string, cfg *BootstrapConfig) error {
	step := func(op string, code codes.Code, p string, f content.Format, body []byte, want codes.Code) error {
		req := bearer.NewRequest(code, peer, p)
		if body != nil {
			req.SetOption(bearer.ContentFormatOption(message.MediaType(f)))
			req.Payload = body
		}
		resp, err := e.Do(ctx, req)
		if err != nil {
			return fmt.Errorf("%w: %s %s %s: %w", ErrBootstrap, op, ep, p, err)
		}
		if resp.Code != want {
			return fmt.Errorf("%w: %s %s %s: %v", ErrBootstrap, op, ep, p, resp.Code)
		}
		return nil
	}
	for _, a := range cfg.Accounts {
		if err := a.Check(); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBootstrap, ep, err)
		}
	}
	for _, p := range []string{"/0", "/1"} {
		if err := step("bootstrap-delete", codes.DELETE, p, 0, nil, codes.Deleted); err != nil {
			return err
		}
	}
	for _, a := range cfg.Accounts {
		sp := path.Instance(0, a.SecurityInstance)
		recs := []content.Record{
			{Path: path.Resource(0, a.SecurityInstance, 0), Value: content.NewString(a.ServerURI)},
			{Path: path.Resource(0, a.SecurityInstance, 1), Value: content.NewBool(a.Bootstrap)},
			{Path: path.Resource(0, a.SecurityInstance, 2), Value: content.NewInt(a.Mode)},
			{Path: path.Resource(0, a.SecurityInstance, 3), Value: content.NewOpaque(a.Identity)},
			{Path: path.Resource(0, a.SecurityInstance, 4), Value: content.NewOpaque(a.ServerKey)},
			{Path: path.Resource(0, a.SecurityInstance, 5), Value: content.NewOpaque(a.SecretKey)},
		}
		if a.ServerSMS != "" {
			recs = append(recs, content.Record{Path: path.Resource(0, a.SecurityInstance, 9), Value: content.NewString(a.ServerSMS)})
		}
		if !a.Bootstrap {
			recs = append(recs, content.Record{Path: path.Resource(0, a.SecurityInstance, 10), Value: content.NewInt(a.ShortID)})
		}
		body, err := content.Encode(content.TLV, sp, recs)
		if err != nil {
			return fmt.Errorf("%w: encode %v: %w", ErrBootstrap, sp, err)
		}
		if err := step("bootstrap-write", codes.PUT, sp.String(), content.TLV, body, codes.Changed); err != nil {
			return err
		}
		if a.Bootstrap {
			continue
		}
		vp := path.Instance(1, a.ServerInstance)
		srec := []content.Record{
			{Path: path.Resource(1, a.ServerInstance, 0), Value: content.NewInt(a.ShortID)},
			{Path: path.Resource(1, a.ServerInstance, 1), Value: content.NewInt(a.Lifetime)},
			{Path: path.Resource(1, a.ServerInstance, 6), Value: content.NewBool(false)},
			{Path: path.Resource(1, a.ServerInstance, 7), Value: content.NewString(a.Binding)},
		}
		if a.DefaultMin > 0 {
			srec = append(srec, content.Record{Path: path.Resource(1, a.ServerInstance, 2), Value: content.NewInt(a.DefaultMin)})
		}
		if a.DefaultMax > 0 {
			srec = append(srec, content.Record{Path: path.Resource(1, a.ServerInstance, 3), Value: content.NewInt(a.DefaultMax)})
		}
		body, err = content.Encode(content.TLV, vp, srec)
		if err != nil {
			return fmt.Errorf("%w: encode %v: %w", ErrBootstrap, vp, err)
		}
		if err := step("bootstrap-write", codes.PUT, vp.String(), content.TLV, body, codes.Changed); err != nil {
			return err
		}
	}
	return step("bootstrap-finish", codes.POST, "/bs", 0, nil, codes.Changed)
}
