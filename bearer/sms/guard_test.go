package sms_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

// coapMsg encodes a CON POST /rd (a Register) with the given MID and token.
func coapMsg(t *testing.T, mid uint16, token byte, path string) []byte {
	t.Helper()
	m := message.Message{Type: message.Confirmable, Code: codes.POST, MessageID: int32(mid), Token: []byte{token, 1, 2, 3},
		Options: message.Options{{ID: message.URIPath, Value: []byte(path)}}, Payload: []byte("</1/0>")}
	b := make([]byte, 128)
	n, err := coder.DefaultCoder.Encode(m, b)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

// TestLoopRefused: identical datagrams (message ID and token aside) to or
// from one peer past LoopMax in the window are refused, never relayed: a
// send fails with ErrLoop, a receipt is dropped and counted; another
// datagram, or another peer, still passes.
func TestLoopRefused(t *testing.T) {
	var mu sync.Mutex
	var alerts []sms.LoopAlert
	p := newPair(t, smstest.Faults{}, func(side string, c *sms.Config) {
		c.LoopMax, c.LoopWindow = 3, time.Hour
		c.OnLoop = func(a sms.LoopAlert) { mu.Lock(); alerts = append(alerts, a); mu.Unlock() }
	})
	srv, dev := mustAddr(t, serverNum), mustAddr(t, deviceNum)
	t.Run("send", func(t *testing.T) {
		for i := range 3 {
			if _, err := p.dev.WriteTo(coapMsg(t, uint16(100+i), byte(i), "rd"), srv); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		_, err := p.dev.WriteTo(coapMsg(t, 200, 9, "rd"), srv)
		var le *sms.LoopError
		if !errors.Is(err, sms.ErrLoop) || !errors.As(err, &le) || le.Count != 4 {
			t.Fatalf("4th identical send: %v", err)
		}
		if _, err := p.dev.WriteTo(coapMsg(t, 201, 9, "other"), srv); err != nil {
			t.Fatalf("a different datagram: %v", err)
		}
		if p.dev.Stats().LoopRefused != 1 {
			t.Fatalf("stats %+v", p.dev.Stats())
		}
	})
	t.Run("receive", func(t *testing.T) {
		// The server received 3 identical ones and the different one; the
		// 4th identical datagram now comes from the server's side.
		buf := make([]byte, 512)
		for range 4 {
			_ = p.srv.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := p.srv.ReadFrom(buf); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 4 {
			if _, err := p.srv.WriteTo(coapMsg(t, uint16(300+i), byte(i), "ack"), dev); err != nil && i < 3 {
				t.Fatal(err)
			}
		}
		got := 0
		for {
			_ = p.dev.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, _, err := p.dev.ReadFrom(buf); err != nil {
				break
			}
			got++
		}
		if got != 3 {
			t.Fatalf("device got %d identical datagrams, want 3", got)
		}
	})
	mu.Lock()
	defer mu.Unlock()
	if len(alerts) == 0 || alerts[0].Peer != serverNum || alerts[0].Received || alerts[0].Count != 4 {
		t.Fatalf("alerts %+v", alerts)
	}
}

// TestBudgetAlerts: crossing BudgetWarnRatio of a daily budget is told
// once, the first refusal of the day once, with scope and counts.
func TestBudgetAlerts(t *testing.T) {
	var mu sync.Mutex
	var alerts []sms.BudgetAlert
	p := newPair(t, smstest.Faults{}, func(side string, c *sms.Config) {
		c.DailyBudgetPerDevice, c.DailyBudget = new(5), new(1000)
		c.OnBudget = func(a sms.BudgetAlert) { mu.Lock(); alerts = append(alerts, a); mu.Unlock() }
	})
	srv := mustAddr(t, serverNum)
	refused := 0
	for i := range 8 {
		_, err := p.dev.WriteTo(coapMsg(t, uint16(i), byte(i), string(rune('a'+i))), srv)
		if errors.Is(err, sms.ErrBudgetExceeded) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if refused != 3 || len(alerts) != 2 {
		t.Fatalf("refused %d, alerts %+v", refused, alerts)
	}
	if a := alerts[0]; a.Scope != "device" || a.Used != 4 || a.Limit != 5 || a.Exhausted {
		t.Fatalf("warning %+v", a)
	}
	if a := alerts[1]; a.Scope != "device" || !a.Exhausted || a.Used != 5 {
		t.Fatalf("exhaustion %+v", a)
	}
	if p.dev.Stats().BudgetAlerts != 2 {
		t.Fatalf("stats %+v", p.dev.Stats())
	}
}

// TestUsageByPurpose: the bearer accounts each datagram by peer,
// direction and purpose, with its segments and bytes.
func TestUsageByPurpose(t *testing.T) {
	p := newPair(t, smstest.Faults{}, nil)
	srv := mustAddr(t, serverNum)
	trig := message.Message{Type: message.NonConfirmable, Code: codes.POST, MessageID: 1, Token: []byte{1},
		Options: message.Options{{ID: message.URIPath, Value: []byte("1")}, {ID: message.URIPath, Value: []byte("0")}, {ID: message.URIPath, Value: []byte("8")}}}
	b := make([]byte, 64)
	n, _ := coder.DefaultCoder.Encode(trig, b)
	big := coapMsg(t, 2, 2, "rd")
	big = append(big, make([]byte, 300)...) // 3 segments
	for _, d := range [][]byte{b[:n], big, {0x60, 0, 0, 9}} {
		if _, err := p.srv.WriteTo(d, mustAddr(t, deviceNum)); err != nil {
			t.Fatal(err)
		}
	}
	u, ok := p.srv.Usage(deviceNum)
	if !ok {
		t.Fatal("no usage")
	}
	if c := u.Sent[bearer.PurposeTrigger]; c.Datagrams != 1 || c.Segments != 1 || c.Bytes != uint64(n) {
		t.Fatalf("trigger %+v", c)
	}
	if c := u.Sent[bearer.PurposeRequest]; c.Datagrams != 1 || c.Segments != 3 {
		t.Fatalf("request %+v", c)
	}
	if c := u.Sent[bearer.PurposeEmpty]; c.Datagrams != 1 || c.Segments != 1 {
		t.Fatalf("empty %+v", c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		du, _ := p.dev.Usage(serverNum)
		if sms.Total(du.Received).Segments == 5 {
			if du.Received[bearer.PurposeTrigger].Datagrams != 1 {
				t.Fatalf("device received %+v", du.Received)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device received %+v", du.Received)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if tot := p.srv.TotalUsage(); sms.Total(tot.Sent).Segments != 5 || len(p.srv.Usages()) != 1 {
		t.Fatalf("total %+v", tot)
	}
	_ = srv
}
