package hwtest

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Report collects what a lab run found. It is safe for concurrent use.
type Report struct {
	mu      sync.Mutex
	Mode    string // "hardware" or "simulator"
	Started time.Time
	Modems  []ModemInfo
	Timings map[string]time.Duration
	Counts  map[string]int
	Results map[string]string // test name -> "PASS"/"FAIL"/"SKIP"
	Notes   []string
}

// ModemInfo describes one modem under test.
type ModemInfo struct {
	Role, Device, MSISDN                   string
	Manufacturer, Model, Revision, Profile string
	IMEI, IMSI, SMSC                       string
	SignalDBm                              int
	SignalKnown                            bool
	Registration                           string
}

// NewReport starts a report.
func NewReport(mode string) *Report {
	return &Report{Mode: mode, Started: time.Now(), Timings: map[string]time.Duration{},
		Counts: map[string]int{}, Results: map[string]string{}}
}

// AddModem records a modem.
func (r *Report) AddModem(m ModemInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Modems = append(r.Modems, m)
}

// Time records a timing.
func (r *Report) Time(name string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Timings[name] = d
}

// Count adds n to a counter.
func (r *Report) Count(name string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Counts[name] += n
}

// Result records a test outcome.
func (r *Report) Result(name, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Results[name] = outcome
}

// Note adds a free-text line.
func (r *Report) Note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// WriteTo writes the report as plain text.
func (r *Report) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "m2mbearer hardware-in-the-loop report\n")
	fmt.Fprintf(&b, "mode: %s\nstarted: %s\nduration: %v\n\n", r.Mode, r.Started.UTC().Format(time.RFC3339), time.Since(r.Started).Round(time.Millisecond))
	for _, m := range r.Modems {
		sig := "unknown"
		if m.SignalKnown {
			sig = fmt.Sprintf("%d dBm", m.SignalDBm)
		}
		fmt.Fprintf(&b, "modem %s: %s %s (firmware %s), profile %s\n  device %s  MSISDN %s  IMEI %s  IMSI %s  SMSC %s\n  signal %s  registration %s\n",
			m.Role, m.Manufacturer, m.Model, m.Revision, m.Profile, m.Device, m.MSISDN, m.IMEI, m.IMSI, m.SMSC, sig, m.Registration)
	}
	fmt.Fprintf(&b, "\ntimings:\n")
	for _, k := range sortedKeys(r.Timings) {
		fmt.Fprintf(&b, "  %-32s %v\n", k, r.Timings[k].Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "counts:\n")
	for _, k := range sortedKeys(r.Counts) {
		fmt.Fprintf(&b, "  %-32s %d\n", k, r.Counts[k])
	}
	fmt.Fprintf(&b, "results:\n")
	for _, k := range sortedKeys(r.Results) {
		fmt.Fprintf(&b, "  %-32s %s\n", k, r.Results[k])
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
