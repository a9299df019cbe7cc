package zerovalue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/modemlink"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/route"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
	"github.com/m2mbearer/m2mbearer/lwm2m/smswake"
	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

// refusals: a zero value that is not usable refuses with its package's
// documented sentinel (not merely without panicking, which TestZeroValues
// checks): each case calls one method and names the error it must match
// (nil for a handler's answer, which the case checks itself).
var refusals = []struct {
	name string
	call func(ctx context.Context) error
	want error
}{
	{"modem.Modem.Command", func(ctx context.Context) error {
		_, err := new(modem.Modem).Command(ctx, "+CSQ")
		return err
	}, modem.ErrNotCreated},
	{"modem.Modem.SendPDU", func(ctx context.Context) error {
		_, err := new(modem.Modem).SendPDU(ctx, []byte{0x01, 0x00, 0x0b})
		return err
	}, modem.ErrNotCreated},
	{"modem.Pool.Add", func(ctx context.Context) error {
		return new(modem.Pool).Add(new(modem.Modem))
	}, modem.ErrNotCreated},
	{"modem.Pool.Send", func(ctx context.Context) error {
		_, err := new(modem.Pool).Send(ctx, nil, []byte{1, 2})
		return err
	}, modem.ErrNotCreated},
	{"sim.Network.AddModem", func(ctx context.Context) error {
		_, err := new(sim.Network).AddModem("+15550000001")
		return err
	}, sim.ErrNotCreated},
	{"sim.Network.AddEndpoint", func(ctx context.Context) error {
		_, err := new(sim.Network).AddEndpoint("+15550000001", nil)
		return err
	}, sim.ErrNotCreated},
	{"sim.Modem.Pipe", func(ctx context.Context) error {
		_, err := new(sim.Modem).Pipe()
		return err
	}, sim.ErrNotCreated},
	{"bearer.Endpoint.Do is closed", func(ctx context.Context) error {
		_, err := new(bearer.Endpoint).Do(ctx, bearer.NewRequest(codes.GET, &net.UDPAddr{}, "/3/0"))
		return err
	}, bearer.ErrClosed},
	{"bearer.Observer.Notify has ended", func(ctx context.Context) error {
		return new(bearer.Observer).Notify(ctx, codes.Content, nil)
	}, bearer.ErrObservationEnded},
	{"route.Mux.SendTPDU", sendTPDU(new(route.Mux)), route.ErrNoRoute},
	{"route.Mux.Inbound is closed", inboundClosed(new(route.Mux).Inbound()), net.ErrClosed},
	{"smpp.Link.SendTPDU is closed", sendTPDU(new(smpp.Link)), smpp.ErrClosed},
	{"smpp.Link.Inbound is closed", inboundClosed(new(smpp.Link).Inbound()), net.ErrClosed},
	{"sms.BoltState.Spend", func(context.Context) error {
		_, _, err := new(sms.BoltState).Spend("2026-12-06", "+15550000001", 1, 10, 10)
		return err
	}, sms.ErrNotCreated},
	{"server.Queue.Wait", waitFor(new(server.Queue)), server.ErrNotCreated},
	{"server.Observation.Cancel", func(ctx context.Context) error {
		return new(server.Observation).Cancel(ctx)
	}, server.ErrNotCreated},
	{"smswake.Waker.Wake", func(ctx context.Context) error {
		return new(smswake.Waker).Wake(ctx, "lamp", queue.WakeTarget{MSISDN: "+15550000001"})
	}, queue.ErrNotCreated},
	{"queue.WakeTarget names no number", func(ctx context.Context) error {
		return (&smswake.Waker{Conn: new(sms.Bearer)}).Wake(ctx, "lamp", queue.WakeTarget{})
	}, queue.ErrBadTarget},
	{"smswake.Peers.AddWakePeer", func(context.Context) error {
		return smswake.Peers{}.AddWakePeer(queue.WakeTarget{MSISDN: "+15550000001"})
	}, queue.ErrNotCreated},
	{"firmware.Store.Put", func(ctx context.Context) error {
		_, err := new(firmware.Store).PutBytes(ctx, "img", "1.0", []byte{1})
		return err
	}, firmware.ErrNotCreated},
	{"firmware.DirCatalog.Put writes nowhere", func(ctx context.Context) error {
		return firmware.DirCatalog{}.Put(ctx, firmware.ImageInfo{ID: "0123456789abcdef"})
	}, firmware.ErrInvalid},
	{"firmware.CoAPHandler answers 4.04", answers(new(firmware.CoAPHandler), "/0123456789abcdef", codes.NotFound), nil},
	{"oscore.Conn.WriteTo", writeTo(new(oscore.Conn), &net.UDPAddr{}), oscore.ErrNotCreated},
	{"oscore.Conn.ReadFrom is closed", readFrom(new(oscore.Conn)), net.ErrClosed},
	{"oscore.Context.ProtectRequest", func(context.Context) error {
		_, _, err := new(oscore.Context).ProtectRequest(&message.Message{Code: codes.GET, Token: []byte{1}}, false)
		return err
	}, oscore.ErrNotCreated},
	{"oscore.Context.UnprotectRequest", func(context.Context) error {
		_, _, err := new(oscore.Context).UnprotectRequest(&message.Message{Code: codes.POST, Payload: make([]byte, 16)},
			oscore.OptionValue{PIV: []byte{1}, KID: []byte{1}, HasKID: true}, time.Now())
		if oscore.CodeOf(err) != codes.Unauthorized {
			return fmt.Errorf("code %v, want 4.01: %w", oscore.CodeOf(err), err)
		}
		return err
	}, oscore.ErrNotCreated},
	{"oscore.Params is refused", func(context.Context) error { return oscore.Params{}.Validate() }, oscore.ErrInvalidOption},
	{"oscore.BoltStore.LoadSeq", func(context.Context) error {
		_, _, err := new(oscore.BoltStore).LoadSeq("k")
		return err
	}, oscore.ErrNotCreated},
	{"oscore.BoltStore.StoreSeq", func(context.Context) error {
		return new(oscore.BoltStore).StoreSeq("k", 64)
	}, oscore.ErrNotCreated},
	// Security: a context on a zero store must not start its sequence
	// numbers at 0 as if nothing had been sent (nonce reuse).
	{"oscore.NewContext on a zero BoltStore", func(context.Context) error {
		_, err := oscore.NewContext(oscore.Params{MasterSecret: make([]byte, 16), SenderID: []byte{1}}, new(oscore.BoltStore))
		return err
	}, oscore.ErrNotCreated},
	{"secure.Server.ReadFrom", readFrom(new(secure.Server)), secure.ErrNotCreated},
	{"secure.Server.WriteTo is closed", writeTo(new(secure.Server), &net.UDPAddr{}), secure.ErrClosed},
	{"secure.Conn.WriteTo", writeTo(new(secure.Conn), &net.UDPAddr{}), secure.ErrNotCreated},
	{"secure.Conn.ReadFrom is net.ErrClosed", readFrom(new(secure.Conn)), net.ErrClosed},
	{"sms.Bearer.WriteTo", writeTo(new(sms.Bearer), sms.Addr{}), sms.ErrNotCreated},
	{"sms.Bearer.ReadFrom is closed", readFrom(new(sms.Bearer)), net.ErrClosed},
	{"sms.Bearer.AddPeer", func(ctx context.Context) error {
		return new(sms.Bearer).AddPeer("+15550000001", sms.Peer{})
	}, sms.ErrNotCreated},
	{"modemlink.Link.SendTPDU", sendTPDU(new(modemlink.Link)), modemlink.ErrNotCreated},
	{"modemlink.Link.Inbound is closed", inboundClosed(new(modemlink.Link).Inbound()), net.ErrClosed},
	{"outbox.Outbox.Enqueue", func(ctx context.Context) error {
		_, err := new(outbox.Outbox).Enqueue(&outbox.Entry{To: "+15550000001", Segments: []outbox.Segment{{TPDU: []byte{1}}}})
		return err
	}, outbox.ErrNotCreated},
	{"outbox.Outbox.Enqueue is closed", func(ctx context.Context) error {
		_, err := new(outbox.Outbox).Enqueue(&outbox.Entry{To: "+15550000001", Segments: []outbox.Segment{{TPDU: []byte{1}}}})
		return err
	}, outbox.ErrClosed},
	{"outbox.Outbox.Retry", func(ctx context.Context) error {
		_, err := new(outbox.Outbox).Retry(1, time.Now(), nil)
		return err
	}, outbox.ErrNotCreated},
	{"outbox.Worker.Run", func(ctx context.Context) error {
		return new(outbox.Worker).Run(ctx)
	}, outbox.ErrNotCreated},
	{"client.Client.AddObject", func(context.Context) error {
		return new(client.Client).AddObject(3, client.Handlers{})
	}, client.ErrNotCreated},
	{"client.Client.Start", func(ctx context.Context) error {
		return new(client.Client).Start(ctx, new(bearer.Endpoint), &net.UDPAddr{})
	}, client.ErrNotCreated},
	{"client.Client.ServeCoAP answers 5.03", answers(new(client.Client), "/3/0/0", codes.ServiceUnavailable), nil},
	{"firmware.Manager.Create", func(ctx context.Context) error {
		_, err := new(firmware.Manager).Create(ctx, firmware.Spec{Image: "x", Endpoints: []string{"lamp"}})
		return err
	}, firmware.ErrNotCreated},
	{"firmware.Manager.Pause", func(context.Context) error {
		return new(firmware.Manager).Pause("c1")
	}, firmware.ErrNotCreated},
	{"firmware.Updater.Update", func(ctx context.Context) error {
		_, err := new(firmware.Updater).Update(ctx, "lamp", "x", firmware.Options{})
		return err
	}, firmware.ErrNotCreated},
	{"firmware.Image.Read is empty", func(context.Context) error {
		_, err := new(firmware.Image).Read(make([]byte, 8))
		return err
	}, io.EOF},
	{"queue.Manager.Enqueue", func(ctx context.Context) error {
		_, err := new(queue.Manager).Enqueue(ctx, queue.Request{Endpoint: "lamp", Kind: queue.KindRead})
		return err
	}, queue.ErrNotCreated},
	{"queue.Manager.Wait is closed", waitFor(new(queue.Manager)), queue.ErrClosed},
	{"queue.Manager.Refresh", func(context.Context) error {
		return new(queue.Manager).Refresh(1)
	}, queue.ErrNotCreated},
	{"queue.Manager.Resync", func(context.Context) error {
		return new(queue.Manager).Resync()
	}, queue.ErrNotCreated},
	{"queue.BoltStore.Add", func(context.Context) error {
		_, err := new(queue.BoltStore).Add(&queue.Record{})
		return err
	}, queue.ErrNotCreated},
	{"queue.Subscription.C is closed", func(context.Context) error {
		if _, ok := <-new(queue.Manager).Subscribe(1).C(); !ok {
			return queue.ErrClosed
		}
		return nil
	}, queue.ErrClosed},
	{"sim.Endpoint.Send", func(ctx context.Context) error {
		_, err := new(sim.Endpoint).Send(ctx, []byte{1, 2, 3})
		return err
	}, sim.ErrNotCreated},
}

