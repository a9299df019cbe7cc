// Package queue keeps LwM2M requests for sleeping devices in durable
// per-device queues and sends them when the device is awake: the
// queue-mode core of the LwM2M server.
//
// It implements LwM2M 1.1/1.2 Core Queue Mode, the 1.0 "UQS" binding and
// the 1.1 /1/x/21 Trigger, with SMS wake-ups of sleeping devices.
// lwm2m/server puts it under its Go API ([Executor] is the one edge the
// server implements).
//
// # Usage
//
//	store, err := queue.OpenBoltStore(filepath.Join(dir, "queue.db"), time.Second)
//	m, err := queue.New(queue.Config{Store: store, Executor: exec, Waker: waker})
//	if err != nil { ... }
//	defer m.Close()
//
//	id, err := m.Enqueue(ctx, queue.Request{
//		Endpoint: "streetlight-17", Kind: queue.KindRead, Paths: []string{"/3/0/0"},
//	})
//	m.Seen("streetlight-17", 0)   // the server saw the device's Update
//	rec, err := m.Wait(ctx, id)    // rec.State: done, failed, expired or cancelled
//
// [Manager.Enqueue] stores the request before returning its id.
// [Manager.Get], [Manager.Wait] and [Manager.Subscribe] report what became
// of it; [Manager.SetDevice] tells how to wake a device ([DeviceConfig],
// [WakeTarget]).
//
// # Design
//
// Awake, then drained in order. The server reports the device's traffic
// ([Manager.Seen]). While the device is awake (from its last message for
// MAX_TRANSMIT_WAIT of its bearer or a configured window, narrowed to the
// window learned from its unanswered requests, see [Config].MinWindow) its
// queue drains in order with NSTART=1 through the [Executor]. A request
// left unanswered because the device slept goes back to the head of the
// queue, never failed for that alone; the server re-sends it on the wire
// at once when the device shows up again (bearer.Steer).
//
// Woken by SMS, knowing no SMS. A sleeping device that may be woken by
// SMS gets a trigger from the [Waker] (an Execute of /1/x/8 as a CoAP NON:
// [TriggerMessage]; the SMS waker is lwm2m/smswake, wired by the
// gateway), again with exponential backoff ([WakePolicy]), until it shows
// up or its requests fail with [ErrNotWoken]. A refusal the Waker marks
// as final ([RefuseWake], [ErrWakeRefused]) fails them at once.
//
// One final state each. Every request ends in exactly one reported state:
// done, failed, expired or cancelled ([State]), retrievable by Get and Wait
// for the retention period and sent as an [Event].
//
// At most once, also across a crash. Before the executor runs a request,
// its "sending" state and attempt number are stored. The executor derives
// the CoAP token and message ID from the [Attempt], so a re-send of the
// same attempt is a CoAP duplicate the device answers from its cache
// without running the operation again (RFC 7252 §4.5). After a restart, or
// when the device went to sleep mid-request, the request returns to the
// head of its queue and is re-sent with the same attempt while the device
// can still deduplicate it ([Config].DedupWindow, EXCHANGE_LIFETIME); after
// that, an idempotent operation (Read, Write, Delete, ...) is sent as a new
// attempt and a non-idempotent one (Execute, Create, ...) fails with
// [ErrUnknownOutcome] rather than risk running twice. Re-sending was chosen
// over failing every in-flight request after a crash because, with CoAP
// deduplication, the re-send cannot run the operation a second time, and
// failing would report as lost operations that may well have succeeded.
//
// Bounded. Requests per device and in total (count and bytes,
// [*FullError]), devices ([ErrTooManyDevices]), retained results
// ([Config].MaxResults, Retention), subscriber channels. Timers are one
// heap served by one goroutine; drains and wake-ups run on
// [Config].Concurrency workers. [New] starts them, [Manager.Close] stops
// them.
//
// Ours and a library's. The queue, the scheduling, the record encoding (a
// compact versioned binary form, [EncodeRecord]) and the wake-up policy
// are hand-written here, since they are the LwM2M queue-mode rules
// themselves. Durability is go.etcd.io/bbolt ([BoltStore]; [MemStore] for
// tests), the trigger datagram is encoded by go-coap v3's udp/coder, and
// the SMS side (segmentation, WAP Push framing, budgets, the durable
// outbox) is bearer/sms, behind lwm2m/smswake.
package queue
