//go:build !windows

package udp

import (
	"errors"
	"syscall"
)

// isRefused reports an ICMP port-unreachable report surfacing on a read
// (ECONNREFUSED, on connected sockets).
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}