// readFrom and writeTo make the cases of a zero bearer.
func readFrom(c net.PacketConn) func(context.Context) error {
	return func(context.Context) error {
		_, _, err := c.ReadFrom(make([]byte, 64))
		return err
	}
}

func writeTo(c net.PacketConn, to net.Addr) func(context.Context) error {
	return func(context.Context) error {
		_, err := c.WriteTo([]byte{0x40, 1, 0, 1}, to)
		return err
	}
}

// answers is the case of a zero handler: a GET of path gets code.
func answers(h bearer.Handler, path string, code codes.Code) func(context.Context) error {
	return func(context.Context) error {
		w := &codeWriter{}
		h.ServeCoAP(w, bearer.NewRequest(codes.GET, &net.UDPAddr{}, path))
		if w.code != code {
			return fmt.Errorf("answered %v, want %v", w.code, code)
		}
		return nil
	}
}

// waitFor is the case of a zero queue's Wait for a request.
func waitFor(q interface {
	Wait(context.Context, uint64) (*queue.Record, error)
}) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := q.Wait(ctx, 1)
		return err
	}
}

// sendTPDU is the case of a zero transport's send.
func sendTPDU(t sms.Transport) func(context.Context) error {
	return func(ctx context.Context) error {
		_, _, err := t.SendTPDU(ctx, "", "+15550000001", []byte{1, 2})
		return err
	}
}

