package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrUnavailable is wrapped by every error that comes from Redis being out
// of reach (connection refused or reset, a timeout, a server still loading
// its AOF, a read-only replica): the operation did not happen, or its
// outcome is unknown, and the caller should refuse its own request for
// now (HTTP 503, CoAP 5.03). The *UnavailableError carrying it answers
// Unavailable() true, so layers that do not import this package branch on
// it without string matching.
var ErrUnavailable = errors.New("redisstore: Redis unavailable")

// UnavailableError is an operation that failed because Redis was out of
// reach.
type UnavailableError struct {
	Op  string // what was being done ("registry add")
	Err error  // the client's error
}

func (e *UnavailableError) Error() string {
	if e == nil {
		return "<nil>"
	}
	return "redisstore: " + e.Op + ": Redis unavailable: " + fmt.Sprint(e.Err)
}

// Unwrap returns ErrUnavailable and the client's error.
func (e *UnavailableError) Unwrap() []error {
	if e == nil {
		return nil
	}
	return []error{ErrUnavailable, e.Err}
}

// Unavailable reports true: the store is out of reach, try again later.
// lwm2m/server and the smsgw API test for this method (5.03, 503).
func (e *UnavailableError) Unavailable() bool { return true }

// Temporary reports true (as net.Error's: retrying later may succeed).
func (e *UnavailableError) Temporary() bool { return true }

// Timeout reports whether the cause was a timeout.
func (e *UnavailableError) Timeout() bool {
	var ne net.Error
	return e != nil && errors.As(e.Err, &ne) && ne.Timeout()
}

// wrap classifies err: nil stays nil, redis.Nil stays redis.Nil, an
// outage becomes an *UnavailableError, anything else (a script error, a
// wrong type) gets the operation's name.
func wrap(op string, err error) error {
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		return err
	case isOutage(err):
		return &UnavailableError{Op: op, Err: err}
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// isOutage reports whether err means Redis could not be reached or cannot
// serve now.
func isOutage(err error) bool {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &ne), errors.As(err, &oe), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	msg := err.Error()
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "BUSY ", "TRYAGAIN", "CLUSTERDOWN", "connection pool", "use of closed network connection"} {
		if strings.HasPrefix(msg, p) || strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// Options configure Open and New. A zero field takes its default; a
// negative timeout makes them fail with an error wrapping ErrInvalidOption.
type Options struct {
	// Prefix starts every key of this deployment ("smsgw:" when empty), so
	// several deployments can share one Redis. docs/redis.md lists the keys.
	Prefix string
	// Node names this gateway node (inbox and outbox keys, the node of a
	// registration); "" is the host name.
	Node string
	// DialTimeout bounds connecting (default 2 s); OpTimeout bounds one
	// command's read and write (default 3 s).
	DialTimeout, OpTimeout time.Duration
	// Logger receives the store's logs (default: none, a discard logger).
	Logger *slog.Logger
}

// DB is one connection pool to Redis and a key prefix: the stores of a
// gateway node share it. It reconnects by itself after an outage (each
// command dials anew when the pool has no live connection). Commands are
// never retried by the client: a write whose answer was lost must not be
// applied twice, so the stores decide (see the package doc).
type DB struct {
	c      *redis.Client
	prefix string
	node   string
	log    *slog.Logger
}

// ParseURL checks a store URL: redis://[user:pass@]host:port/db or
// rediss:// (TLS). It returns the client options.
func ParseURL(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("redisstore: store URL: %w", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("redisstore: store URL scheme %q: want redis:// or rediss://", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("redisstore: store URL %q has no host", Redact(raw))
	}
	if u.RawQuery != "" {
		return nil, fmt.Errorf("redisstore: store URL: no query parameters (the key prefix is store_prefix)")
	}
	o, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redisstore: store URL %q: %w", Redact(raw), err)
	}
	if u.Scheme == "rediss" && o.TLSConfig == nil {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// Redact returns the URL with its password replaced by "xxxxx" (for logs
// and error messages).
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Open connects to the Redis server of url and checks it answers (within
// ctx). A server that is down makes Open fail with ErrUnavailable.
func Open(ctx context.Context, rawURL string, o Options) (*DB, error) {
	ro, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = o.DialTimeout, o.OpTimeout, o.OpTimeout
	ro.DialerRetries = 1
	ro.MaxRetries = -1 // never resend a command whose answer was lost
	ro.ContextTimeoutEnabled = true
	ro.DisableIdentity = true
	ro.Protocol = 2
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	d, err := New(redis.NewClient(ro), o)
	if err != nil {
		return nil, err
	}
	if err := d.Ping(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// quiet silences go-redis's own log lines (a dial failure on every command
// during an outage): the stores return those errors as *UnavailableError
// and the change feeds log outages, limited. go-redis's logger is
// process-wide; Open sets it once.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// ErrInvalidOption is wrapped by the error of Open, New, OpenRegistry and
// OpenBindings for an option out of its range (named in the error).
var ErrInvalidOption = errors.New("redisstore: invalid option")

// check refuses negative timeouts and fills in the defaults of zero ones.
func (o *Options) check() error {
	var f cfgcheck.Fields
	cfgcheck.Default(&f, "DialTimeout", &o.DialTimeout, 2*time.Second)
	cfgcheck.Default(&f, "OpTimeout", &o.OpTimeout, 3*time.Second)
	return f.Err(ErrInvalidOption, "Options")
}

// New uses a client made elsewhere (its own timeouts apply: Options'
// DialTimeout and OpTimeout are checked but only Open uses them). Close
// closes it. A nil client or an invalid option is refused with an error
// wrapping ErrInvalidOption.
func New(c *redis.Client, o Options) (*DB, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: New needs a client", ErrInvalidOption)
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Prefix == "" {
		o.Prefix = "smsgw:"
	}
	if o.Node == "" {
		o.Node = DefaultNode()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &DB{c: c, prefix: o.Prefix, node: o.Node, log: o.Logger}, nil
}

// DefaultNode is the host name, or "node" when it cannot be read.
func DefaultNode() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "node"
	}
	return h
}

// Ping checks that Redis answers.
func (d *DB) Ping(ctx context.Context) error {
	if d == nil || d.c == nil {
		return &UnavailableError{Op: "ping", Err: ErrClosed}
	}
	return wrap("ping", d.c.Ping(ctx).Err())
}

// ErrClosed is returned by a zero or closed DB.
var ErrClosed = errors.New("redisstore: closed")

// Client returns the go-redis client (the cluster layer builds on it).
func (d *DB) Client() *redis.Client { return d.c }

// Prefix returns the deployment's key prefix.
func (d *DB) Prefix() string { return d.prefix }

// Node returns this node's name.
func (d *DB) Node() string { return d.node }

// Key joins the prefix and parts with ":" ("smsgw:" + "reg:ep").
func (d *DB) Key(parts ...string) string { return d.prefix + strings.Join(parts, ":") }

// Close closes the connection pool.
func (d *DB) Close() error {
	if d == nil || d.c == nil {
		return nil
	}
	return d.c.Close()
}
