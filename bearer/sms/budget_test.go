package sms_test

import (
	"errors"
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

// TestDailyBudgetZero: a daily budget of new(0) sends no SMS at all (it
// used to be read as unlimited: a budget of 0 and no budget meant the
// same, the opposite of what 0 says, on the operator's bill); nil is
// unlimited; new(n) is n segments; a negative budget is refused.
func TestDailyBudgetZero(t *testing.T) {
	tests := []struct {
		name           string
		perDevice, all *int
		sends          int    // one-segment datagrams accepted before the refusal (-1: all 5)
		scope          string // of the refusal
	}{
		{"unlimited", nil, nil, -1, ""},
		{"device 0", new(0), nil, 0, "device"},
		{"deployment 0", nil, new(0), 0, "deployment"},
		{"device 2", new(2), nil, 2, "device"},
		{"deployment 3", new(5), new(3), 3, "deployment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, smstest.Faults{}, func(side string, c *sms.Config) {
				if side == "server" {
					c.DailyBudgetPerDevice, c.DailyBudget = tc.perDevice, tc.all
				}
			})
			dev := mustAddr(t, deviceNum)
			for i := range 5 {
				_, err := p.srv.WriteTo([]byte{0x40, 1, 0, byte(i)}, dev)
				if tc.sends < 0 || i < tc.sends {
					if err != nil {
						t.Fatalf("send %d: %v", i, err)
					}
					continue
				}
				var be *sms.BudgetError
				if !errors.As(err, &be) || be.Scope != tc.scope || be.Used != tc.sends {
					t.Fatalf("send %d: %v, want the %s budget refusing after %d", i, err, tc.scope, tc.sends)
				}
			}
		})
	}
	t.Run("negative is refused", func(t *testing.T) {
		n := smstest.NewNetwork(1, smstest.Faults{})
		defer n.Close()
		_, err := sms.New(n.AddSIM(serverNum), sms.Config{StateDir: t.TempDir(), DailyBudget: new(-1)})
		if err == nil {
			t.Fatal("New accepted a daily budget of -1")
		}
	})
}
