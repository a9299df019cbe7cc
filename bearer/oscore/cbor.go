package oscore

// The few CBOR (RFC 8949) items OSCORE needs to build the HKDF info
// (RFC 8613 §3.2.1) and the AAD (§5.4): definite-length arrays, byte and
// text strings, small integers and null. Encoding only: OSCORE never
// decodes CBOR from the network (the OSCORE option is not CBOR).

func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return append(b, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	default:
		return append(b, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func cborArray(b []byte, n int) []byte { return cborHead(b, 4, uint64(n)) }

func cborBytes(b, v []byte) []byte { return append(cborHead(b, 2, uint64(len(v))), v...) }

func cborText(b []byte, s string) []byte { return append(cborHead(b, 3, uint64(len(s))), s...) }

func cborInt(b []byte, v int64) []byte {
	if v >= 0 {
		return cborHead(b, 0, uint64(v))
	}
	return cborHead(b, 1, uint64(-1-v))
}

func cborNull(b []byte) []byte { return append(b, 0xf6) }
