package firmware

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseInfo: the image metadata decoder never panics, errors are
// typed, and what it accepts is consistent and re-encodes to an
// equivalent record.
func FuzzParseInfo(f *testing.F) {
	f.Add([]byte(`{"id":"0123456789abcdef","version":"1.0","size":10,"sha256":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}`))
	f.Add([]byte(`{"id":"x","version":"","size":-1,"sha256":"zz"}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := parseInfo(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("untyped %v", err)
			}
			return
		}
		if info.ID != info.SHA256[:16] || info.Size < 0 || info.Version == "" {
			t.Fatalf("inconsistent %+v", info)
		}
		b, _ := json.Marshal(info)
		again, err := parseInfo(b)
		if err != nil || again.ID != info.ID || again.Size != info.Size || again.Version != info.Version {
			t.Fatalf("round trip: %v", err)
		}
	})
}
