//go:build !unix

package udp

import "net"

// msgTrunc is 0 where truncation is not reported through recvmsg flags.
const msgTrunc = 0

// socketBuffers is not reported on this platform.
func socketBuffers(*net.UDPConn) (read, write int) { return 0, 0 }
