// Package link parses and encodes the CoRE Link Format (RFC 6690, content
// format 40) as LwM2M uses it, with the LwM2M attributes carried in it.
//
// LwM2M uses it for the Register/Update payload
// ("</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>;ver=1.1"), the Discover and
// Bootstrap-Discover responses ("</3/0/7>;dim=8;pmin=10",
// "</0/1>;ssid=101;uri="coap://h"") and the attributes of OMA LwM2M 1.1
// Core §5.1.2 and 1.2 Core §5.1.1 (pmin, pmax, gt, lt, st, epmin, epmax,
// edge, con, hqmax, dim, ssid, uri, ver).
//
// # Usage
//
//	links, err := link.Parse(payload) // a *SyntaxError (errors.Is ErrSyntax): answer 4.00
//	reg, err := link.ParseRegistration(links)
//	a, err := links[0].Attributes()   // pmin, pmax, ver, ...
//
//	attrs, unset, err := link.ParseQuery(queries) // a Write-Attributes request
//	b := link.Encode([]link.Link{link.PathLink(path.Instance(3, 0), attrs)})
//
// # Design
//
// A [Link] keeps its parameters ([Param]) in the order and quoting the
// peer sent; [Attributes] is their typed LwM2M view.
//
// Hand-written: the grammar is small, LwM2M needs the parameter order and
// quoting kept as the peer sent them, and no Go module offers RFC 6690
// with a bounded, panic-free parser. The parser follows the RFC 6690 §2
// ABNF with two tolerances seen in real devices: optional whitespace (SP,
// HTAB, CR, LF) around ',' and ';', and an empty payload (no links).
// Everything else that the ABNF refuses is refused with a [*SyntaxError]
// wrapping [ErrSyntax], which a server maps to 4.00 Bad Request; a payload
// with more than [DefaultMaxLinks] links fails with [ErrLimit] ([ParseN]
// sets another bound).
package link
