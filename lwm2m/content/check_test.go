package content

import (
	"errors"
	"strings"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
)

func TestCheck(t *testing.T) {
	dimmer := &model.Resource{ID: 5851, Name: "Dimmer", Type: model.Integer, Range: "0..100"}
	pkg := &model.Resource{ID: 7, Name: "PkgVersion", Type: model.String, Range: "0..255"}
	free := &model.Resource{ID: 1, Name: "Free", Type: model.Integer, Range: "see the manual"}
	uns := &model.Resource{ID: 2, Name: "U", Type: model.Unsigned, Range: "1-65535"}
	tests := []struct {
		name string
		def  *model.Resource
		v    Value
		want error
	}{
		{"dimmer 40", dimmer, NewInt(40), nil},
		{"dimmer 0", dimmer, NewInt(0), nil},
		{"dimmer 100 as float", dimmer, NewFloat(100), nil},
		{"dimmer 150", dimmer, NewInt(150), ErrOutOfRange},
		{"dimmer -1", dimmer, NewInt(-1), ErrOutOfRange},
		{"dimmer 99999999999", dimmer, NewInt(99999999999), ErrOutOfRange},
		{"dimmer 40.5", dimmer, NewFloat(40.5), ErrTypeMismatch},
		{"dimmer string", dimmer, NewString("40"), ErrTypeMismatch},
		{"pkg short", pkg, NewString("1.2.3"), nil},
		{"pkg too long", pkg, NewString(strings.Repeat("x", 256)), ErrOutOfRange},
		{"pkg not utf8", pkg, NewString("\xff"), ErrTypeMismatch},
		{"unreadable range not enforced", free, NewInt(1 << 40), nil},
		{"unsigned 0", uns, NewUint(0), ErrOutOfRange},
		{"unsigned 65535", uns, NewUint(65535), nil},
		{"none value passes", dimmer, Value{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(tc.v, tc.def)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Check(%v) = %v, want %v", tc.v, err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.def.Name) {
				t.Fatalf("error %q does not name the resource", err)
			}
		})
	}
}
