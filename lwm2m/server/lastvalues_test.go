package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// TestLastValues: the server keeps the last value of every resource it
// saw in a Read and a Send, with its time and source, and serves it after
// the device went quiet.
func TestLastValues(t *testing.T) {
	f := newFixture(t)
	d := newDevice(t)
	d.mux.HandleFunc("/3/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		w.SetOption(bearer.ContentFormatOption(message.AppLwm2mTLV))
		w.WriteResponse(codes.Content, []byte{0xC4, 0x00, 'A', 'C', 'M', 'E', 0xC1, 0x09, 80})
	})
	if resp := post(t, d, f.addr, "/rd?ep=lv&lwm2m=1.1", "</3/0>"); resp.Code != codes.Created {
		t.Fatal(resp.Code)
	}
	before := time.Now()
	if _, err := f.srv.Read(ctxT(t), "lv", path.Instance(3, 0)); err != nil {
		t.Fatal(err)
	}
	req := bearer.NewRequest(codes.POST, f.addr, "/dp")
	req.SetOption(bearer.ContentFormatOption(message.AppSenmlJSON))
	req.Payload = []byte(`[{"n":"/3303/0/5700","v":21.5},{"n":"/3/0/9","v":75}]`)
	if resp, err := d.ep.Do(ctxT(t), req); err != nil || resp.Code != codes.Changed {
		t.Fatalf("Send: %v %v", resp, err)
	}
	got := map[string]LastValue{}
	for deadline := time.Now().Add(10 * time.Second); len(got) < 3; time.Sleep(5 * time.Millisecond) {
		for _, v := range f.srv.LastValues("lv") {
			got[v.Path.String()] = v
		}
		if time.Now().After(deadline) {
			t.Fatalf("last values %v", got)
		}
	}
	tests := []struct {
		path, value, source string
	}{
		{"/3/0/0", "ACME", "read"},
		{"/3/0/9", "75", "send"}, // the Send replaced the value the Read saw
		{"/3303/0/5700", "21.5", "send"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			v := got[tc.path]
			if v.Value.String() != tc.value || v.Source != tc.source || v.Time.Before(before.Add(-time.Second)) {
				t.Fatalf("%s: %+v", tc.path, v)
			}
		})
	}
}

// TestLastValuesBounded: the table keeps at most its bound of devices and
// of paths a device, pushing out the oldest, and cuts long values.
func TestLastValuesBounded(t *testing.T) {
	var lv lastValues
	lv.init(3, 4)
	t0 := time.Unix(1000, 0)
	for dev := 0; dev < 10; dev++ {
		for r := 0; r < 10; r++ {
			lv.put(fmt.Sprint("dev-", dev), []LastValue{{Path: path.Resource(3, 0, uint16(r)), Value: content.NewInt(int64(r)),
				Time: t0.Add(time.Duration(dev*10+r) * time.Second)}})
		}
	}
	if n := len(lv.devs); n != 3 {
		t.Fatalf("%d devices kept", n)
	}
	got := lv.get("dev-9")
	if len(got) != 4 || got[0].Path != path.Resource(3, 0, 6) {
		t.Fatalf("dev-9: %v", got)
	}
	if lv.get("dev-0") != nil {
		t.Fatal("oldest device kept")
	}
	// An older value arriving late does not replace a newer one.
	lv.put("dev-9", []LastValue{{Path: path.Resource(3, 0, 9), Value: content.NewInt(-1), Time: t0}})
	if v := lv.get("dev-9")[3]; v.Value.Int() != 9 {
		t.Fatalf("late value replaced a newer one: %v", v)
	}
	big := make([]byte, 10*MaxLastValueBytes)
	lv.put("dev-9", []LastValue{{Path: path.Resource(3, 0, 9), Value: content.NewOpaque(big), Time: t0.Add(time.Hour)}})
	if v := lv.get("dev-9")[3]; len(v.Value.Bytes()) != MaxLastValueBytes || v.Size != len(big) {
		t.Fatalf("long value kept as %d bytes, size %d", len(v.Value.Bytes()), v.Size)
	}
}
