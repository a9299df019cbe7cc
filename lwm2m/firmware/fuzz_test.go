package firmware_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// FuzzParsePackage: never panics; a package that parses rebuilds to the
// same bytes; errors are typed.
func FuzzParsePackage(f *testing.F) {
	good, _ := firmware.BuildPackage("1.2.3", []byte("payload"))
	f.Add(good)
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	f.Add(bad)
	f.Add([]byte("M2FW"))
	f.Add([]byte("M2FW\x05abc"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, payload, err := firmware.ParsePackage(data)
		if err != nil {
			if !errors.Is(err, firmware.ErrBadPackage) && !errors.Is(err, firmware.ErrIntegrity) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := firmware.BuildPackage(v, payload)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("rebuild differs: %v", err)
		}
	})
}
