package smpp_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp"
)

// TestStateWriteTo: the copy WriteTo makes of a State's file opens as a
// State again; the zero State has no file (ErrClosed).
func TestStateWriteTo(t *testing.T) {
	dir := t.TempDir()
	st, err := smpp.OpenState(smpp.StateFile(dir, "link"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var buf bytes.Buffer
	if n, err := st.WriteTo(&buf); err != nil || n == 0 || n != int64(buf.Len()) {
		t.Fatalf("WriteTo: %d %v", n, err)
	}
	cp := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(cp, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := smpp.OpenState(cp)
	if err != nil {
		t.Fatalf("the copy does not open: %v", err)
	}
	c.Close()
	if _, err := (&smpp.State{}).WriteTo(&buf); !errors.Is(err, smpp.ErrClosed) {
		t.Fatalf("zero State: %v", err)
	}
}
