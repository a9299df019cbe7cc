package pdu

import "testing"

// mustEncoder and mustReassembler are NewEncoder and NewReassembler for
// tests whose options are valid: an error ends the test.
func mustEncoder(tb testing.TB, opts ...EncoderOption) *Encoder {
	tb.Helper()
	e, err := NewEncoder(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func mustReassembler(tb testing.TB, cfg ReassemblerConfig) *Reassembler {
	tb.Helper()
	r, err := NewReassembler(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}
