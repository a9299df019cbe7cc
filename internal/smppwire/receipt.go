package smppwire

import (
	"fmt"
	"strings"
	"time"
)

// MessageState is the message_state TLV and the stat field of a receipt
// (SMPP 3.4 §5.2.28, Appendix B).
type MessageState byte

// Message states.
const (
	StateEnroute       MessageState = 1
	StateDelivered     MessageState = 2
	StateExpired       MessageState = 3
	StateDeleted       MessageState = 4
	StateUndeliverable MessageState = 5
	StateAccepted      MessageState = 6
	StateUnknown       MessageState = 7
	StateRejected      MessageState = 8
)

var stateStat = map[MessageState]string{
	StateEnroute: "ENROUTE", StateDelivered: "DELIVRD", StateExpired: "EXPIRED", StateDeleted: "DELETED",
	StateUndeliverable: "UNDELIV", StateAccepted: "ACCEPTD", StateUnknown: "UNKNOWN", StateRejected: "REJECTD",
}

// Stat returns the seven-letter receipt form (DELIVRD, UNDELIV, ...).
func (s MessageState) Stat() string {
	if v, ok := stateStat[s]; ok {
		return v
	}
	return fmt.Sprintf("STATE%d", byte(s))
}

func (s MessageState) String() string { return s.Stat() }

// Final reports whether the SMSC is done with the message.
func (s MessageState) Final() bool {
	switch s {
	case StateDelivered, StateExpired, StateDeleted, StateUndeliverable, StateRejected:
		return true
	}
	return false
}

// Receipt is an SMSC delivery receipt: the text of Appendix B
// ("id:... sub:... dlvrd:... submit date:... done date:... stat:... err:...
// text:...") completed by the receipted_message_id and message_state TLVs
// when present, which take precedence (SMPP 3.4 §2.11).
type Receipt struct {
	ID         string
	Submitted  int
	Delivered  int
	SubmitDate time.Time
	DoneDate   time.Time
	State      MessageState
	Err        string
	Text       string
}

const receiptTime = "0601021504"

// Format returns the Appendix B text of r.
func (r *Receipt) Format() string {
	return fmt.Sprintf("id:%s sub:%03d dlvrd:%03d submit date:%s done date:%s stat:%s err:%s text:%s",
		r.ID, r.Submitted, r.Delivered, r.SubmitDate.UTC().Format(receiptTime), r.DoneDate.UTC().Format(receiptTime),
		r.State.Stat(), r.Err, r.Text)
}

// ParseReceipt reads a receipt from a deliver_sm whose esm_class marks a
// receipt. The TLVs decide the id and state when present; the text is
// parsed leniently (keys in any case and order, as SMSCs vary) but an id and
// a state must be found somewhere.
func ParseReceipt(s *SM) (*Receipt, error) {
	r := &Receipt{}
	text := string(s.Payload())
	fields := receiptFields(text)
	r.ID = fields["id"]
	if v, ok := fields["stat"]; ok {
		for st, name := range stateStat {
			if strings.EqualFold(v, name) {
				r.State = st
			}
		}
	}
	fmt.Sscanf(fields["sub"], "%d", &r.Submitted)
	fmt.Sscanf(fields["dlvrd"], "%d", &r.Delivered)
	r.SubmitDate, _ = time.Parse(receiptTime, fields["submit date"])
	r.DoneDate, _ = time.Parse(receiptTime, fields["done date"])
	r.Err = fields["err"]
	r.Text = fields["text"]
	if id, ok := s.TLVs.CString(TagReceiptedMessageID); ok && id != "" {
		r.ID = id
	}
	if st, ok := s.TLVs.U8(TagMessageState); ok && st != 0 {
		r.State = MessageState(st)
	}
	if r.ID == "" {
		return nil, fmt.Errorf("%w: receipt without a message id: %q", ErrMalformed, truncate(text, 80))
	}
	if r.State == 0 {
		return nil, fmt.Errorf("%w: receipt without a state: %q", ErrMalformed, truncate(text, 80))
	}
	return r, nil
}

var receiptKeys = []string{"id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text"}

// receiptFields splits "key:value key:value" with the two-word keys of
// Appendix B; the value of text runs to the end.
func receiptFields(s string) map[string]string {
	out := map[string]string{}
	low := asciiLower(s)
	type pos struct {
		key        string
		start, val int
	}
	var ps []pos
	for _, k := range receiptKeys {
		for i := 0; ; {
			j := strings.Index(low[i:], k+":")
			if j < 0 {
				break
			}
			j += i
			if j == 0 || low[j-1] == ' ' {
				// "date:" inside "submit date:" must not count as its own key.
				ps = append(ps, pos{k, j, j + len(k) + 1})
				break
			}
			i = j + 1
		}
	}
	for i := range ps {
		end := len(s)
		for _, q := range ps {
			if q.start > ps[i].start && q.start < end {
				end = q.start
			}
		}
		if ps[i].key == "text" {
			end = len(s)
		}
		out[ps[i].key] = strings.TrimSpace(s[ps[i].val:end])
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// asciiLower lowers A-Z only, so offsets in the result are offsets in s
// (strings.ToLower may change the length of invalid UTF-8).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
