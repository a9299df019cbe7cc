package modem

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
)

// openSerial opens a COM port ("COM3", `\\.\COM12`) at baud, 8N1, with DTR
// and RTS on and no flow control. Reads return at least every 100 ms so
// that Close takes effect promptly (comTimeouts).
//
// This file is compiled by CI's cross-build; it has not been run against a
// modem on Windows in this project.
func openSerial(path string, baud int) (io.ReadWriteCloser, error) {
	if baud <= 0 {
		return nil, fmt.Errorf("modem: unsupported baud rate %d", baud)
	}
	name := path
	if !strings.HasPrefix(name, `\\.\`) {
		name = `\\.\` + name
	}
	p, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return nil, err
	}
	h, err := windows.CreateFile(p, windows.GENERIC_READ|windows.GENERIC_WRITE, 0, nil, windows.OPEN_EXISTING, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var dcb windows.DCB
	dcb.DCBlength = uint32(unsafe.Sizeof(dcb))
	if err := windows.GetCommState(h, &dcb); err != nil {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("configure %s: %w", path, err)
	}
	const (
		fBinary          = 0x0001
		fDtrControlOn    = 0x0010 // DTR_CONTROL_ENABLE
		fRtsControlOn    = 0x1000 // RTS_CONTROL_ENABLE
		noParity, oneBit = 0, 0
	)
	dcb.BaudRate = uint32(baud)
	dcb.Flags = fBinary | fDtrControlOn | fRtsControlOn
	dcb.ByteSize, dcb.Parity, dcb.StopBits = 8, noParity, oneBit
	if err := windows.SetCommState(h, &dcb); err != nil {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("configure %s: %w", path, err)
	}
	if err := windows.SetCommTimeouts(h, &comTimeouts); err != nil {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("configure %s: %w", path, err)
	}
	return &comPort{h: h}, nil
}

const maxDWORD = ^uint32(0)

// comTimeouts make ReadFile return what arrived, or nothing after 100 ms.
var comTimeouts = windows.CommTimeouts{
	ReadIntervalTimeout: maxDWORD, ReadTotalTimeoutMultiplier: maxDWORD, ReadTotalTimeoutConstant: 100,
	WriteTotalTimeoutConstant: 5000,
}

// comPort is an open COM port. Close stops a Read in progress within one
// read timeout.
type comPort struct {
	h      windows.Handle
	mu     sync.RWMutex // held for reading during I/O, for writing by Close
	closed bool
}

func (c *comPort) Read(b []byte) (int, error) {
	for {
		c.mu.RLock()
		if c.closed {
			c.mu.RUnlock()
			return 0, os.ErrClosed
		}
		var n uint32
		err := windows.ReadFile(c.h, b, &n, nil)
		c.mu.RUnlock()
		if err != nil {
			return int(n), err
		}
		if n > 0 {
			return int(n), nil
		}
	}
}

func (c *comPort) Write(b []byte) (int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return 0, os.ErrClosed
	}
	var n uint32
	err := windows.WriteFile(c.h, b, &n, nil)
	return int(n), err
}

func (c *comPort) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return windows.CloseHandle(c.h)
}
