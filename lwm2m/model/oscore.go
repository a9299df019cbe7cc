package model

// OSCOREID is the LwM2M OSCORE object (object 21, LwM2M 1.1 Core
// Appendix E.5), referenced from Security /0/x/17 (OSCORE Security Mode).
const OSCOREID = 21

// OSCORE returns a fresh definition of object 21 (OMNA 21.xml, object
// version 2.0 with the ID Context of LwM2M 1.2). Like the Security object
// its resources have no operations: only a Bootstrap-Server may access
// them.
func OSCORE() *Object {
	return &Object{
		ID: OSCOREID, Name: "OSCORE", URN: "urn:oma:lwm2m:oma:21:2.0", Version: "2.0", LwM2MVersion: "1.1",
		Multiple: multi, Mandatory: opt,
		Description: "This LwM2M Object provides the keying material and related information of a LwM2M Client appropriate to access a specified LwM2M Server using OSCORE (RFC 8613).",
		Resources: []Resource{
			res(0, "OSCORE Master Secret", NoOps, single, mand, Opaque, "", ""),
			res(1, "OSCORE Sender ID", NoOps, single, mand, Opaque, "", ""),
			res(2, "OSCORE Recipient ID", NoOps, single, mand, Opaque, "", ""),
			res(3, "OSCORE AEAD Algorithm", NoOps, single, opt, Integer, "", ""),
			res(4, "OSCORE HMAC Algorithm", NoOps, single, opt, Integer, "", ""),
			res(5, "OSCORE Master Salt", NoOps, single, opt, Opaque, "", ""),
			res(6, "OSCORE ID Context", NoOps, single, opt, Opaque, "", ""),
		},
	}
}
