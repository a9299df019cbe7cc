package pdu

import "github.com/warthog618/sms/encoding/gsm7/charset"

// The GSM 7-bit tables of github.com/warthog618/sms are built on first use
// by unsynchronised lazy initialisation (charset.DefaultDecoder and
// friends), a data race when two goroutines decode their first 7-bit text
// or alphanumeric originator at once (two modems receiving, seen by -race
// in internal/zerovalue). Building them here, before any goroutine of
// ours runs, leaves only reads afterwards.
func init() {
	charset.DefaultDecoder()
	charset.DefaultExtDecoder()
	charset.DefaultEncoder()
	charset.DefaultExtEncoder()
}
