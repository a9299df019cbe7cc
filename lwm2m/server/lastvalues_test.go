package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
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

// TestLastValuesTypedAndWritten: a read or observation of a resource
// outside the model with an explicit type (WithType) is remembered with
// that type, not raw; writes the device accepted are remembered as
// "write"/"write-composite" with the types they were written as, and a
// refused write leaves the last value alone.
func TestLastValuesTypedAndWritten(t *testing.T) {
	f := newFixture(t)
	d := newDevice(t)
	var res1 observedResource // /31024/0/1 = 42 (one byte) in TLV
	d.mux.HandleFunc("/31024/0/1", res1.handler(message.AppLwm2mTLV, []byte{0xC1, 0x01, 42}, nil))
	d.mux.HandleFunc("/31024/0/3", func(w bearer.ResponseWriter, r *bearer.Request) {
		w.SetOption(bearer.ContentFormatOption(message.AppLwm2mTLV))
		w.WriteResponse(codes.Content, []byte{0xC1, 0x03, 7})
	})
	d.mux.HandleFunc("/3311/0/5851", func(w bearer.ResponseWriter, r *bearer.Request) {
		w.WriteResponse(codes.BadRequest, []byte("out of range")) // refuses every write
	})
	d.mux.HandleFunc("/", func(w bearer.ResponseWriter, r *bearer.Request) {
		if r.Code == codes.IPATCH {
			w.WriteResponse(codes.Changed, nil)
			return
		}
		w.WriteResponse(codes.NotFound, nil)
	})
	if resp := post(t, d, f.addr, "/rd?ep=typed&lwm2m=1.1", "</3311/0>,</31024/0>"); resp.Code != codes.Created {
		t.Fatal(resp.Code)
	}
	ctx := ctxT(t)
	last := func(p path.Path) LastValue {
		for _, v := range f.srv.LastValues("typed") {
			if v.Path == p {
				return v
			}
		}
		return LastValue{}
	}
	p1, p3 := path.Resource(31024, 0, 1), path.Resource(31024, 0, 3)
	notes := make(chan Notification, 4)

	steps := []struct {
		name   string
		do     func() error
		p      path.Path
		typ    model.Type
		value  string
		source string
	}{
		{"read without a type is raw", func() error { _, err := f.srv.Read(ctx, "typed", p1); return err }, p1, model.Opaque, "opaque(1 bytes)", "read"},
		{"read with a type", func() error { _, err := f.srv.Read(ctx, "typed", p1, WithType(p1, model.Integer)); return err }, p1, model.Integer, "42", "read"},
		{"read values with a type", func() error {
			recs, err := f.srv.ReadValues(ctx, "typed", p3, WithType(p3, model.Unsigned))
			if err == nil && (len(recs) != 1 || recs[0].Value.Type() != model.Unsigned) {
				err = fmt.Errorf("decoded %v", recs)
			}
			return err
		}, p3, model.Unsigned, "7", "read"},
		{"write values keep their type", func() error {
			return f.srv.WriteValues(ctx, "typed", p1, Replace, content.Record{Path: p1, Value: content.NewInt(200)})
		}, p1, model.Integer, "200", "write"},
		{"refused write not remembered", func() error {
			err := f.srv.WriteValues(ctx, "typed", path.Resource(3311, 0, 5851), Replace,
				content.Record{Path: path.Resource(3311, 0, 5851), Value: content.NewInt(150)})
			if err == nil {
				return fmt.Errorf("write of 150 accepted")
			}
			if v := last(path.Resource(3311, 0, 5851)); !v.Value.IsNone() {
				return fmt.Errorf("refused write remembered: %+v", v)
			}
			return nil
		}, p1, model.Integer, "200", "write"},
		{"write composite", func() error {
			return f.srv.WriteCompositeValues(ctx, "typed", content.Record{Path: p3, Value: content.NewFloat(2.5)})
		}, p3, model.Float, "2.5", "write-composite"},
		{"observe with a type", func() error {
			_, _, err := f.srv.Observe(ctx, "typed", p1, func(n Notification) { notes <- n }, WithType(p1, model.Integer))
			return err
		}, p1, model.Integer, "42", "observe"},
		{"notification of a typed observation", func() error {
			o := res1.observer()
			if o == nil {
				return fmt.Errorf("device did not accept the observation")
			}
			if err := o.Notify(ctx, codes.Content, []byte{0xC1, 0x01, 99}, bearer.ContentFormatOption(message.AppLwm2mTLV)); err != nil {
				return err
			}
			select {
			case n := <-notes:
				// The notification decodes with the observation's type.
				if recs, err := n.Values(); err != nil || len(recs) != 1 || recs[0].Value.Type() != model.Integer {
					return fmt.Errorf("notification values %v %v", recs, err)
				}
			case <-ctx.Done():
				return fmt.Errorf("no notification")
			}
			for deadline := time.Now().Add(10 * time.Second); last(p1).Source != "notify"; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					return fmt.Errorf("notification not remembered: %+v", last(p1))
				}
			}
			return nil
		}, p1, model.Integer, "99", "notify"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(); err != nil {
				t.Fatal(err)
			}
			v := last(st.p)
			if v.Value.Type() != st.typ || v.Value.String() != st.value || v.Source != st.source {
				t.Fatalf("%s: %v %q from %q, want %v %q from %q", st.p, v.Value.Type(), v.Value.String(), v.Source, st.typ, st.value, st.source)
			}
		})
	}
}
