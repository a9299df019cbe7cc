//go:build unix

package udp

import (
	"net"
	"syscall"
)

// msgTrunc is the recvmsg flag that marks a datagram cut to fit the buffer.
const msgTrunc = syscall.MSG_TRUNC

// socketBuffers reads back SO_RCVBUF and SO_SNDBUF.
func socketBuffers(uc *net.UDPConn) (read, write int) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return 0, 0
	}
	_ = rc.Control(func(fd uintptr) {
		if v, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF); err == nil {
			read = v
		}
		if v, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF); err == nil {
			write = v
		}
	})
	return read, write
}
