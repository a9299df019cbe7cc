//go:build !linux

package udp

import "net"

// forceBuffers has no equivalent outside Linux.
func forceBuffers(*net.UDPConn, int, int) {}
