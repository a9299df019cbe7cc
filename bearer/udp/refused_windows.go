//go:build windows

package udp

import (
	"errors"
	"syscall"
)

// isRefused reports an ICMP port-unreachable report surfacing on a read.
// Windows reports it as WSAECONNRESET even on unconnected sockets.
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.WSAECONNRESET)
}
