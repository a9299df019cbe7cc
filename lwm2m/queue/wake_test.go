package queue

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

func TestTriggerMessage(t *testing.T) {
	tests := []struct {
		name    string
		target  WakeTarget
		path    string
		payload string
		err     bool
	}{
		{"1.0 UQS", WakeTarget{Version: "1.0", Binding: "UQS"}, "/1/0/8", "", false},
		{"1.1 with transport", WakeTarget{Version: "1.1", Trigger: true, ServerInstance: 3, TransportArg: "U"}, "/1/3/8", "0='U'", false},
		{"1.2 SMS transport", WakeTarget{Version: "1.2", Trigger: true, ServerInstance: 65535, TransportArg: "S"}, "/1/65535/8", "0='S'", false},
		{"bad transport", WakeTarget{TransportArg: "X"}, "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := TriggerMessage(tc.target, 0x1234, []byte{1, 2})
			if tc.err {
				if !errors.Is(err, ErrBadTarget) {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkTrigger(t, b, tc.path, tc.payload)
		})
	}
	// Byte for byte, the 1.0 trigger: NON POST, TKL 2, MID 0x1234, token,
	// Uri-Path "1" (delta 11), "0", "8", No-Response (258: delta 247 =
	// 13 + 0xea) 0x02 (RFC 7967: no 2.xx answer wanted).
	b, _ := TriggerMessage(WakeTarget{}, 0x1234, []byte{1, 2})
	want := []byte{0x52, 0x02, 0x12, 0x34, 1, 2, 0xb1, '1', 0x01, '0', 0x01, '8', 0xd1, 0xea, 0x02}
	if !bytes.Equal(b, want) {
		t.Fatalf("trigger % x, want % x", b, want)
	}
}

func checkTrigger(t *testing.T, b []byte, path, payload string) {
	t.Helper()
	msg := message.Message{Options: make(message.Options, 0, 8)}
	if _, err := coder.DefaultCoder.Decode(b, &msg); err != nil {
		t.Fatalf("decode % x: %v", b, err)
	}
	p, err := msg.Options.Path()
	if msg.Type != message.NonConfirmable || msg.Code != codes.POST || err != nil || p != path {
		t.Fatalf("type %v code %v path %q (%v), want NON POST %s", msg.Type, msg.Code, p, err, path)
	}
	if string(msg.Payload) != payload {
		t.Fatalf("payload %q, want %q", msg.Payload, payload)
	}
	if v, err := msg.Options.GetUint32(message.NoResponse); err != nil || v != NoResponseSuccess {
		t.Fatalf("No-Response %d (%v), want %d", v, err, NoResponseSuccess)
	}
	if cf, err := msg.Options.ContentFormat(); payload != "" && (err != nil || cf != message.TextPlain) {
		t.Fatalf("content format %v %v", cf, err)
	}
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
func TestSMSWakerIntegration(t *testing.T) {
	for _, tc := range []struct {
		framing sms.Framing
		form    pdu.TriggerForm
		arg     string
	}{
		{sms.FramingCoAP, pdu.FormCoAP, ""},
		{sms.FramingWAPPush, pdu.FormWAPPush, "U"},
	} {
		t.Run(tc.form.String(), func(t *testing.T) {
			srv, dev := smsPair(t, nil)
			w := NewSMSWaker(srv, srv)
			target := WakeTarget{MSISDN: "00491710000002", Version: "1.1", Trigger: true, Framing: tc.framing, TransportArg: tc.arg, SIM: srvNum}
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
			checkTrigger(t, buf[:n], "/1/0/8", want)
		})
	}
}

// End to end over SMS: a request for a sleeping device, the Manager sends
// the trigger through sms.Bearer, the device reads it and "updates"
// (Seen), the request runs and its result reaches Wait.
func TestWakeOverSMSEndToEnd(t *testing.T) {
	srv, dev := smsPair(t, nil)
	fleet := newFleet()
	m, err := New(Config{Store: NewMemStore(), Executor: fleet, Waker: NewSMSWaker(srv, srv)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetDevice("lamp", DeviceConfig{Wake: &WakeTarget{MSISDN: devNum, Version: "1.0", Binding: "UQS", SIM: srvNum}})
	id, err := m.Enqueue(context.Background(), Request{Endpoint: "lamp", Kind: KindRead, Paths: []string{"/3/0"}})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	dev.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, _, err := dev.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkTrigger(t, buf[:n], "/1/0/8", "")
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
	m, err := New(Config{Store: NewMemStore(), Executor: newFleet(), Waker: NewSMSWaker(srv, srv),
		Wake: WakePolicy{MinInterval: time.Millisecond, Timeout: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetDevice("lamp", DeviceConfig{Wake: &WakeTarget{MSISDN: devNum, Version: "1.1", Trigger: true}})
	id, _ := m.Enqueue(context.Background(), Request{Endpoint: "lamp", Kind: KindRead, Paths: []string{"/3/0"}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = m.Wait(ctx, id)
	var be *sms.BudgetError
	if !errors.Is(err, ErrNotWoken) || !errors.As(err, &be) || be.Scope != "device" {
		t.Fatalf("err %v", err)
	}
	if used, _ := srv.BudgetUsed(devNum); used != 1 {
		t.Fatalf("budget used %d", used)
	}
}
