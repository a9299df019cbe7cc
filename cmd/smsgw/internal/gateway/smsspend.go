package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
)

// SMS spend per UTC day and per number: the SMS bearer counts segments
// by peer since it started (sms.Bearer.Usages) and the segments sent
// today against the daily budgets (sms.Bearer.BudgetUsed, kept across
// restarts); neither says what an earlier day cost. The gateway samples
// the counters every spendSampleEvery (and before each API answer) and
// adds what grew since the last sample to the current UTC day, keeping
// spendDays days in <data_dir>/sms-spend.json (written when it changed,
// atomically, and at shutdown). Segments sent in the last interval before
// midnight may be counted on the next day; a crash loses at most the last
// interval. Today's budget figures come from the bearer itself.

const (
	spendFile        = "sms-spend.json"
	spendDays        = 31
	spendSampleEvery = time.Minute
	// maxSpendNumbers bounds the numbers of one day (the bearer's peers
	// are configured devices, so this is a guard, counted when hit).
	maxSpendNumbers = 100000
	maxSpendFile    = 64 << 20
)

// SMSSegments is what one number (or a whole day) cost in SMS segments.
type SMSSegments struct {
	Sent     uint64 `json:"sent_segments"`
	Received uint64 `json:"received_segments"`
}

type spendDay struct {
	Day     string                 `json:"day"` // YYYY-MM-DD, UTC
	Numbers map[string]SMSSegments `json:"numbers"`
}

// spendBook keeps the per-day spend. The zero spendBook is empty and
// usable.
type spendBook struct {
	mu      sync.Mutex
	last    map[string]SMSSegments // the bearer's totals at the last sample
	days    []spendDay             // oldest first, at most spendDays
	version uint64                 // grows with every change
	dropped uint64                 // numbers not kept (maxSpendNumbers)
}

// sample adds what each number's counters grew by since the last sample
// to the UTC day of now. The counters are read under the book's lock: two
// samples read out of order would see a counter go back.
func (b *spendBook) sample(now time.Time, usages func() []sms.Usage) {
	day := now.UTC().Format(time.DateOnly)
	b.mu.Lock()
	defer b.mu.Unlock()
	us := usages()
	if b.last == nil {
		b.last = map[string]SMSSegments{}
	}
	for _, u := range us {
		cur := SMSSegments{Sent: sms.Total(u.Sent).Segments, Received: sms.Total(u.Received).Segments}
		prev, seen := b.last[u.Peer]
		if !seen && len(b.last) >= maxSpendNumbers {
			b.dropped++
			continue
		}
		b.last[u.Peer] = cur
		d := SMSSegments{Sent: grown(prev.Sent, cur.Sent), Received: grown(prev.Received, cur.Received)}
		if d == (SMSSegments{}) {
			continue
		}
		nums := b.dayLocked(day)
		c, ok := nums[u.Peer]
		if !ok && len(nums) >= maxSpendNumbers {
			b.dropped++
			continue
		}
		c.Sent += d.Sent
		c.Received += d.Received
		nums[u.Peer] = c
		b.version++
	}
}

// grown is how much a counter grew; a counter that went back (a new
// bearer) counts from zero.
func grown(prev, cur uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// dayLocked returns the numbers of day, adding the day (and dropping the
// oldest beyond spendDays). A day before the newest one (the clock went
// back) is counted on the newest.
func (b *spendBook) dayLocked(day string) map[string]SMSSegments {
	if n := len(b.days); n > 0 && b.days[n-1].Day >= day {
		return b.days[n-1].Numbers
	}
	b.days = append(b.days, spendDay{Day: day, Numbers: map[string]SMSSegments{}})
	if len(b.days) > spendDays {
		b.days = slices.Delete(b.days, 0, len(b.days)-spendDays)
	}
	return b.days[len(b.days)-1].Numbers
}

// droppedNumbers counts the numbers not kept (maxSpendNumbers).
func (b *spendBook) droppedNumbers() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// recent returns copies of the last n days, newest first.
func (b *spendBook) recent(n int) []spendDay {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]spendDay, 0, min(n, len(b.days)))
	for i := len(b.days) - 1; i >= 0 && len(out) < n; i-- {
		d := spendDay{Day: b.days[i].Day, Numbers: make(map[string]SMSSegments, len(b.days[i].Numbers))}
		for k, v := range b.days[i].Numbers {
			d.Numbers[k] = v
		}
		out = append(out, d)
	}
	return out
}