// inboundClosed is the case of a zero transport's Inbound channel, which
// must be closed (a reader stops), not nil (a reader waits forever).
func inboundClosed(c <-chan sms.Inbound) func(context.Context) error {
	return func(context.Context) error {
		select {
		case _, ok := <-c:
			if !ok {
				return net.ErrClosed
			}
			return errors.New("received from a zero transport")
		case <-time.After(time.Second):
			return errors.New("Inbound neither closed nor sending")
		}
	}
}

func TestZeroRefusals(t *testing.T) {
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := tc.call(ctx); !errors.Is(err, tc.want) { // want nil: no error
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestZeroUsable: the zero values documented as ready to use work.
func TestZeroUsable(t *testing.T) {
	tests := []struct {
		name string
		use  func() error
	}{
		{"model.Registry", func() error {
			var r model.Registry
			for _, o := range model.Core() {
				if err := r.Add(o); err != nil {
					return err
				}
			}
			if _, ok := r.Object(3); !ok || r.Len() != len(model.Core()) {
				return fmt.Errorf("%d objects, /3 missing", r.Len())
			}
			return nil
		}},
		{"sim.ManualClock", func() error {
			var c sim.ManualClock
			ran := false
			c.AfterFunc(time.Second, func() { ran = true })
			c.Advance(time.Second)
			if !ran || !c.Now().Equal(time.Time{}.Add(time.Second)) {
				return fmt.Errorf("ran %v, now %v", ran, c.Now())
			}
			return nil
		}},
		{"bearer.Steer", func() error {
			// A request to a peer that never answers, aborted through
			// a zero Steer: Do returns at once with the *AbortError.
			a, b, err := pipe.New()
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			e, err := bearer.NewEndpoint(a)
			if err != nil {
				return err
			}
			defer e.Close()
			var s bearer.Steer
			req := bearer.NewRequest(codes.GET, b.LocalAddr(), "/3/0")
			req.SetSteer(&s)
			stop := errors.New("stop")
			time.AfterFunc(50*time.Millisecond, func() { s.Abort(stop) })
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err = e.Do(ctx, req)
			var ae *bearer.AbortError
			if !errors.As(err, &ae) || !errors.Is(err, stop) {
				return fmt.Errorf("Do = %v, want an *AbortError wrapping %v", err, stop)
			}
			return nil
		}},
		{"queue.MemStore", func() error {
			var s queue.MemStore
			id, err := s.Add(&queue.Record{Request: queue.Request{Endpoint: "lamp", Kind: queue.KindRead}, State: queue.StateQueued})
			if err != nil {
				return err
			}
			r, err := s.Get(id)
			if err != nil || r.Endpoint != "lamp" || s.Len() != 1 {
				return fmt.Errorf("got %+v, %v; %d records", r, err, s.Len())
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.use(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// codeWriter records the code of a handler's response.
type codeWriter struct {
	discardWriter
	code codes.Code
}

func (w *codeWriter) WriteResponse(c codes.Code, _ []byte) error { w.code = c; return nil }
