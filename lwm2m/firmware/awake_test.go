package firmware_test

import (
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// TestAnswerKeepsAwake: an answer of a queue-mode device is hearing from
// it. A device that answers the /5/0/3 observation late (more than the
// awake window after it woke), but answers, is awake: the next step must
// not wake it again (one SMS wake-up per update). Before the fix the
// observation's answer did not count, so a slow answer, or a loaded
// server between the wake-up and the delivery, cost a second wake-up:
// TestCampaignFleet's "woken 2 times" under load.
func TestAnswerKeepsAwake(t *testing.T) {
	const window = 2 * time.Second
	ls := &lights{}
	e := newEnv(t, ls)
	l := newLight(t, e, "sl-late", lightOpts{queue: true})
	ls.add(l)
	img := image(t, e, "2.0", 1500)
	l.sleepy.mu.Lock()
	l.sleepy.until = time.Time{} // asleep now
	l.sleepy.slow = func(r *bearer.Request) time.Duration {
		if r.Code == codes.GET && r.Options.HasOption(message.Observe) {
			return window + window/2
		}
		return 0
	}
	l.sleepy.mu.Unlock()
	o := fast()
	o.AwakeWindow = window
	res, err := e.upd.Update(ctxT(t, time.Minute), "sl-late", img.ID, o)
	if err != nil {
		t.Fatal(err)
	}
	l.sleepy.mu.Lock()
	defer l.sleepy.mu.Unlock()
	if l.sleepy.wakes != 1 || l.dev.Applied() != 1 {
		t.Fatalf("%s: woken %d times, applied %d, want once each", res.Plan.Method, l.sleepy.wakes, l.dev.Applied())
	}
}
