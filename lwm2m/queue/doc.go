// Package queue is the queue-mode core of the LwM2M server: durable
// per-device request queues, awake tracking, the drain of a device's queue
// when it shows up, and SMS wake-ups of sleeping devices (LwM2M 1.1/1.2
// Core Queue Mode; 1.0 "UQS" and 1.1 /1/x/21 Trigger).
//
// A caller enqueues an LwM2M operation for an endpoint (Manager.Enqueue);
// the request is stored durably before its id is returned, then waits for
// the device. The server reports the device's traffic (Manager.Seen); while
// the device is awake (from its last message for MAX_TRANSMIT_WAIT of its
// bearer or a configured window, narrowed to the window learned from its
// unanswered requests, see Config.MinWindow) its queue drains in order
// with NSTART=1 through an Executor, the one edge the LwM2M server
// implements. A request left unanswered because the device slept goes
// back to the head of the queue, never failed for that alone; the
// server's Executor re-sends a request on the wire at once when the device
// shows up again (lwm2m/server, bearer.Steer). A sleeping device that may be
// woken by SMS gets a trigger (an Execute of /1/x/8 as a CoAP NON over SMS,
// see SMSWaker and TriggerMessage), again with exponential backoff, until
// it shows up or the requests fail with ErrNotWoken. Every request ends in
// exactly one reported final state: done, failed, expired or cancelled,
// retrievable by Get and Wait for the retention period and sent as an
// Event.
//
// At most once, also across a crash: before the executor runs a request,
// its "sending" state and attempt number are stored. The executor derives
// the CoAP token and message ID from the Attempt, so a re-send of the same
// attempt is a CoAP duplicate the device answers from its cache without
// running the operation again (RFC 7252 §4.5). After a restart, or when the
// device went to sleep mid-request, the request returns to the head of its
// queue and is re-sent with the same attempt while the device can still
// deduplicate it (Config.DedupWindow, EXCHANGE_LIFETIME); after that, an
// idempotent operation (Read, Write, Delete, ...) is sent as a new attempt
// and a non-idempotent one (Execute, Create, ...) fails with
// ErrUnknownOutcome rather than risk running twice. We chose re-sending
// over failing every in-flight request after a crash because, with CoAP
// deduplication, the re-send cannot run the operation a second time, and
// failing would report as lost operations that may well have succeeded.
//
// What is ours and what is a library's: the queue, the scheduling, the
// record encoding (a compact versioned binary form) and the wake-up policy
// are hand-written here, since they are the LwM2M queue-mode rules
// themselves. Durability is go.etcd.io/bbolt (BoltStore; MemStore for
// tests), the trigger datagram is encoded by go-coap v3's udp/coder, and
// the SMS side (segmentation, WAP Push framing, budgets, the durable
// outbox) is bearer/sms.
//
// Bounds: requests per device and in total (count and bytes, *FullError),
// devices (ErrTooManyDevices), retained results (MaxResults, Retention),
// subscriber channels. Timers are one heap served by one goroutine; drains
// and wake-ups run on Config.Concurrency workers. New starts them, Close
// stops them.
package queue
