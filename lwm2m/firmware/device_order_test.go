package firmware_test

import (
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestDeviceStateOrder: a State/Update Result transition of an earlier
// Firmware Update process that the device applies late (its goroutine
// scheduled after a newer write) must not overwrite the newer process's
// state, and a reset (empty Package URI or Package, Core Appendix E.6) is
// in effect when the server has the answer to its Write. The device's
// deferred transitions are reordered deterministically through its test
// hook: the ftp:// attempt's Update Result 9 is held until the next write's
// own transition has run (or the next write was answered).
func TestDeviceStateOrder(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t, 20*time.Second)
	pkg, err := firmware.BuildPackage("2.0", []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	type state struct{ st, res int64 }
	for i, tc := range []struct {
		name string
		// next is written to /5/0/1 after "ftp://host/x" (or, with
		// pushFirst, an empty package to /5/0/0 after a valid one).
		next      string
		pushFirst bool
		// atAnswer, if set, must hold as soon as next's Write is answered.
		atAnswer *state
		want     state
	}{
		{name: "older result after a newer result", next: "http://[::1",
			want: state{firmware.StateIdle, firmware.ResultInvalidURI}},
		{name: "older result after a reset", next: "",
			atAnswer: &state{firmware.StateIdle, firmware.ResultInitial},
			want:     state{firmware.StateIdle, firmware.ResultInitial}},
		{name: "empty package after a downloaded one", pushFirst: true,
			atAnswer: &state{firmware.StateIdle, firmware.ResultInitial},
			want:     state{firmware.StateIdle, firmware.ResultInitial}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := "sl-order-" + string(rune('a'+i))
			l := newLight(t, e, ep, lightOpts{})
			release := make(chan struct{})
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			t.Cleanup(free)
			held := make(chan struct{}, 1)
			firmware.SetStateHook(l.dev, func(st, res int64, apply func()) {
				if res == firmware.ResultUnsupportedProto {
					held <- struct{}{}
					<-release // the older attempt's result, applied late
					apply()
					return
				}
				apply()
				free() // the newer transition ran: let the older one land
			})
			get := func() state {
				st, _ := l.c.Get(path.Resource(5, 0, 3))
				res, _ := l.c.Get(path.Resource(5, 0, 5))
				return state{st.Int(), res.Int()}
			}
			write := func(p path.Path, v content.Value) {
				t.Helper()
				if err := e.srv.WriteValues(ctx, ep, p, server.Replace, content.Record{Path: p, Value: v}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.pushFirst {
				write(path.Resource(5, 0, 0), content.NewOpaque(pkg))
				if got := get(); got != (state{firmware.StateDownloaded, firmware.ResultInitial}) {
					t.Fatalf("after a valid package: %+v, want Downloaded at the Write's answer", got)
				}
				write(path.Resource(5, 0, 0), content.NewOpaque(nil))
			} else {
				write(path.Resource(5, 0, 1), content.NewString("ftp://host/x"))
				select {
				case <-held:
				case <-ctx.Done():
					t.Fatal("the ftp:// result never reached the hook")
				}
				write(path.Resource(5, 0, 1), content.NewString(tc.next))
			}
			if tc.atAnswer != nil {
				if got := get(); got != *tc.atAnswer {
					t.Fatalf("at the Write's answer: %+v, want %+v", got, *tc.atAnswer)
				}
			}
			free()
			if err := l.dev.Close(); err != nil { // waits for every transition in flight
				t.Fatal(err)
			}
			if got := get(); got != tc.want {
				t.Fatalf("after every transition ran: %+v, want %+v", got, tc.want)
			}
		})
	}
}
