package client_test

import (
	"errors"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/client"
)

// TestNewRefusesBadOptions: an option given a value out of its range
// fails New with ErrInvalidOption (WithRetry(0) used to be ignored; a
// lifetime 0, version "2.0" or binding "X" were announced as given).
func TestNewRefusesBadOptions(t *testing.T) {
	cases := []struct {
		name string
		opt  client.Option
		ok   bool
	}{
		{"lifetime 0", client.WithLifetime(0), false},
		{"version 2.0", client.WithVersion("2.0"), false},
		{"version empty", client.WithVersion(""), false},
		{"binding X", client.WithBinding("X"), false},
		{"binding empty", client.WithBinding(""), false},
		{"retry 0", client.WithRetry(0), false},
		{"retry -1ns", client.WithRetry(-1), false},
		{"nil clock", client.WithClock(nil), false},
		{"nil redial", client.WithRedial(nil), false},
		{"version 1.0", client.WithVersion("1.0"), true},
		{"binding UQS", client.WithBinding("UQS"), true},
		{"lifetime 1", client.WithLifetime(1), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.New("lamp", tc.opt)
			if tc.ok {
				if err != nil || c == nil {
					t.Fatalf("New = %v, %v", c, err)
				}
				return
			}
			if !errors.Is(err, client.ErrInvalidOption) || c != nil {
				t.Fatalf("New = %v, %v; want nil and ErrInvalidOption", c, err)
			}
		})
	}
}
