//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package modem

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// openSerial opens a serial device (or a pty slave) in raw 8N1 mode at
// baud, with the descriptor left non-blocking under Go's poller.
//
// Why not tarm/serial (through warthog618/modem/serial): it switches the
// descriptor back to blocking mode after configuring it, so a Read waits in
// a system call that Close cannot interrupt, and closing an idle modem hangs
// until the modem happens to print something. Here the file stays in the
// poller: Close wakes a pending Read at once (os.ErrClosed), which the
// driver's recovery and shutdown need. The termios settings are the same
// raw 8N1 that tarm/serial applies; getTermios, setTermios and setSpeed
// are the per-system parts (Linux TCGETS with CBAUD speeds, BSD and macOS
// TIOCGETA with numeric speeds).
func openSerial(path string, baud int) (io.ReadWriteCloser, error) {
	if !supportedBaud(baud) {
		return nil, fmt.Errorf("modem: unsupported baud rate %d", baud)
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	var terr error
	err = rc.Control(func(fd uintptr) {
		t, err := getTermios(int(fd))
		if err != nil {
			terr = fmt.Errorf("not a terminal: %w", err)
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CSTOPB | unix.CRTSCTS
		t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		setSpeed(t, baud)
		terr = setTermios(int(fd), t)
	})
	if err == nil {
		err = terr
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("configure %s: %w", path, err)
	}
	return f, nil
}
