package modem

import "golang.org/x/sys/unix"

var baudRates = map[int]uint32{
	9600: unix.B9600, 19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600,
	115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800, 921600: unix.B921600,
	1000000: unix.B1000000, 3000000: unix.B3000000, 4000000: unix.B4000000,
}

func supportedBaud(baud int) bool { _, ok := baudRates[baud]; return ok }

func getTermios(fd int) (*unix.Termios, error) { return unix.IoctlGetTermios(fd, unix.TCGETS) }

func setTermios(fd int, t *unix.Termios) error { return unix.IoctlSetTermios(fd, unix.TCSETS, t) }

// setSpeed sets the line speed: Linux keeps it in the CBAUD bits of c_cflag
// as well as in c_ispeed/c_ospeed.
func setSpeed(t *unix.Termios, baud int) {
	speed := baudRates[baud]
	t.Cflag &^= unix.CBAUD
	t.Cflag |= speed
	t.Ispeed, t.Ospeed = speed, speed
}
