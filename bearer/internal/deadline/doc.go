// Package deadline is a settable read deadline for bearers that are not
// backed by a socket (the in-memory pipe, the SMS bearer).
//
// # Usage
//
//	d := deadline.New()
//	d.Set(t)              // from SetReadDeadline; the zero time: none
//	select {
//	case dg := <-queue:   // a datagram
//	case <-d.Wait():      // the deadline passed: os.ErrDeadlineExceeded
//	}
//
// # Design
//
// A [Deadline] is a channel that is closed when the deadline passes and
// replaced when it is moved, the way net.Pipe implements SetReadDeadline.
package deadline
