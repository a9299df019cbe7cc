//go:build !linux

package udp

import (
	"net"
	"net/netip"
)

// enableRecvErr: only Linux reports ICMP errors of unconnected sockets
// with the destination they concern.
func enableRecvErr(*net.UDPConn) bool { return false }

func drainErrQueue(*net.UDPConn) []netip.AddrPort { return nil }
