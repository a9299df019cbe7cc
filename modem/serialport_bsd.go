//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package modem

import "golang.org/x/sys/unix"

// The BSDs and macOS keep the line speed as the baud rate itself in
// c_ispeed/c_ospeed (B115200 == 115200), whose width differs by system.

func supportedBaud(baud int) bool {
	switch baud {
	case 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600:
		return true
	}
	return false
}

func getTermios(fd int) (*unix.Termios, error) { return unix.IoctlGetTermios(fd, unix.TIOCGETA) }

func setTermios(fd int, t *unix.Termios) error { return unix.IoctlSetTermios(fd, unix.TIOCSETA, t) }

func setSpeed(t *unix.Termios, baud int) {
	setField(&t.Ispeed, baud)
	setField(&t.Ospeed, baud)
}

func setField[T ~int32 | ~uint32 | ~int64 | ~uint64](f *T, v int) { *f = T(v) }
