//go:build linux

package udp

import (
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// enableRecvErr turns on IP_RECVERR and IPV6_RECVERR: the kernel then
// queues an ICMP error for a datagram this (unconnected) socket sent on its
// error queue, with the datagram's destination, instead of dropping it.
func enableRecvErr(uc *net.UDPConn) bool {
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = rc.Control(func(fd uintptr) {
		// An IPv6 socket takes both (IPv4-mapped peers report through
		// IP_RECVERR); an IPv4 socket refuses the IPv6 one.
		if unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVERR, 1) == nil {
			ok = true
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_RECVERR, 1) == nil {
			ok = true
		}
	})
	return ok
}

// maxErrQueue bounds the ICMP reports one drain reads.
const maxErrQueue = 64

// drainErrQueue reads the socket's error queue without blocking and
// returns the destinations of the datagrams that met an ICMP port
// unreachable (ICMP type 3 code 3; ICMPv6 type 1 code 4). Other reports
// are read and dropped.
func drainErrQueue(uc *net.UDPConn) []netip.AddrPort {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	var out []netip.AddrPort
	_ = rc.Control(func(fd uintptr) {
		var buf [64]byte
		var oob [256]byte
		for range maxErrQueue {
			_, oobn, _, from, err := unix.Recvmsg(int(fd), buf[:], oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			if err != nil {
				return
			}
			if ap, ok := portUnreachable(oob[:oobn], from); ok {
				out = append(out, ap)
			}
		}
	})
	return out
}

// portUnreachable parses one error-queue message: a sock_extended_err
// (ee_errno u32, ee_origin u8, ee_type u8, ee_code u8, ...) in an
// IP_RECVERR / IPV6_RECVERR control message, and the original destination
// in msg_name.
func portUnreachable(oob []byte, from unix.Sockaddr) (netip.AddrPort, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.AddrPort{}, false
	}
	for _, m := range msgs {
		v4 := m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR
		v6 := m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR
		if (!v4 && !v6) || len(m.Data) < 7 {
			continue
		}
		origin, typ, code := m.Data[4], m.Data[5], m.Data[6]
		unreach := origin == unix.SO_EE_ORIGIN_ICMP && typ == 3 && code == 3 ||
			origin == unix.SO_EE_ORIGIN_ICMP6 && typ == 1 && code == 4
		if !unreach {
			continue
		}
		switch sa := from.(type) {
		case *unix.SockaddrInet4:
			return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), true
		case *unix.SockaddrInet6:
			return unmap(netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))), true
		}
	}
	return netip.AddrPort{}, false
}
