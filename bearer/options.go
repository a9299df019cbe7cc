package bearer

import (
	"fmt"
	"log/slog"
	"time"
)

// Limits bounds everything an Endpoint keeps. Zero fields take the
// defaults of DefaultLimits.
type Limits struct {
	// MaxPeers bounds the peers with NSTART state (client side).
	MaxPeers int
	// MaxExchanges bounds outstanding client exchanges (CON awaiting ACK,
	// requests awaiting a response, separate responses in flight).
	MaxExchanges int
	// MaxWaiting bounds client requests waiting for an NSTART slot.
	MaxWaiting int
	// MaxDedup bounds the duplicate-detection cache (peer, MID); the
	// oldest entry is evicted (and counted) when it is full.
	MaxDedup int
	// MaxDedupReply is the largest reply the duplicate cache keeps whole
	// for a handler that called SetRegenerable; larger ones are kept as a
	// 16-byte digest and the request, and regenerated (default 256 bytes).
	MaxDedupReply int
	// MaxObservations bounds server-side observations.
	MaxObservations int
	// MaxClientObservations bounds client-side observations.
	MaxClientObservations int
	// MaxBlockBuffers bounds Block1 reassembly buffers and cached Block2
	// bodies together.
	MaxBlockBuffers int
	// MaxBlockBuffersPerPeer bounds those buffers for one peer; the peer's
	// oldest is evicted (default 8).
	MaxBlockBuffersPerPeer int
	// MaxBlockMemory bounds the bytes held in those buffers together.
	MaxBlockMemory int
	// MaxBodySize bounds one block-wise body, in and out (default 1 MiB).
	MaxBodySize int
	// BlockExpiry is how long an idle block buffer is kept (default
	// EXCHANGE_LIFETIME of the bearer).
	BlockExpiry time.Duration
	// MaxHandlers bounds handlers running at once; requests beyond it are
	// dropped (counted) and the client retransmits.
	MaxHandlers int
	// SeparateAfter is how long a handler may take before the Endpoint
	// sends an empty ACK and the response goes separately (default
	// PROCESSING_DELAY/2, at least 1 ms).
	SeparateAfter time.Duration
	// ResponseTimeout bounds the wait for a separate response after an
	// empty ACK, and for the response to a NON request (default
	// MAX_TRANSMIT_WAIT of the bearer). The caller's context can cut it.
	ResponseTimeout time.Duration
	// ObserveConEvery makes every n-th notification confirmable (default
	// 20), so a dead observer is noticed.
	ObserveConEvery int
	// ObserveConInterval makes a notification confirmable when the last
	// confirmable one is older (default 24 h, RFC 7641 §4.5).
	ObserveConInterval time.Duration
	// ObserveQueue bounds notifications waiting for delivery to one
	// client-side observation callback; extra ones are dropped (counted).
	ObserveQueue int
}

// DefaultLimits returns the limits used for zero fields, for bearer
// parameters p.
func DefaultLimits(p Params) Limits {
	sep := p.ProcessingDelay / 2
	if sep < time.Millisecond {
		sep = time.Millisecond
	}
	return Limits{
		MaxPeers:               10000,
		MaxExchanges:           4096,
		MaxWaiting:             4096,
		MaxDedup:               65536,
		MaxDedupReply:          256,
		MaxObservations:        10000,
		MaxClientObservations:  1024,
		MaxBlockBuffers:        1024,
		MaxBlockBuffersPerPeer: 8,
		MaxBlockMemory:         32 << 20,
		MaxBodySize:            1 << 20,
		BlockExpiry:            p.ExchangeLifetime(),
		MaxHandlers:            256,
		SeparateAfter:          sep,
		ResponseTimeout:        p.MaxTransmitWait(),
		ObserveConEvery:        20,
		ObserveConInterval:     24 * time.Hour,
		ObserveQueue:           64,
	}
}

