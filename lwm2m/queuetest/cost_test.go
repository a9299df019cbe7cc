package queuetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestSMSCostExact: what each exchange with an SMS-only light (binding S,
// not in queue mode) costs, counted by the server's SMS bearer as the SMS
// that crossed the simulated network through the pty modems: a Read of
// one resource is 2 SMS (request, response); a Write of 500 bytes is one
// concatenated request of 4 segments (≤ 536 bytes) and a 1-segment answer.
func TestSMSCostExact(t *testing.T) {
	const num = "+491730000007"
	w := newWorld(t, worldConfig{latency: 20 * time.Millisecond, window: 400 * time.Millisecond, smsOnly: []string{num}})
	l := w.newLight(lightConfig{name: "sms-cost", number: num, version: "1.1", binding: "S", awake: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tz := strings.Repeat("Europe/Berlin;", 36)[:500]
	for _, tc := range []struct {
		name                 string
		op                   func() error
		sent, received       uint64 // segments, server side
		sentPurpose, rcvdPur string
	}{
		{"read one resource", func() error {
			c, err := w.srv.Read(ctx, "sms-cost", path.Resource(3, 0, 0))
			if err == nil && c.Text() != "ACME Lighting" {
				t.Fatalf("read %q", c.Text())
			}
			return err
		}, 1, 1, "request", "response"},
		{"write 500 bytes", func() error {
			return w.srv.WriteValues(ctx, "sms-cost", path.Resource(3, 0, 15), server.Replace,
				content.Record{Path: path.Resource(3, 0, 15), Value: content.NewString(tz)})
		}, 4, 1, "request", "response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			settleSMS(t, w, l)
			before, _ := w.smsB.Usage(num)
			if err := tc.op(); err != nil {
				t.Fatal(err)
			}
			settleSMS(t, w, l)
			after, _ := w.smsB.Usage(num)
			sent, rcvd := segments(before.Sent, after.Sent, ""), segments(before.Received, after.Received, "")
			sp, rp := segments(before.Sent, after.Sent, tc.sentPurpose), segments(before.Received, after.Received, tc.rcvdPur)
			bytes := sms.Total(after.Sent).Bytes - sms.Total(before.Sent).Bytes
			t.Logf("%s: %d SMS sent (%d bytes), %d received", tc.name, sent, bytes, rcvd)
			if sent != tc.sent || rcvd != tc.received || sp != tc.sent || rp != tc.received {
				t.Fatalf("%s cost %d SMS sent (%d %s), %d received (%d %s); want %d and %d",
					tc.name, sent, sp, tc.sentPurpose, rcvd, rp, tc.rcvdPur, tc.sent, tc.received)
			}
		})
	}
	if v, _ := l.c.Get(path.Resource(3, 0, 15)); v.Str() != tz {
		t.Fatalf("timezone on the light: %d bytes", len(v.Str()))
	}
	_ = bearer.PurposeRequest
}
