package queue

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func genTime(t *rapid.T, label string) time.Time {
	if rapid.Bool().Draw(t, label+"zero") {
		return time.Time{}
	}
	return time.Unix(0, rapid.Int64Range(1, 1<<62).Draw(t, label))
}

func genRecord(t *rapid.T) *Record {
	r := &Record{
		Request: Request{
			ID:            rapid.Uint64().Draw(t, "id"),
			Endpoint:      rapid.String().Draw(t, "ep"),
			Kind:          Kind(rapid.IntRange(int(KindRead), int(kindEnd)-1).Draw(t, "kind")),
			Paths:         rapid.SliceOfN(rapid.String(), 0, 4).Draw(t, "paths"),
			Payload:       rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "payload"),
			ContentFormat: rapid.Int32().Draw(t, "cf"),
			Args:          rapid.String().Draw(t, "args"),
			Meta:          rapid.MapOfN(rapid.String(), rapid.String(), 0, 3).Draw(t, "meta"),
		},
		State:   State(rapid.IntRange(int(StateQueued), int(stateEnd)-1).Draw(t, "state")),
		ErrKind: ErrKind(rapid.IntRange(0, int(errKindEnd)-1).Draw(t, "errkind")),
		ErrMsg:  rapid.String().Draw(t, "errmsg"),
	}
	r.Created = genTime(t, "created")
	r.Expires = genTime(t, "expires")
	r.SendingSince = genTime(t, "sending")
	r.Finished = genTime(t, "finished")
	r.Attempt = Attempt{ID: r.ID, N: rapid.Uint32().Draw(t, "attempt")}
	if rapid.Bool().Draw(t, "hasResult") {
		r.Result = &Result{Code: rapid.Byte().Draw(t, "code"), ContentFormat: rapid.Int32().Draw(t, "rcf"),
			Payload: rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "rpayload")}
	}
	// Normalise what the codec normalises: empty slices and maps are nil.
	if len(r.Paths) == 0 {
		r.Paths = nil
	}
	if len(r.Payload) == 0 {
		r.Payload = nil
	}
	if len(r.Meta) == 0 {
		r.Meta = nil
	}
	if r.Result != nil && len(r.Result.Payload) == 0 {
		r.Result.Payload = nil
	}
	return r
}

func TestCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := genRecord(t)
		b := EncodeRecord(nil, r)
		got, err := DecodeRecord(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
		// Deterministic: the same record encodes to the same bytes.
		if !bytes.Equal(EncodeRecord(nil, got), b) {
			t.Fatal("encoding not deterministic")
		}
		// Every strict prefix is refused.
		cut := rapid.IntRange(0, len(b)-1).Draw(t, "cut")
		if _, err := DecodeRecord(b[:cut]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("prefix %d/%d: %v", cut, len(b), err)
		}
	})
}

func TestCodecRejects(t *testing.T) {
	good := EncodeRecord(nil, &Record{Request: Request{ID: 7, Endpoint: "lamp", Kind: KindRead, Paths: []string{"/3/0"}}, State: StateQueued})
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := map[string][]byte{
		"empty":    nil,
		"version":  mod(func(b []byte) []byte { b[0] = 2; return b }),
		"trailing": mod(func(b []byte) []byte { return append(b, 0) }),
		"kind":     mod(func(b []byte) []byte { b[1+1+1+4] = 0; return b }),
		"state":    mod(func(b []byte) []byte { b[1+1+1+4+1] = 9; return b }),
		"huge len": {1, 7, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, in := range tests {
		if _, err := DecodeRecord(in); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := DecodeRecord(good); err != nil {
		t.Fatal(err)
	}
	if n := len(good); n > 32 {
		t.Errorf("a queued read encodes to %d bytes", n)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(EncodeRecord(nil, &Record{Request: Request{ID: 1, Endpoint: "lamp-1", Kind: KindRead, Paths: []string{"/3/0"}, ContentFormat: NoContentFormat}, State: StateQueued}))
	f.Add(EncodeRecord(nil, &Record{
		Request: Request{ID: 1 << 40, Endpoint: "urn:imei:490154203237518", Kind: KindWriteComposite, Paths: []string{"/3/0/14", "/3311/0/5850"},
			Payload: []byte{0x82, 0x01, 0x02}, ContentFormat: 112, Args: "pmin=10", Meta: map[string]string{"job": "42"},
			Created: time.Unix(1700000000, 0), Expires: time.Unix(1700086400, 0)},
		State: StateDone, SendingSince: time.Unix(1700000100, 0), Result: &Result{Code: 0x44, ContentFormat: NoContentFormat},
		Finished: time.Unix(1700000101, 0),
	}))
	f.Add(EncodeRecord(nil, &Record{Request: Request{ID: 9, Endpoint: "x", Kind: KindExecute}, State: StateFailed, ErrKind: ErrKindNotWoken, ErrMsg: "not woken"}))
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRecord(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		// A decoded record re-encodes to a form that decodes to the same.
		again, err := DecodeRecord(EncodeRecord(nil, r))
		if err != nil || !reflect.DeepEqual(again.Request, r.Request) || again.State != r.State {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func TestAttemptToken(t *testing.T) {
	a := Attempt{ID: 5, N: 1}
	if !bytes.Equal(a.Token(), []byte{0, 0, 0, 0, 0, 5, 0, 1}) {
		t.Fatalf("token % x", a.Token())
	}
	seen := map[string]bool{}
	mids := map[uint16]int{}
	for id := uint64(1); id <= 1000; id++ {
		for n := uint32(1); n <= 3; n++ {
			tok := string(Attempt{ID: id, N: n}.Token())
			if seen[tok] {
				t.Fatalf("token collision at %d/%d", id, n)
			}
			seen[tok] = true
			mids[Attempt{ID: id, N: n}.MessageID()]++
		}
	}
	if len(mids) < 2900 {
		t.Fatalf("message IDs poorly spread: %d distinct of 3000", len(mids))
	}
	if (Attempt{ID: 5, N: 1}).MessageID() != a.MessageID() {
		t.Fatal("message ID not deterministic")
	}
}
