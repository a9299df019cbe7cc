// Package firmware is the firmware update side of m2mbearer: an on-disk
// image store, the Package URI servers (CoAP Block2 and HTTP with Range)
// for pull, the single-device LwM2M Object 5 update procedure (push by
// block-wise Write of /5/0/0, pull by Write of /5/0/1, Execute /5/0/2,
// confirmation by /3/0/3 after the device re-registers), group campaigns
// persisted in bbolt, and a demo-device helper that gives our LwM2M
// client real firmware behaviour (integrity check, apply, "reboot" by
// re-registering with the new version).
//
// What is ours and what is a library's: the Object 5 procedure, the
// campaign scheduler and its at-most-once persistence, the image store
// and the Block2 slicing of images from an io.ReaderAt are hand-written,
// because they are the LwM2M Core Appendix E.6 rules applied to our
// bearer.Endpoint and lwm2m/server (no library offers them over an
// arbitrary bearer). The CoAP codec is go-coap v3's (through bearer),
// persistence is go.etcd.io/bbolt, HTTP Range serving is net/http's
// ServeContent, and checksums are crypto/sha256.
//
// Images are never held whole in memory per device: the store serves
// io.SectionReader views of files, the CoAP handler reads one block per
// request and push uploads read one block per Block1 exchange (sent
// through Endpoint.Do one block at a time, so the Endpoint's own
// whole-body Block1 is not used). bearer.Endpoint's server-side Block2
// needs the whole body, so CoAPHandler answers each Block2 request with
// the one block it read and removes the request's Block2 option before
// writing, which makes the Endpoint send the block as is.
//
// Sleeping (queue-mode) devices are woken through a Waker before each
// step when they have not been heard from within the awake window;
// QueueWaker adapts lwm2m/queue's SMS trigger sender. SMS-only devices
// are pushed over SMS only with Options.AllowSMSPush, and Plan gives the
// estimated SMS segments before anything is sent.
//
// Main API: Store (OpenStore, Put, Open, List, Delete), CoAPHandler and
// HTTPHandler (Package URI servers), Updater (Plan, Update, Version),
// Manager (Create, Pause, Resume, Cancel, Status, Wait, List, Delete),
// Device (demo-device firmware behaviour for lwm2m/client).
package firmware
