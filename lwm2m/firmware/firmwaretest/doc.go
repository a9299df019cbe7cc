// Package firmwaretest is the conformance suite of lwm2m/firmware's store
// interfaces, [firmware.CampaignStore] and [firmware.ImageCatalog].
//
// # Usage
//
// In an implementation's tests:
//
//	firmwaretest.RunCampaigns(t, firmwaretest.CampaignFactory{New: ..., Reopen: ...})
//	firmwaretest.RunImages(t, firmwaretest.ImageFactory{New: ..., Peer: ...})
//
// # Design
//
// One table of named cases, each run with t.Run, against every
// implementation: bbolt and the image directory in lwm2m/firmware, Redis
// in redisstore. Reopen and Peer, when set, add the restart and
// two-node cases.
package firmwaretest
