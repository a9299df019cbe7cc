// Package firmware updates the firmware of LwM2M devices (Object 5), one
// device or a campaign of thousands, over any bearer including SMS.
//
// It holds an on-disk image [Store], the Package URI servers for pull
// ([CoAPHandler] with Block2, [HTTPHandler] with Range), the single-device
// update procedure ([Updater]), group campaigns persisted in bbolt
// ([Manager]) and a demo-device helper for lwm2m/client ([Device]).
//
// # Usage
//
//	store, err := firmware.OpenStore(dir, firmware.WithMaxBytes(64<<20))
//	pkg, _ := firmware.BuildPackage("2.0", image)
//	img, err := store.PutBytes(ctx, "streetlight", "2.0", pkg)
//
//	mux.Handle("/fw/", firmware.NewCoAPHandler(store, "/fw/", ep.BlockSize(), nil))
//	upd, err := firmware.NewUpdater(firmware.Config{
//		Server: srv, Store: store,
//		Endpoints: map[string]*bearer.Endpoint{"udp": ep},
//		Pull:      firmware.PullURIs{CoAP: "coap://192.0.2.1:5683/fw/"},
//	})
//	res, err := upd.Update(ctx, "light-7", img.ID, firmware.Options{Prefer: firmware.Pull})
//
//	m, err := firmware.NewManager(db, upd) // a campaign over many devices
//	id, err := m.Create(ctx, firmware.Spec{Name: "park", Image: img.ID, Prefix: "park-", Concurrency: 2})
//	rep, err := m.Wait(ctx, id)
//
// [Updater.Plan] estimates the method and the SMS segments before anything
// is sent; [Manager] pauses, resumes and cancels campaigns.
//
// # Design
//
// The procedure. Push is a block-wise Write of /5/0/0, pull a Write of the
// Package URI /5/0/1; then Execute /5/0/2, and the update is confirmed by
// /3/0/3 after the device re-registers (LwM2M Core Appendix E.6).
// Campaigns and each device's progress are persisted in bbolt
// ([BoltCampaigns], or any [CampaignStore]) with at-most-once semantics.
//
// Images are never held whole in memory per device: the store serves
// io.SectionReader views of files, the CoAP handler reads one block per
// request and push uploads read one block per Block1 exchange (sent
// through bearer.Endpoint.Do one block at a time). The Endpoint's
// server-side Block2 needs the whole body, so [CoAPHandler] answers each
// Block2 request with the one block it read and removes the request's
// Block2 option before writing, which makes the Endpoint send the block as
// is.
//
// Sleeping devices. Queue-mode devices are woken through a [Waker] before
// each step when they have not been heard from within the awake window
// ([QueueWaker] adapts lwm2m/queue's trigger sender). SMS-only devices are
// pushed over SMS only with [Options].AllowSMSPush.
//
// Ours and a library's. The Object 5 procedure, the campaign scheduler and
// its at-most-once persistence, the image store and the Block2 slicing of
// images from an io.ReaderAt are hand-written: they are the LwM2M rules
// applied to bearer.Endpoint and lwm2m/server, and no library offers them
// over an arbitrary bearer. The CoAP codec is go-coap v3's (through
// bearer), persistence is go.etcd.io/bbolt, HTTP Range serving is
// net/http's ServeContent, and checksums are crypto/sha256.
package firmware
