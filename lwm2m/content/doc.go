// Package content encodes and decodes LwM2M payloads in every content
// format of LwM2M 1.0 to 1.2.
//
// A payload is a list of [Record] values: an absolute path and a typed
// [Value] each.
//
// The formats (OMA LwM2M 1.1 Core §7.4 and 1.2 Core §7.4) are plain text
// (0), CoRE link (40), opaque (42), SenML JSON (110, RFC 8428), SenML CBOR
// (112, RFC 8428), TLV (11542), the LwM2M 1.0 JSON format (11543, decode
// only, for 1.0 clients) and LwM2M CBOR (11544, LwM2M 1.2): see [Format].
//
// # Usage
//
//	recs, err := content.Decode(content.TLV, path.Instance(3311, 0), payload, model.DefaultRegistry())
//	for _, r := range recs {
//		fmt.Println(r.Path, r.Value.Type(), r.Value) // /3311/0/5850 Boolean 1
//	}
//
//	b, err := content.Encode(content.SenMLJSON, path.Instance(3311, 0), []content.Record{
//		{Path: path.Resource(3311, 0, 5850), Value: content.NewBool(true)},
//	})
//
//	f := content.Preferred("1.1", announced) // the format to ask a client for
//
// [Tree] groups records by object instance; [Coerce], [Check] and
// [ParseValue] convert and check values against the object model.
//
// # Design
//
// The model gives the types. The untyped formats (TLV, plain text) need
// the object model to know the type of each resource: [Decode] takes a
// model.Resolver for that (unknown resources decode as Opaque from TLV and
// as String from text). The typed formats use the model, when given, to
// turn a JSON or CBOR number into the declared Integer, Unsigned, Float or
// Time.
//
// Errors a server can answer with. A bad payload gives a [*DecodeError]
// wrapping [ErrMalformed] (CoAP 4.00 Bad Request); a format that cannot
// carry the data, [ErrNotEncodable] (4.06 Not Acceptable when it was the
// client's Accept); an unknown format, [ErrUnsupportedFormat] (4.15
// Unsupported Content-Format on a request). Decoders never panic and bound
// their input size ([MaxPayload]), record count and nesting.
//
// Hand-written, including a small strict CBOR reader and writer: SenML
// CBOR and LwM2M CBOR need exact control of map key types (integer labels
// -2, 0, 2, … next to the text label "vlo"), of preferred (shortest)
// number serialisation, of indefinite-length items sent by constrained
// clients and of depth and size bounds on hostile input, and a
// dependency-free reader keeps go.mod unchanged. JSON decoding uses
// encoding/json; JSON encoding is written by hand so that the byte layout
// matches the specification examples exactly.
package content
