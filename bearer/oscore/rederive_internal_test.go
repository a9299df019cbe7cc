package oscore

import (
	"bytes"
	"crypto/aes"
	"errors"
	"testing"
	"time"

	"github.com/pion/dtls/v3/pkg/crypto/ccm"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"pgregory.net/rapid"
)

func b2Pair() (cli, srv Params) {
	secret := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	salt := []byte{0x9e, 0x7c, 0xa9, 0x22, 0x23, 0x78, 0x63, 0x40}
	cli = Params{MasterSecret: secret, MasterSalt: salt, SenderID: []byte{0x01}, RecipientID: []byte{}}
	srv = Params{MasterSecret: secret, MasterSalt: salt, SenderID: []byte{}, RecipientID: []byte{0x01}}
	return cli, srv
}

func optionOf(t *testing.T, m *message.Message) (OptionValue, []byte) {
	t.Helper()
	for _, o := range m.Options {
		if o.ID == OptionNumber {
			v, err := ParseOption(o.Value)
			if err != nil {
				t.Fatal(err)
			}
			return v, o.Value
		}
	}
	t.Fatal("no OSCORE option")
	return OptionValue{}, nil
}

// open decrypts ct independently of the package's keysets: keys from
// Derive with idctx, nonce from the given Common IV (the request's keys),
// the requester's kid and Partial IV.
func openWith(t *testing.T, p Params, idctx []byte, senderSide bool, nonceIV, kid []byte, piv uint64, pivBytes, ct []byte) []byte {
	t.Helper()
	p.IDContext = idctx
	k, err := Derive(p)
	if err != nil {
		t.Fatal(err)
	}
	key := k.RecipientKey
	if senderSide {
		key = k.SenderKey
	}
	blk, _ := aes.NewCipher(key)
	a, _ := ccm.NewCCM(blk, tagLen, nonceLen)
	n := nonce(nonceIV, kid, piv)
	pt, err := a.Open(nil, n[:], ct, AAD(kid, pivBytes))
	if err != nil {
		t.Fatalf("independent decryption with ID context %x: %v", idctx, err)
	}
	return pt
}

