package queue

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestNewRefusesBadConfig: a negative limit or duration (which used to
// take the default) and a Wake.Factor below 1 (which became 2) fail New
// with ErrInvalidOption; zero fields still take the defaults.
func TestNewRefusesBadConfig(t *testing.T) {
	exec := ExecutorFunc(func(context.Context, string, *Request) (*Result, error) { return &Result{}, nil })
	cases := []struct {
		name string
		set  func(*Config)
	}{
		{"Limits.PerDevice", func(c *Config) { c.Limits.PerDevice = -1 }},
		{"Limits.TotalBytes", func(c *Config) { c.Limits.TotalBytes = -1 }},
		{"Wake.Timeout", func(c *Config) { c.Wake.Timeout = -time.Second }},
		{"Wake.Factor 0.5", func(c *Config) { c.Wake.Factor = 0.5 }},
		{"Wake.Factor -2", func(c *Config) { c.Wake.Factor = -2 }},
		{"DefaultWindow", func(c *Config) { c.DefaultWindow = -time.Second }},
		{"Concurrency", func(c *Config) { c.Concurrency = -1 }},
		{"MaxDevices", func(c *Config) { c.MaxDevices = -1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Store: NewMemStore(), Executor: exec}
			tc.set(&cfg)
			m, err := New(cfg)
			if !errors.Is(err, ErrInvalidOption) || m != nil {
				if m != nil {
					m.Close()
				}
				t.Fatalf("New = %v, %v; want nil and ErrInvalidOption", m, err)
			}
		})
	}
	m, err := New(Config{Store: NewMemStore(), Executor: exec, Wake: WakePolicy{Factor: 1}})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}
