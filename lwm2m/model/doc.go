// Package model describes LwM2M objects and resources (IDs, names,
// operations, multiplicity, mandatory flags, data types) and keeps them in
// a [Registry].
//
// The content-format decoders (lwm2m/content) use it to type untyped
// payloads (TLV, plain text); the client serves its objects from it. It
// follows OMA LwM2M 1.1 Core §7.1 and the appendix on data types.
//
// # Usage
//
//	r := model.DefaultRegistry()       // core objects 0–7, OSCORE (21) and IPSO 3311
//	res, ok := r.Resource(3311, 5851)  // Dimmer Integer RW 0..100
//
//	objs, err := r.LoadDDF(xmlBytes)   // more objects from OMA DDF files
//	objs, err = r.LoadDir(os.DirFS("/etc/smsgw"), "ddf")
//
// Decoders ask for the smallest view they need, a [Resolver]; *Registry
// implements it.
//
// # Design
//
// Hand-written. The core objects 0–7 (Security, Server, Access Control,
// Device, Connectivity Monitoring, Firmware Update, Location, Connectivity
// Statistics) are written from the OMA object definitions (the LwM2M 1.1
// Core appendices and the OMNA LwM2M registry) as Go tables ([Core]).
// Further objects come from OMA DDF XML files (the LWM2M.xsd format used
// by the OMNA registry), parsed with encoding/xml by [ParseDDF] within
// [MaxDDFSize] and [MaxDDFObjects]; the IPSO 3311 Light Control object,
// the streetlight object, ships embedded ([Embedded]) and is in
// [DefaultRegistry].
package model
