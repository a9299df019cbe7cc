package smpp

import "sync/atomic"

type counters struct {
	binds, bindFailures, linkDrops, enquireFailures   atomic.Uint64
	submitted, submitErrors, throttled, timeouts      atomic.Uint64
	refused, received, receipts, receiptsIntermediate atomic.Uint64
	receiptsUnknown, receiptsUnreadable               atomic.Uint64
	malformed, lateResponses, inboundRejected         atomic.Uint64
	receiptsHeld, receiptsHoldFull, outbindRefused    atomic.Uint64
	setsExpired, setsEvicted, correlationsExpired     atomic.Uint64
}

// Stats are the link's counters since Dial.
type Stats struct {
	Bound                bool   // a session that submits is bound now
	Receiving            bool   // a session that receives is bound now
	Binds, BindFailures  uint64 // successful and failed binds
	LinkDrops            uint64 // bound sessions lost (re-bound after)
	EnquireFailures      uint64 // enquire_link unanswered
	Submitted            uint64 // submit_sm accepted (ESME_ROK)
	SubmitErrors         uint64 // submit_sm refused or unanswered
	Throttled            uint64 // ESME_RTHROTTLED / ESME_RMSGQFUL answers
	Timeouts             uint64 // requests unanswered within ResponseTimeout
	Refused              uint64 // TPDUs the link cannot carry
	Received             uint64 // deliver_sm with a short message
	Receipts             uint64 // final receipts correlated
	ReceiptsIntermediate uint64 // non-final receipts (ENROUTE, ACCEPTD, ...)
	ReceiptsUnknown      uint64 // receipts for no stored message_id
	ReceiptsUnreadable   uint64 // receipts without id or state
	Malformed            uint64 // PDUs refused as malformed or unknown
	LateResponses        uint64 // responses to nothing outstanding
	InboundRejected      uint64 // deliver_sm answered ESME_RX_T_APPN
	ReceiptsHeld         uint64 // receipts that came before their message_id was stored, held for it
	ReceiptsHoldFull     uint64 // receipts not held (too many held): taken as unknown
	OutbindRefused       uint64 // outbind PDUs from the SMSC (not supported)
	SetsExpired          uint64 // ConcatPayload sets removed incomplete after PayloadSetMaxAge
	SetsEvicted          uint64 // ConcatPayload sets removed incomplete beyond the bound on sets held
	CorrelationsExpired  uint64 // correlations removed after ReceiptMaxAge (their receipt never came)
	AwaitingReceipt      int    // correlations stored now (of every link sharing the State)
	PayloadSets          int    // incomplete ConcatPayload sets stored now (idem)
	LastBindError        string // the last failed bind's error, "" once bound again
}

// Stats returns the link's counters.
func (l *Link) Stats() Stats {
	c := &l.c
	l.mu.Lock()
	receiving := l.rxBound
	l.mu.Unlock()
	lastErr := ""
	if p := l.lastErr.Load(); p != nil {
		lastErr = *p
	}
	st := Stats{
		Bound: l.Ready(), Receiving: receiving, Binds: c.binds.Load(), BindFailures: c.bindFailures.Load(), LinkDrops: c.linkDrops.Load(),
		EnquireFailures: c.enquireFailures.Load(), Submitted: c.submitted.Load(), SubmitErrors: c.submitErrors.Load(),
		Throttled: c.throttled.Load(), Timeouts: c.timeouts.Load(), Refused: c.refused.Load(), Received: c.received.Load(),
		Receipts: c.receipts.Load(), ReceiptsIntermediate: c.receiptsIntermediate.Load(),
		ReceiptsUnknown: c.receiptsUnknown.Load(), ReceiptsUnreadable: c.receiptsUnreadable.Load(),
		Malformed: c.malformed.Load(), LateResponses: c.lateResponses.Load(), InboundRejected: c.inboundRejected.Load(),
		ReceiptsHeld: c.receiptsHeld.Load(), ReceiptsHoldFull: c.receiptsHoldFull.Load(), OutbindRefused: c.outbindRefused.Load(),
		SetsExpired: c.setsExpired.Load(), SetsEvicted: c.setsEvicted.Load(), CorrelationsExpired: c.correlationsExpired.Load(),
		LastBindError: lastErr,
	}
	if l.state != nil {
		st.AwaitingReceipt, st.PayloadSets = l.state.st.pending(), l.state.st.sets()
	}
	return st
}