// TestAppendixB2MessageFlow walks Figure 14 of RFC 8613 Appendix B.2
// message by message with two contexts that have no established state,
// checking each OSCORE option byte for byte and each ciphertext against
// keys derived independently with Derive: request #1 under ID1 = R1
// (kid context bstr(R1)), response #1 under R2||ID1 with the request's
// nonce (kid context bstr(R2)), request #2 under R2||R3 (kid context
// bstr(R2||R3)), response #2; then the ID Context both sides stored, and
// a restart that continues with it (Appendix B.1) instead of a new run.
func TestAppendixB2MessageFlow(t *testing.T) {
	cp, sp := b2Pair()
	cst, sst := NewMemoryStore(), NewMemoryStore()
	cli, err := NewContext(cp, cst, WithRederivation())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewContext(sp, sst, WithRederivation())
	if err != nil {
		t.Fatal(err)
	}
	get := &message.Message{Code: codes.GET, Type: message.Confirmable, MessageID: 0x1234, Token: []byte{7},
		Options: message.Options{{ID: message.URIPath, Value: []byte("x")}}}
	now := time.Now()

	// Step 1.
	m1, rid1, err := cli.ProtectRequest(get, false)
	if err != nil {
		t.Fatal(err)
	}
	o1, raw1 := optionOf(t, m1)
	if rid1.phase != b2Start || len(o1.KIDContext) != 9 || o1.KIDContext[0] != 0x48 {
		t.Fatalf("request #1: phase %v option %x", rid1.phase, raw1)
	}
	r1 := o1.KIDContext[1:]
	if want := append(append([]byte{0x19, 0x00, 0x09, 0x48}, r1...), 0x01); !bytes.Equal(raw1, want) {
		t.Fatalf("request #1 option %x, want %x (n=1 k h; PIV 0; s=9; bstr(R1); kid 01)", raw1, want)
	}
	k1, _ := Derive(Params{MasterSecret: cp.MasterSecret, MasterSalt: cp.MasterSalt, SenderID: cp.SenderID, RecipientID: cp.RecipientID, IDContext: r1})
	pt := openWith(t, cp, r1, true, k1.CommonIV, cp.SenderID, 0, []byte{0}, m1.Payload)
	if pt[0] != byte(codes.GET) {
		t.Fatalf("request #1 plaintext %x", pt)
	}

	// Step 2: verified with ID1, not executed, answered by response #1.
	_, srid1, err := srv.UnprotectRequest(m1, o1, now)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrRederive) || e.Code != codes.Unauthorized || len(e.r2) != b2RandLen {
		t.Fatalf("request #1 at the responder: %v", err)
	}
	r2 := e.r2
	if _, ok, _ := sst.LoadIDContext(srv.b2.origin); ok {
		t.Fatal("responder stored an ID context at step 2")
	}
	resp1 := &message.Message{Code: codes.Unauthorized, Type: message.Acknowledgement, MessageID: 0x1234, Token: []byte{7}}
	mr1, err := srv.protectResponse(srid1.ks, resp1, srid1, false, cborBytes(nil, r2))
	if err != nil {
		t.Fatal(err)
	}
	or1, rawr1 := optionOf(t, mr1)
	if want := append([]byte{0x10, 0x09, 0x48}, r2...); !bytes.Equal(rawr1, want) {
		t.Fatalf("response #1 option %x, want %x (h; s=9; bstr(R2); no Partial IV, no kid)", rawr1, want)
	}
	// Keys of R2||ID1, the request's nonce (R1's Common IV, the client's
	// kid and Partial IV).
	if pt := openWith(t, cp, concat(r2, r1), false, k1.CommonIV, cp.SenderID, 0, []byte{0}, mr1.Payload); pt[0] != byte(codes.Unauthorized) {
		t.Fatalf("response #1 plaintext %x", pt)
	}

	// Step 3.
	res, err := cli.unprotectResponse(mr1, or1, rid1)
	if err != nil || !res.rederive || res.msg.Code != codes.Unauthorized {
		t.Fatalf("response #1 at the requester: %+v %v", res, err)
	}
	m2, rid2, err := cli.ProtectRequest(get, false)
	if err != nil {
		t.Fatal(err)
	}
	o2, raw2 := optionOf(t, m2)
	if rid2.phase != b2Request2 || len(o2.KIDContext) != 17 || o2.KIDContext[0] != 0x50 || !bytes.HasPrefix(o2.KIDContext[1:], r2) {
		t.Fatalf("request #2 option %x", raw2)
	}
	id3 := append([]byte(nil), o2.KIDContext[1:]...)
	if raw2[0] != 0x19 || raw2[1] != 0x00 || raw2[2] != 17 {
		t.Fatalf("request #2 option %x: want flags 19, Partial IV 00 (fresh keys), s=17", raw2)
	}
	k3, _ := Derive(Params{MasterSecret: cp.MasterSecret, MasterSalt: cp.MasterSalt, SenderID: cp.SenderID, RecipientID: cp.RecipientID, IDContext: id3})
	openWith(t, cp, id3, true, k3.CommonIV, cp.SenderID, 0, []byte{0}, m2.Payload)
	if _, ok, _ := cst.LoadIDContext(cli.b2.origin); ok {
		t.Fatal("requester stored the ID context before response #2")
	}

	// Step 4: the responder's context from now on, stored before the
	// request is executed.
	pm2, srid2, err := srv.UnprotectRequest(m2, o2, now)
	if err != nil || srid2.phase != b2Complete || pm2.Code != codes.GET {
		t.Fatalf("request #2 at the responder: %v %v", srid2.phase, err)
	}
	if got, ok, _ := sst.LoadIDContext(srv.b2.origin); !ok || !bytes.Equal(got, id3) || !bytes.Equal(srv.CurrentIDContext(), id3) {
		t.Fatalf("responder: stored %x, in use %x, want %x", got, srv.CurrentIDContext(), id3)
	}
	if len(srv.b2.r2) != 0 {
		t.Fatal("R2 still cached after step 4")
	}
	// A replay of request #2 meets the replay window of the new context.
	if _, _, err := srv.UnprotectRequest(m2, o2, now); !errors.Is(err, ErrReplay) {
		t.Fatalf("request #2 replayed: %v", err)
	}

	// Step 5.
	mr2, err := srv.ProtectResponse(&message.Message{Code: codes.Content, Type: message.Acknowledgement, MessageID: 0x1235, Token: []byte{7}, Payload: []byte("ok")}, srid2, false)
	if err != nil {
		t.Fatal(err)
	}
	or2, rawr2 := optionOf(t, mr2)
	if len(rawr2) != 0 {
		t.Fatalf("response #2 option %x, want empty", rawr2)
	}
	res, err = cli.unprotectResponse(mr2, or2, rid2)
	if err != nil || !res.confirmed || string(res.msg.Payload) != "ok" {
		t.Fatalf("response #2: %+v %v", res, err)
	}
	if got, ok, _ := cst.LoadIDContext(cli.b2.origin); !ok || !bytes.Equal(got, id3) || !bytes.Equal(cli.CurrentIDContext(), id3) {
		t.Fatalf("requester: stored %x, in use %x, want %x", got, cli.CurrentIDContext(), id3)
	}

	// From now on: the ID Context in the kid context (§5.1), no run.
	m3, rid3, err := cli.ProtectRequest(get, false)
	if err != nil {
		t.Fatal(err)
	}
	o3, raw3 := optionOf(t, m3)
	if rid3.phase != b2None || !bytes.Equal(o3.KIDContext, id3) || raw3[1] != 0x01 {
		t.Fatalf("request after the run: option %x", raw3)
	}
	if _, _, err := srv.UnprotectRequest(m3, o3, now); err != nil {
		t.Fatal(err)
	}
	// The identity is the provisioned one.
	if id := srv.Identity(); id.String() != "oscore:01" || id.OSCOREIDContext != nil {
		t.Fatalf("identity after the run %v", id)
	}

	// Restart of both sides with their stores: Appendix B.1 continues the
	// established context (sequence above the stored bound, Echo for the
	// window), no new run.
	cli2, err := NewContext(cp, cst, WithRederivation())
	if err != nil {
		t.Fatal(err)
	}
	srv2, err := NewContext(sp, sst, WithRederivation())
	if err != nil {
		t.Fatal(err)
	}
	if _, est := cli2.Rederivation(); !est || !bytes.Equal(cli2.CurrentIDContext(), id3) || cli2.Seq() < 2 {
		t.Fatalf("requester after restart: established %v, ID %x, seq %d", est, cli2.CurrentIDContext(), cli2.Seq())
	}
	m4, rid4, err := cli2.ProtectRequest(get, false)
	if err != nil || rid4.phase != b2None {
		t.Fatal(err)
	}
	o4, _ := optionOf(t, m4)
	if _, _, err := srv2.UnprotectRequest(m4, o4, now); !errors.Is(err, ErrEchoRequired) {
		t.Fatalf("restarted responder: %v, want an Echo challenge (B.1.2)", err)
	}
}

