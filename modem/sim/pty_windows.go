package sim

import (
	"errors"
	"fmt"
)

// ErrNoPTY is returned by OpenPTY where the system has no pseudo-terminals
// (Windows): plug the modem in over Pipe instead.
var ErrNoPTY = errors.New("sim: pseudo-terminals are not available on this system; use Pipe")

// OpenPTY fails with ErrNoPTY on Windows.
func (m *Modem) OpenPTY() (string, error) { return "", fmt.Errorf("%w", ErrNoPTY) }

// PTYPath returns "" on Windows: no modem is ever plugged in over a pty.
func (m *Modem) PTYPath() string { return "" }
