package content_test

import (
	"fmt"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

func ExampleDecode() {
	// A TLV answer to Read /3311/0 (Light Control): On/Off true, Dimmer 80.
	payload := []byte{0xE1, 0x16, 0xDA, 0x01, 0xE1, 0x16, 0xDB, 0x50}
	recs, err := content.Decode(content.TLV, path.Instance(3311, 0), payload, model.DefaultRegistry())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range recs {
		fmt.Println(r.Path, r.Value.Type(), r.Value)
	}
	// Output:
	// /3311/0/5850 Boolean 1
	// /3311/0/5851 Integer 80
}

func ExampleEncode() {
	recs := []content.Record{
		{Path: path.Resource(3311, 0, 5850), Value: content.NewBool(true)},
		{Path: path.Resource(3311, 0, 5851), Value: content.NewInt(80)},
	}
	b, err := content.Encode(content.SenMLJSON, path.Instance(3311, 0), recs)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(b))
	// Output: [{"bn":"/3311/0/","n":"5850","vb":true},{"n":"5851","v":80}]
}

func ExamplePreferred() {
	// A 1.1 client that announced ct="60 110 112 11542" in its registration.
	announced := []content.Format{60, content.SenMLJSON, content.SenMLCBOR, content.TLV}
	fmt.Println(content.Preferred("1.1", announced))
	fmt.Println(content.Preferred("1.0", nil))
	// Output:
	// application/senml+cbor
	// application/vnd.oma.lwm2m+tlv
}