// TestAppendixB2ServerInitiated: the responder lost its state while the
// requester kept its established context. The requester's request names
// its ID Context; the responder verifies it with that ID Context as ID1,
// answers response #1, and the run completes (B.2: "the server may
// initiate the protocol; step 1 is omitted").
func TestAppendixB2ServerInitiated(t *testing.T) {
	cp, sp := b2Pair()
	cst := NewMemoryStore()
	cli, _ := NewContext(cp, cst, WithRederivation())
	srv, _ := NewContext(sp, NewMemoryStore(), WithRederivation())
	get := &message.Message{Code: codes.GET, Type: message.Confirmable, MessageID: 1, Token: []byte{1}}
	now := time.Now()
	run := func(c, s *Context) {
		t.Helper()
		for i := 0; i < 3; i++ {
			m, rid, err := c.ProtectRequest(get, false)
			if err != nil {
				t.Fatal(err)
			}
			o, _ := optionOf(t, m)
			_, srid, err := s.UnprotectRequest(m, o, now)
			var e *Error
			if errors.As(err, &e) && errors.Is(err, ErrRederive) {
				r1, err := s.protectResponse(srid.ks, &message.Message{Code: codes.Unauthorized, Token: []byte{1}}, srid, false, cborBytes(nil, e.r2))
				if err != nil {
					t.Fatal(err)
				}
				ro, _ := optionOf(t, r1)
				if res, err := c.unprotectResponse(r1, ro, rid); err != nil || !res.rederive {
					t.Fatalf("response #1: %v", err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			r2, _ := s.ProtectResponse(&message.Message{Code: codes.Content, Token: []byte{1}}, srid, false)
			ro, _ := optionOf(t, r2)
			if _, err := c.unprotectResponse(r2, ro, rid); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatal("no run completed in 3 requests")
	}
	run(cli, srv)
	old := cli.CurrentIDContext()
	// The responder loses everything.
	srv, _ = NewContext(sp, NewMemoryStore(), WithRederivation())
	m, _, _ := cli.ProtectRequest(get, false)
	o, _ := optionOf(t, m)
	if _, _, err := srv.UnprotectRequest(m, o, now); !errors.Is(err, ErrRederive) {
		t.Fatalf("responder without state: %v, want response #1 (server-initiated run)", err)
	}
	run(cli, srv)
	if bytes.Equal(cli.CurrentIDContext(), old) || !bytes.Equal(cli.CurrentIDContext(), srv.CurrentIDContext()) {
		t.Fatalf("ID contexts: old %x, requester %x, responder %x", old, cli.CurrentIDContext(), srv.CurrentIDContext())
	}
	// A requester that sends no kid context to a responder without state
	// (a peer that is not ours): the provisioned ID Context is ID1.
	srv, _ = NewContext(sp, NewMemoryStore(), WithRederivation())
	plain, _ := NewContext(cp, NewMemoryStore(), WithTrustedReplayWindow())
	m, _, _ = plain.ProtectRequest(get, false)
	o, _ = optionOf(t, m)
	if _, _, err := srv.UnprotectRequest(m, o, now); !errors.Is(err, ErrRederive) {
		t.Fatalf("request without kid context to a responder without state: %v", err)
	}
}

// TestAppendixB2Bounds: the responder caches at most b2MaxRuns R2 values
// (oldest dropped first, reported), they expire after the Echo lifetime,
// and a request #2 whose R2 expired starts a new run instead of being
// accepted.
func TestAppendixB2Bounds(t *testing.T) {
	cp, sp := b2Pair()
	srv, _ := NewContext(sp, NewMemoryStore(), WithRederivation(), WithEchoLifetime(time.Minute))
	now := time.Now()
	evicted := 0
	for i := 0; i < 10; i++ {
		cli, _ := NewContext(cp, NewMemoryStore(), WithRederivation())
		m, _, _ := cli.ProtectRequest(&message.Message{Code: codes.GET, Token: []byte{1}}, false)
		o, _ := optionOf(t, m)
		_, _, err := srv.UnprotectRequest(m, o, now)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrRederive) {
			t.Fatal(err)
		}
		if e.evicted {
			evicted++
		}
	}
	if len(srv.b2.r2) != b2MaxRuns || evicted != 10-b2MaxRuns {
		t.Fatalf("cached %d R2, %d evicted", len(srv.b2.r2), evicted)
	}
	later := now.Add(2 * time.Minute)
	if srv.sentR2(append(append([]byte(nil), srv.b2.r2[3].r2...), 1, 2, 3), later) {
		t.Fatal("an expired R2 still accepted")
	}
	srv.rememberR2(random(b2RandLen), later)
	if len(srv.b2.r2) != 1 {
		t.Fatalf("expired R2 values not pruned: %d", len(srv.b2.r2))
	}
}

func TestUnwrapBstr(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		out  []byte
		ok   bool
	}{
		{"empty", nil, nil, false},
		{"8 bytes", append([]byte{0x48}, make([]byte, 8)...), make([]byte, 8), true},
		{"empty bstr", []byte{0x40}, []byte{}, true},
		{"24 bytes, one length byte", append([]byte{0x58, 24}, make([]byte, 24)...), make([]byte, 24), true},
		{"non-shortest length", append([]byte{0x58, 8}, make([]byte, 8)...), nil, false},
		{"trailing byte", append([]byte{0x48}, make([]byte, 9)...), nil, false},
		{"short", append([]byte{0x48}, make([]byte, 7)...), nil, false},
		{"text string", append([]byte{0x68}, make([]byte, 8)...), nil, false},
		{"two-byte length", append([]byte{0x59, 0, 8}, make([]byte, 8)...), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, ok := unwrapBstr(tc.in)
			if ok != tc.ok || !bytes.Equal(out, tc.out) {
				t.Fatalf("unwrapBstr(%x) = %x %v", tc.in, out, ok)
			}
		})
	}
}

// TestAppendixB2TamperedResponse1: a response #1 that does not verify
// with the keys of its R2||ID1 (tampered ciphertext, R2 or Partial IV, or
// replayed to another request), or is not a 4.01, starts nothing: no new
// keys are chosen and the requester keeps its run.
func TestAppendixB2TamperedResponse1(t *testing.T) {
	cp, sp := b2Pair()
	cli, _ := NewContext(cp, NewMemoryStore(), WithRederivation())
	srv, _ := NewContext(sp, NewMemoryStore(), WithRederivation())
	get := &message.Message{Code: codes.GET, Type: message.Confirmable, MessageID: 9, Token: []byte{9}}
	m1, rid1, _ := cli.ProtectRequest(get, false)
	o1, _ := optionOf(t, m1)
	_, srid, err := srv.UnprotectRequest(m1, o1, time.Now())
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	respond := func(code codes.Code) *message.Message {
		r, err := srv.protectResponse(srid.ks, &message.Message{Code: code, Type: message.Acknowledgement, MessageID: 9, Token: []byte{9}}, srid, false, cborBytes(nil, e.r2))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	_, otherRID, _ := cli.ProtectRequest(get, false) // another request of the run
	for _, tc := range []struct {
		name   string
		msg    func() *message.Message
		rid    RequestID
		reason error
	}{
		{"tampered ciphertext", func() *message.Message { r := respond(codes.Unauthorized); r.Payload[0] ^= 1; return r }, rid1, ErrDecrypt},
		{"tampered R2", func() *message.Message {
			r := respond(codes.Unauthorized)
			r.Options[0].Value = append([]byte(nil), r.Options[0].Value...)
			r.Options[0].Value[5] ^= 1
			return r
		}, rid1, ErrDecrypt},
		{"R2 not a bstr", func() *message.Message {
			r := respond(codes.Unauthorized)
			r.Options[0].Value = append([]byte(nil), r.Options[0].Value...)
			r.Options[0].Value[2] = 0x68
			return r
		}, rid1, ErrBadOption},
		{"replayed to another request", func() *message.Message { return respond(codes.Unauthorized) }, otherRID, ErrDecrypt},
		{"not a 4.01", func() *message.Message { return respond(codes.Content) }, rid1, ErrDecode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.msg()
			o, _ := optionOf(t, m)
			if _, err := cli.unprotectResponse(m, o, tc.rid); !errors.Is(err, tc.reason) {
				t.Fatalf("%v, want %v", err, tc.reason)
			}
			if cli.b2.pend != nil {
				t.Fatal("new keys chosen from a response #1 that did not verify")
			}
		})
	}
	m := respond(codes.Unauthorized)
	o, _ := optionOf(t, m)
	if r, err := cli.unprotectResponse(m, o, rid1); err != nil || !r.rederive || cli.b2.pend == nil {
		t.Fatalf("the genuine response #1: %v", err)
	}
}

// nonceLog records every (key, nonce) an exchange seals with, and fails
// when one protects two different ciphertexts: a reused nonce.
type nonceLog struct {
	t    *rapid.T
	seen map[string][]byte
}

func (l *nonceLog) add(key []byte, n [nonceLen]byte, ct []byte) {
	k := string(key) + string(n[:])
	if prev, ok := l.seen[k]; ok && !bytes.Equal(prev, ct) {
		l.t.Fatalf("nonce %x reused under key %x", n, key)
	}
	l.seen[k] = append([]byte(nil), ct...)
}

// exchange runs one request from c to s the way two Conns do (Echo
// challenges, Appendix B.2 response #1 and the re-sent request), logging
// every nonce; it returns how often s executed the request.
func exchange(t *rapid.T, l *nonceLog, c, s *Context, payload []byte) int {
	now := time.Now()
	for attempt := 0; attempt < 4; attempt++ {
		m, rid, err := c.ProtectRequest(&message.Message{Code: codes.POST, Token: []byte{1}, Payload: payload}, false)
		if err != nil {
			t.Fatal(err)
		}
		l.add(rid.ks.keys.SenderKey, nonce(rid.ks.keys.CommonIV, c.p.SenderID, rid.seq), m.Payload)
		o, _ := ParseOption(m.Options[0].Value)
		pm, srid, err := s.UnprotectRequest(m, o, now)
		var resp *message.Message
		var e *Error
		switch {
		case errors.As(err, &e) && errors.Is(err, ErrRederive):
			resp, err = s.protectResponse(srid.ks, &message.Message{Code: codes.Unauthorized, Token: []byte{1}}, srid, false, cborBytes(nil, e.r2))
			if err != nil {
				t.Fatal(err)
			}
			l.add(srid.ks.keys.SenderKey, srid.requestNonce(nil), resp.Payload)
		case errors.Is(err, ErrEchoRequired):
			before := srid.ks.seq
			resp, err = s.ProtectResponse(&message.Message{Code: codes.Unauthorized, Token: []byte{1},
				Options: message.Options{{ID: message.Echo, Value: s.echoChallenge(srid.ks, now)}}}, srid, true)
			if err != nil {
				t.Fatal(err)
			}
			l.add(srid.ks.keys.SenderKey, nonce(srid.ks.keys.CommonIV, s.p.SenderID, before), resp.Payload)
		case err == nil:
			if !bytes.Equal(pm.Payload, payload) {
				t.Fatalf("payload %q", pm.Payload)
			}
			resp, err = s.ProtectResponse(&message.Message{Code: codes.Changed, Token: []byte{1}, Payload: payload}, srid, false)
			if err != nil {
				t.Fatal(err)
			}
			l.add(srid.ks.keys.SenderKey, srid.requestNonce(nil), resp.Payload)
		default:
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		ro := OptionValue{}
		for _, op := range resp.Options {
			if op.ID == OptionNumber {
				ro, _ = ParseOption(op.Value)
			}
		}
		r, err := c.unprotectResponse(resp, ro, rid)
		if err != nil {
			t.Fatalf("response: %v", err)
		}
		if r.msg.Code == codes.Changed {
			return 1
		}
	}
	t.Fatal("no answer in 4 attempts")
	return 0
}

// TestAppendixB2NeverReusesANonce is a property: whatever the sequence of
// exchanges (either side requesting), restarts with storage and losses of
// all storage on either side, every exchange is executed exactly once and
// no (key, nonce) pair ever protects two different messages.
func TestAppendixB2NeverReusesANonce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cp, sp := b2Pair()
		cst, sst := NewMemoryStore(), NewMemoryStore()
		open := func(p Params, st *MemoryStore) *Context {
			x, err := NewContext(p, st, WithRederivation(), WithSeqStep(4))
			if err != nil {
				t.Fatal(err)
			}
			return x
		}
		c, s := open(cp, cst), open(sp, sst)
		l := &nonceLog{t: t, seen: map[string][]byte{}}
		n := 0
		t.Repeat(map[string]func(*rapid.T){
			"device requests": func(t *rapid.T) {
				n++
				if exchange(t, l, c, s, []byte{byte(n), byte(n >> 8), 'd'}) != 1 {
					t.Fatal("not executed once")
				}
			},
			"server requests": func(t *rapid.T) {
				n++
				if exchange(t, l, s, c, []byte{byte(n), byte(n >> 8), 's'}) != 1 {
					t.Fatal("not executed once")
				}
			},
			"device restarts": func(t *rapid.T) { c = open(cp, cst) },
			"server restarts": func(t *rapid.T) { s = open(sp, sst) },
			"device loses its storage": func(t *rapid.T) {
				cst.Forget()
				c = open(cp, cst)
			},
			"server loses its storage": func(t *rapid.T) {
				sst.Forget()
				s = open(sp, sst)
			},
		})
	})
}
