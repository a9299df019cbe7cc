package sms_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
)

// TestNewRefuses: a Config field out of its range fails New with
// ErrInvalidOption naming the field, before anything is opened (a
// negative MaxPeers, ReadQueue or sub-config field used to take the
// default; a negative LoopMax disabled the loop guard, a negative
// PeerRate the limiter).
func TestNewRefuses(t *testing.T) {
	n := smstest.NewNetwork(1, smstest.Faults{})
	defer n.Close()
	tr := n.AddSIM(serverNum)
	dir := filepath.Join(t.TempDir(), "state")
	badParams := sms.DefaultParams()
	badParams.NStart = 0
	newB := func(tr sms.Transport, c sms.Config) func() error {
		if c.StateDir == "-" {
			c.StateDir = ""
		} else {
			c.StateDir = dir
		}
		return func() error {
			b, err := sms.New(tr, c)
			if err == nil {
				b.Close()
			}
			return err
		}
	}
	cfgchecktest.Refuses(t, sms.ErrInvalidOption, []cfgchecktest.Case{
		{Name: "nil Transport", Field: "Transport", Make: newB(nil, sms.Config{})},
		{Name: "no StateDir", Field: "StateDir", Make: newB(tr, sms.Config{StateDir: "-"})},
		{Name: "negative MaxPeers", Field: "MaxPeers", Make: newB(tr, sms.Config{MaxPeers: -1})},
		{Name: "negative ReadQueue", Field: "ReadQueue", Make: newB(tr, sms.Config{ReadQueue: -1})},
		{Name: "negative LoopMax", Field: "LoopMax", Make: newB(tr, sms.Config{LoopMax: -1})},
		{Name: "negative LoopWindow", Field: "LoopWindow", Make: newB(tr, sms.Config{LoopMax: 3, LoopWindow: -time.Hour})},
		{Name: "negative PeerRate", Field: "PeerRate", Make: newB(tr, sms.Config{PeerRate: -1})},
		{Name: "NaN PeerRate", Field: "PeerRate", Make: newB(tr, sms.Config{PeerRate: math.NaN()})},
		{Name: "negative PeerBurst", Field: "PeerBurst", Make: newB(tr, sms.Config{PeerBurst: -1})},
		{Name: "BudgetWarnRatio above 1", Field: "BudgetWarnRatio", Make: newB(tr, sms.Config{BudgetWarnRatio: 1.5})},
		{Name: "negative DailyBudget", Field: "DailyBudget", Make: newB(tr, sms.Config{DailyBudget: new(-1)})},
		{Name: "negative DailyBudgetPerDevice", Field: "DailyBudgetPerDevice", Make: newB(tr, sms.Config{DailyBudgetPerDevice: new(-2)})},
		{Name: "invalid Params", Field: "Params", Make: newB(tr, sms.Config{Params: &badParams})},
		{Name: "Submit 7-bit DCS", Field: "Submit", Make: newB(tr, sms.Config{Submit: []pdu.Option{pdu.WithDCS(0)}})},
		{Name: "negative Reassembly.Timeout", Field: "Reassembly", Make: newB(tr, sms.Config{Reassembly: pdu.ReassemblerConfig{Timeout: -1}})},
		{Name: "negative Reassembly.MaxSetsPerOriginator", Field: "MaxSetsPerOriginator", Make: newB(tr, sms.Config{Reassembly: pdu.ReassemblerConfig{MaxSetsPerOriginator: -1}})},
		{Name: "negative Outbox.MaxEntries", Field: "Outbox.MaxEntries", Make: newB(tr, sms.Config{Outbox: outbox.Limits{MaxEntries: -1}})},
	})
	// Refused before anything was made: not even the state directory.
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state dir exists after refusals: %v", err)
	}
	// The Worker's fields are checked by outbox.NewWorker, once the
	// outbox is open; New closes what it opened.
	cfgchecktest.Refuses(t, sms.ErrInvalidOption, []cfgchecktest.Case{
		{Name: "negative Worker.MaxInFlight", Field: "Worker", Make: newB(tr, sms.Config{Worker: outbox.WorkerConfig{MaxInFlight: -1}})},
	})
	b, err := sms.New(tr, sms.Config{StateDir: dir})
	if err != nil {
		t.Fatalf("New after a refused Worker: %v", err)
	}
	b.Close()
}