// load restores days from a snapshot (the bearer's counters start again
// from zero, so the next sample adds everything since this start).
func (b *spendBook) load(r io.Reader) error {
	var days []spendDay
	if err := json.NewDecoder(io.LimitReader(r, maxSpendFile)).Decode(&days); err != nil {
		return err
	}
	days = slices.DeleteFunc(days, func(d spendDay) bool {
		_, err := time.Parse(time.DateOnly, d.Day)
		return err != nil || d.Numbers == nil
	})
	slices.SortStableFunc(days, func(x, y spendDay) int { return cmp.Compare(x.Day, y.Day) })
	days = slices.CompactFunc(days, func(x, y spendDay) bool { return x.Day == y.Day }) // the first of a day kept
	if len(days) > spendDays {
		days = days[len(days)-spendDays:]
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.days = days
	return nil
}

// save writes the days when they changed since *last.
func (b *spendBook) save(file string, last *uint64) error {
	b.mu.Lock()
	if b.version == *last {
		b.mu.Unlock()
		return nil
	}
	v := b.version
	data, err := json.Marshal(b.days)
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(file, data); err != nil {
		return err
	}
	*last = v
	return nil
}

// sampleSpend samples the SMS bearer's counters into the book (no-op
// without an SMS bearer).
func (g *Gateway) sampleSpend() {
	if g.smsB == nil || g.spend == nil {
		return
	}
	g.spend.sample(time.Now(), g.smsB.Usages)
}

// loadSpend restores <data_dir>/sms-spend.json; a file that cannot be
// read is reported and replaced at the next save.
func (g *Gateway) loadSpend() {
	file := filepath.Join(g.cfg.DataDir, spendFile)
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		g.log.Warn("sms spend: snapshot unreadable, starting empty", "file", file, "err", err)
		return
	}
	defer f.Close()
	if err := g.spend.load(f); err != nil {
		g.log.Warn("sms spend: snapshot unreadable, starting empty", "file", file, "err", err)
	}
}

// spendLoop samples every spendSampleEvery and saves what changed, and
// once more when ctx ends. Owned by g.wg.
func (g *Gateway) spendLoop(ctx context.Context) {
	defer g.wg.Done()
	file := filepath.Join(g.cfg.DataDir, spendFile)
	var last uint64
	t := time.NewTicker(spendSampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			g.sampleSpend()
			if err := g.spend.save(file, &last); err != nil {
				g.log.Error("sms spend: snapshot at shutdown", "err", err)
			}
			return
		case <-t.C:
			g.sampleSpend()
			if err := g.spend.save(file, &last); err != nil {
				g.log.Warn("sms spend: snapshot", "err", err)
			}
		}
	}
}

// SMSSpendDevice is one number's spend on one day.
type SMSSpendDevice struct {
	Endpoint string `json:"endpoint,omitempty"` // "" for a number no configured device has
	Number   string `json:"number"`
	SMSSegments
	// BudgetUsed is today's count of the bearer's budget (sent segments,
	// kept across restarts); absent for earlier days.
	BudgetUsed *int `json:"budget_used,omitempty"`
}

// SMSSpendDay is one UTC day's spend.
type SMSSpendDay struct {
	Day string `json:"day"`
	SMSSegments
	// BudgetUsed is the deployment's budget count, today only.
	BudgetUsed *int             `json:"budget_used,omitempty"`
	Devices    []SMSSpendDevice `json:"devices"`
}

// getSMSSpend serves GET /api/v1/sms/spend?days=N (1..31, default 7):
// the SMS segments of each of the last N UTC days, per device, with the
// daily budgets (per device and per deployment; -1 unlimited, 0 none)
// and today's budget counts.
func (g *Gateway) getSMSSpend(w http.ResponseWriter, r *http.Request) {
	n := 7
	if s := r.URL.Query().Get("days"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > spendDays {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("days %q: give a number of days from 1 to %d", s, spendDays))
			return
		}
		n = v
	}
	out := map[string]any{"budget_per_device": g.cfg.SMS.DailyBudgetPerDevice, "budget_per_day": g.cfg.SMS.DailyBudget,
		"timezone": "UTC", "days": []SMSSpendDay{}, "dropped_numbers": g.spend.droppedNumbers()}
	if g.smsB == nil {
		writeJSON(w, http.StatusOK, out)
		return
	}
	g.sampleSpend()
	today := time.Now().UTC().Format(time.DateOnly)
	days := []SMSSpendDay{}
	for _, d := range g.spend.recent(n) {
		sd := SMSSpendDay{Day: d.Day, Devices: make([]SMSSpendDevice, 0, len(d.Numbers))}
		for num, c := range d.Numbers {
			dev := SMSSpendDevice{Number: num, SMSSegments: c}
			dev.Endpoint, _ = g.endpointOfNumber(num)
			if d.Day == today {
				if used, err := g.smsB.BudgetUsed(num); err == nil {
					dev.BudgetUsed = &used
				}
			}
			sd.Sent += c.Sent
			sd.Received += c.Received
			sd.Devices = append(sd.Devices, dev)
		}
		slices.SortFunc(sd.Devices, func(x, y SMSSpendDevice) int { // most sent first
			return cmp.Or(cmp.Compare(y.Sent, x.Sent), cmp.Compare(x.Number, y.Number))
		})
		if d.Day == today {
			if used, err := g.smsB.BudgetUsed(""); err == nil {
				sd.BudgetUsed = &used
			}
		}
		days = append(days, sd)
	}
	out["days"] = days
	writeJSON(w, http.StatusOK, out)
}
