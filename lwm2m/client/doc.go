// Package client is an LwM2M client (the device side) that runs on any
// bearer.Endpoint: UDP, DTLS, OSCORE or SMS.
//
// A [Client] registers with a server (Register, lifetime-driven Update,
// De-register; Core 1.1/1.2 §6.2), serves the device management
// operations on its objects, and sends data with the 1.1 Send operation
// ([Client.Send]).
//
// # Usage
//
// Describe the objects, then run the Client as the handler of its
// Endpoint and start it against the server's address:
//
//	light, err := client.New("urn:imei:490154203237518", client.WithLifetime(300))
//	light.AddDevice(client.Device{Manufacturer: "ACME", Model: "SL-1"})
//	light.AddObject(3311, client.Handlers{
//		Write: func(p path.Path, v content.Value) error { return lamp.Set(v.Bool()) },
//	})
//	light.Set(path.Resource(3311, 0, 5850), content.NewBool(false))
//
//	ep, err := bearer.NewEndpoint(conn, bearer.WithHandler(light))
//	if err != nil { ... }
//	if err := light.Start(ctx, ep, serverAddr); err != nil { ... }
//	defer light.Close()
//
// [Handlers] hook an object's reads, writes, executes, creates and deletes
// into the application; without them the stored values are served.
// [Client.Bootstrap] runs a client-initiated bootstrap first;
// [Client.StartRetry] keeps registering with the [RetryPolicy].
//
// # Design
//
// Objects are described by lwm2m/model (core objects 0, 1, 3, 4, 5 are
// built in, see [Client.AddSecurity], [Client.AddServer],
// [Client.AddDevice], [Client.AddFirmware]; custom objects such as 3311
// come from DDF files, [WithModel]); their values live in the Client.
// Payloads are encoded by lwm2m/content and links by lwm2m/link.
// Observations honour pmin, pmax, gt, lt and st and are bounded
// ([MaxObservations]).
//
// Queue mode ([WithQueueMode], [Client.StartQueueMode]): the client closes
// its UDP socket after its awake window, keeps listening on its SMS
// Endpoint, accepts a Registration Update Trigger only from its server's
// number, reopens UDP and updates; with no UDP at all it registers,
// updates and answers over SMS (binding S).
//
// Everything here is hand-written: the Go LwM2M clients that exist are
// tied to their own CoAP stack, and this one has to run on m2mbearer's
// message layer over UDP, DTLS and SMS alike.
package client
