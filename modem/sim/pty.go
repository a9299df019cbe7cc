//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sim

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// OpenPTY plugs the modem in over a new pseudo-terminal and returns the path
// a driver opens: the WithPTYLink symlink when configured (it is re-pointed
// at each replug, like a udev name), else the slave device (/dev/pts/N).
// After Unplug, reads on the slave fail (EIO, then EOF once Linux has
// hung the terminal up), as reads on a vanished USB serial device do.
func (m *Modem) OpenPTY() (string, error) {
	if m.net == nil {
		return "", ErrNotCreated
	}
	master, slave, err := pty.Open()
	if err != nil {
		return "", fmt.Errorf("sim: open pty: %w", err)
	}
	if err := makeRaw(slave); err != nil {
		_ = master.Close()
		_ = slave.Close()
		return "", err
	}
	master, err = pollable(master)
	if err != nil {
		_ = slave.Close()
		return "", err
	}
	path := slave.Name()
	if m.link != "" {
		if err := relink(path, m.link); err != nil {
			_ = master.Close()
			_ = slave.Close()
			return "", err
		}
		path = m.link
	}
	a := &attachment{conn: master, slave: slave, path: slave.Name()}
	if err := m.plug(a, true); err != nil {
		_ = master.Close()
		_ = slave.Close()
		return "", err
	}
	return path, nil
}

// PTYPath returns the path of the current pty (the symlink when
// configured), or "" when the modem is not plugged in over a pty.
func (m *Modem) PTYPath() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.att == nil || m.att.slave == nil {
		return ""
	}
	if m.link != "" {
		return m.link
	}
	return m.att.path
}

// relink atomically points link at target.
func relink(target, link string) error {
	tmp := filepath.Join(filepath.Dir(link), fmt.Sprintf(".%s.%d.tmp", filepath.Base(link), os.Getpid()))
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("sim: pty link: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("sim: pty link: %w", err)
	}
	return nil
}

// makeRaw puts the terminal in raw mode (cfmakeraw), as a serial port
// driver would, so that the line discipline neither echoes nor edits.
func makeRaw(f *os.File) error {
	fd := int(f.Fd())
	t, err := getTermios(fd)
	if err != nil {
		return fmt.Errorf("sim: pty termios: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	if err := setTermios(fd, t); err != nil {
		return fmt.Errorf("sim: pty termios: %w", err)
	}
	return nil
}

// pollable returns f re-opened in non-blocking mode, so that it joins the
// runtime poller and Close interrupts a Read in progress (pty.Open hands
// out a blocking descriptor: a Read on it would outlive Unplug).
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("sim: pty dup: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("sim: pty nonblock: %w", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