func (l Limits) withDefaults(p Params) Limits {
	d := DefaultLimits(p)
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt(&l.MaxPeers, d.MaxPeers)
	setInt(&l.MaxExchanges, d.MaxExchanges)
	setInt(&l.MaxWaiting, d.MaxWaiting)
	setInt(&l.MaxDedup, d.MaxDedup)
	setInt(&l.MaxDedupReply, d.MaxDedupReply)
	setInt(&l.MaxObservations, d.MaxObservations)
	setInt(&l.MaxClientObservations, d.MaxClientObservations)
	setInt(&l.MaxBlockBuffers, d.MaxBlockBuffers)
	setInt(&l.MaxBlockBuffersPerPeer, d.MaxBlockBuffersPerPeer)
	setInt(&l.MaxBlockMemory, d.MaxBlockMemory)
	setInt(&l.MaxBodySize, d.MaxBodySize)
	setDur(&l.BlockExpiry, d.BlockExpiry)
	setInt(&l.MaxHandlers, d.MaxHandlers)
	setDur(&l.SeparateAfter, d.SeparateAfter)
	setDur(&l.ResponseTimeout, d.ResponseTimeout)
	setInt(&l.ObserveConEvery, d.ObserveConEvery)
	setDur(&l.ObserveConInterval, d.ObserveConInterval)
	setInt(&l.ObserveQueue, d.ObserveQueue)
	return l
}

// EndpointOption configures NewEndpoint. An option given a value out of
// its range makes NewEndpoint fail with an error wrapping
// ErrInvalidOption (WithTokenLength(9) is refused, not made 8).
type EndpointOption func(*endpointConfig) error

type endpointConfig struct {
	handler   Handler
	limits    Limits
	logger    *slog.Logger
	metrics   Metrics
	seed      int64
	seeded    bool
	blockSize int // 0: from the bearer's BlockTarget
	tokenLen  int // 0: 8
}

// WithHandler sets the handler for incoming requests. Without one, every
// request gets 4.04 Not Found (a client-only endpoint).
func WithHandler(h Handler) EndpointOption {
	return func(c *endpointConfig) error { c.handler = h; return nil }
}

// WithLimits sets the bounds; zero fields keep their defaults.
func WithLimits(l Limits) EndpointOption {
	return func(c *endpointConfig) error { c.limits = l; return nil }
}

// WithLogger sets the logger (default: none, a discard logger).
func WithLogger(l *slog.Logger) EndpointOption {
	return func(c *endpointConfig) error { c.logger = l; return nil }
}

// WithMetrics sets the metrics sink (default: no-op).
func WithMetrics(m Metrics) EndpointOption {
	return func(c *endpointConfig) error { c.metrics = m; return nil }
}

// WithSeed makes message IDs, tokens and retransmission jitter come from a
// deterministic source seeded with seed (tests). Without it they come from
// a generator seeded by crypto/rand.
func WithSeed(seed int64) EndpointOption {
	return func(c *endpointConfig) error { c.seed, c.seeded = seed, true; return nil }
}

// WithBlockSize overrides the block size chosen from the bearer's
// BlockTarget(): one of 16, 32, 64, 128, 256, 512, 1024 (another value is
// an error wrapping ErrInvalidOption).
func WithBlockSize(n int) EndpointOption {
	return func(c *endpointConfig) error {
		if _, ok := szxForSize(n); !ok {
			return fmt.Errorf("%w: WithBlockSize(%d): not a power of two in 16..1024", ErrInvalidOption, n)
		}
		c.blockSize = n
		return nil
	}
}

// WithTokenLength sets the length of generated tokens, 1..8 (default 8;
// another value is an error wrapping ErrInvalidOption).
func WithTokenLength(n int) EndpointOption {
	return func(c *endpointConfig) error {
		if n < 1 || n > 8 {
			return fmt.Errorf("%w: WithTokenLength(%d): not in 1..8", ErrInvalidOption, n)
		}
		c.tokenLen = n
		return nil
	}
}
