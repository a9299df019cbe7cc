//go:build !linux

package redistest

import "testing"

// Server is a redis-server process owned by a test (Linux only).
type Server struct{}

// Options configure Start.
type Options struct {
	AOF   bool
	Extra []string
}

// Start skips the test: the helper runs redis-server on Linux only.
func Start(t testing.TB, o Options) *Server {
	t.Skip("redistest: Linux only")
	return nil
}

// URL is empty off Linux.
func (s *Server) URL() string { return "" }
