// Package logthrottle bounds the log lines written about traffic anyone
// can send (refused CoAP requests, DTLS handshakes that never
// authenticate, SMS from strangers): a flood must not become a flood of
// log.
//
// # Usage
//
//	var refused logthrottle.Limiter // zero value: 10 lines per 10 s
//	if ok, held := refused.Allow(); ok {
//		log.Info("request refused", "peer", peer, "suppressed", held)
//	}
//
// # Design
//
// A [Limiter] lets the first Burst lines of every Interval through
// ([DefaultBurst], [DefaultInterval]) and holds back the rest; the next
// line it lets through says how many were held back, so the log stays a
// sample of what happened while the caller's counters keep the totals.
//
// Hand-written: log/slog has no rate limiting, and the handlers that do
// sample (zap's sampler) sample per message text, while here one Limiter
// guards one kind of event whatever its attributes.
package logthrottle
