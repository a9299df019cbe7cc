package smswake

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

// checkTrigger: b parses as the trigger of target (queue.TriggerMessage's
// bytes, with b's message ID and token: a NON POST with No-Response), to
// path with payload.
func checkTrigger(t *testing.T, b []byte, target queue.WakeTarget, path, payload string) {
	t.Helper()
	msg := message.Message{Options: make(message.Options, 0, 8)}
	if _, err := coder.DefaultCoder.Decode(b, &msg); err != nil {
		t.Fatalf("decode % x: %v", b, err)
	}
	want, err := queue.TriggerMessage(target, uint16(msg.MessageID), msg.Token)
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("trigger % x, want % x (%v)", b, want, err)
	}
	if p, err := msg.Options.Path(); err != nil || p != path || string(msg.Payload) != payload {
		t.Fatalf("path %q (%v) payload %q, want %s %q", p, err, msg.Payload, path, payload)
	}
}

// executor answers every request 2.05, as a device that is awake.
var executor = queue.ExecutorFunc(func(context.Context, string, *queue.Request) (*queue.Result, error) {
	return &queue.Result{Code: 0x45}, nil
})

// counters counts the Manager's counter increments by name (its gauges
// are of no use here).
type counters struct{ sync.Map } // name → *atomic.Int64

func (c *counters) Add(n string, d float64) {
	v, _ := c.LoadOrStore(n, new(atomic.Int64))
	v.(*atomic.Int64).Add(int64(d))
}

func (c *counters) Set(string, float64) {}

func (c *counters) get(n string) int64 {
	if v, ok := c.Load(n); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

const (
	srvNum = "+491710000001"
	devNum = "+491710000002"
)

func smsPair(t *testing.T, srvCfg func(*sms.Config)) (srv, dev *sms.Bearer) {
	t.Helper()
	n := smstest.NewNetwork(7, smstest.Faults{})
	srvSIM, devSIM := n.AddSIM(srvNum), n.AddSIM(devNum)
	worker := outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
	sc := sms.Config{StateDir: t.TempDir(), Worker: worker}
	if srvCfg != nil {
		srvCfg(&sc)
	}
	var err error
	if srv, err = sms.New(srvSIM, sc); err != nil {
		t.Fatal(err)
	}
	dev, err = sms.New(devSIM, sms.Config{StateDir: t.TempDir(), Worker: worker,
		Peers: map[string]sms.Peer{srvNum: {Security: sms.ModeNoSec, SIM: devNum}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); dev.Close(); n.Close() })
	return srv, dev
}

// The trigger goes through a real sms.Bearer on the in-memory SMS network,
// reaches the device's sms.Bearer and parses as a CoAP NON POST to /1/0/8,
// in both framings.
func TestWakerIntegration(t *testing.T) {
	for _, tc := range []struct {
		wapPush bool
		form    pdu.TriggerForm
		arg     string
	}{
		{false, pdu.FormCoAP, ""},
		{true, pdu.FormWAPPush, "U"},
	} {
		t.Run(tc.form.String(), func(t *testing.T) {
			srv, dev := smsPair(t, nil)
			w := New(srv, srv)
			target := queue.WakeTarget{MSISDN: "00491710000002", Version: "1.1", Trigger: true, WAPPush: tc.wapPush, TransportArg: tc.arg, SIM: srvNum}
			if err := w.Wake(context.Background(), "lamp", target); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 512)
			dev.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, from, form, err := dev.ReadFromForm(buf)
			if err != nil {
				t.Fatal(err)
			}
			if from.String() != srvNum || form != tc.form {
				t.Fatalf("from %v form %v", from, form)
			}
			want := ""
			if tc.arg != "" {
				want = "0='" + tc.arg + "'"
			}
			checkTrigger(t, buf[:n], target, "/1/0/8", want)
		})
	}
}

// End to end over SMS: a request for a sleeping device, the Manager sends
// the trigger through sms.Bearer, the device reads it and "updates"
// (Seen), the request runs and its result reaches Wait.
func TestWakeOverSMSEndToEnd(t *testing.T) {
	srv, dev := smsPair(t, nil)
	m, err := queue.New(queue.Config{Store: queue.NewMemStore(), Executor: executor, Waker: New(srv, srv)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	target := queue.WakeTarget{MSISDN: devNum, Version: "1.0", Binding: "UQS", SIM: srvNum}
	m.SetDevice("lamp", queue.DeviceConfig{Wake: &target})
	id, err := m.Enqueue(context.Background(), queue.Request{Endpoint: "lamp", Kind: queue.KindRead, Paths: []string{"/3/0"}})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	dev.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, _, err := dev.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkTrigger(t, buf[:n], target, "/1/0/8", "")
	m.Seen("lamp", 0) // the device's Update
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := m.Wait(ctx, id)
	if err != nil || rec.Result.Code != 0x45 {
		t.Fatalf("%v %+v", err, rec)
	}
}

// The SMS bearer's daily budget refuses the wake-up: the requests fail
// with ErrNotWoken caused by sms.ErrBudgetExceeded.
func TestWakeOverSMSBudget(t *testing.T) {
	srv, _ := smsPair(t, func(c *sms.Config) { c.DailyBudgetPerDevice = new(1) })
	m, err := queue.New(queue.Config{Store: queue.NewMemStore(), Executor: executor, Waker: New(srv, srv),
		Wake: queue.WakePolicy{MinInterval: time.Millisecond, Timeout: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetDevice("lamp", queue.DeviceConfig{Wake: &queue.WakeTarget{MSISDN: devNum, Version: "1.1", Trigger: true}})
	id, _ := m.Enqueue(context.Background(), queue.Request{Endpoint: "lamp", Kind: queue.KindRead, Paths: []string{"/3/0"}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = m.Wait(ctx, id)
	var be *sms.BudgetError
	if !errors.Is(err, queue.ErrNotWoken) || !errors.As(err, &be) || be.Scope != "device" {
		t.Fatalf("err %v", err)
	}
	if used, _ := srv.BudgetUsed(devNum); used != 1 {
		t.Fatalf("budget used %d", used)
	}
}
