package smpp

import (
	"io"
	"path/filepath"
	"strings"
	"sync"
)

// State is the durable correlation state of one SMSC account: the
// message_id → (source, destination, TP-MRs) of every submit awaiting its
// receipt, the TP-MR counters, and the payload-mode sets. A link opens its
// own (StateDir) unless Config.State gives it one to share.
//
// Links that bind to the same account share one: an SMSC may deliver a
// receipt on any session of the account that can receive (operators say so
// of their redundant binds), so the link that submitted a message is not
// always the one its receipt reaches. With one State the receiving link
// finds the correlation, a receipt that overtakes the store of its
// message_id waits for the submits of every link in flight, and the TP-MRs
// of the account come from one counter per source and destination.
//
// The zero State is closed; Close it after the links that use it.
type State struct {
	st      *store
	flight  *flight
	storing sync.Map // message_id -> chan struct{} closed once stored (for held receipts)
}

// OpenState opens (creating it if needed) the state file at path.
func OpenState(path string) (*State, error) {
	st, err := openStore(path)
	if err != nil {
		return nil, err
	}
	return &State{st: st, flight: newFlight()}, nil
}

// Close closes the file; nil for the zero State.
func (s *State) Close() error {
	if s == nil || s.st == nil {
		return nil
	}
	return s.st.close()
}

// WriteTo writes a consistent copy of the state file to w (one read
// transaction: the links go on meanwhile), for backups of a running
// daemon. The zero State has no file: ErrClosed.
func (s *State) WriteTo(w io.Writer) (int64, error) {
	if s == nil || s.st == nil {
		return 0, ErrClosed
	}
	return s.st.writeTo(w)
}

// StateFile is the path of the state file called name in dir
// (smpp-<name>.db, name reduced to file-name characters): a link's own is
// StateFile(StateDir, Name).
func StateFile(dir, name string) string {
	return filepath.Join(dir, "smpp-"+strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, name)+".db")
}
