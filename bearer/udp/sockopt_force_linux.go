//go:build linux

package udp

import (
	"net"
	"syscall"
)

// forceBuffers sets SO_RCVBUFFORCE / SO_SNDBUFFORCE, which exceed
// net.core.rmem_max / wmem_max for a process with CAP_NET_ADMIN. Without the
// capability the kernel refuses (EPERM) and the sizes stay as granted.
func forceBuffers(uc *net.UDPConn, read, write int) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if read > 0 {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, read)
		}
		if write > 0 {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, write)
		}
	})
}
