package gateway

import "testing"

// TestSMSBudget: sms.daily_budget and daily_budget_per_device 0 mean no
// SMS at all and -1 unlimited; the bearer read the 0 it was given as
// unlimited, so an operator's "no SMS" sent without limit.
func TestSMSBudget(t *testing.T) {
	tests := []struct {
		name string
		cfg  int
		want *int
	}{
		{"-1 is unlimited", -1, nil},
		{"0 is no SMS", 0, new(0)},
		{"200", 200, new(200)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := smsBudget(tc.cfg)
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Fatalf("smsBudget(%d) = %v, want %v", tc.cfg, got, tc.want)
			}
		})
	}
}
