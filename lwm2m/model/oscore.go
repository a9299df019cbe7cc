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
		Multiple:    true,
		Description: "This LwM2M Object provides the keying material and related information of a LwM2M Client appropriate to access a specified LwM2M Server using OSCORE (RFC 8613).",
		Resources: []Resource{
			{ID: 0, Name: "OSCORE Master Secret", Mandatory: true, Type: Opaque},
			{ID: 1, Name: "OSCORE Sender ID", Mandatory: true, Type: Opaque},
			{ID: 2, Name: "OSCORE Recipient ID", Mandatory: true, Type: Opaque},
			{ID: 3, Name: "OSCORE AEAD Algorithm", Type: Integer},
			{ID: 4, Name: "OSCORE HMAC Algorithm", Type: Integer},
			{ID: 5, Name: "OSCORE Master Salt", Type: Opaque},
			{ID: 6, Name: "OSCORE ID Context", Type: Opaque},
		},
	}
}
