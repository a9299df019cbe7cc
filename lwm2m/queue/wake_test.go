package queue

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
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

func TestRefuseWake(t *testing.T) {
	cause := fmt.Errorf("send: %w", ErrBadTarget)
	for _, tc := range []struct {
		name string
		in   error
	}{
		{"a cause", cause},
		{"already refused", RefuseWake(cause)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := RefuseWake(tc.in)
			if !errors.Is(err, ErrWakeRefused) || !errors.Is(err, ErrBadTarget) || err.Error() != cause.Error() {
				t.Fatalf("RefuseWake: %v; want ErrWakeRefused and the cause, reading as %q", err, cause)
			}
			if !permanentWakeError(err) {
				t.Fatal("the Manager would retry a refused wake-up")
			}
		})
	}
	if RefuseWake(nil) != nil {
		t.Fatal("RefuseWake(nil) is not nil")
	}
	if permanentWakeError(fmt.Errorf("modem busy")) {
		t.Fatal("an unmarked error is taken as final")
	}
}
