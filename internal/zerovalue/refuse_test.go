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
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/modemlink"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

// refusals: a zero value that is not usable refuses with its package's
// documented sentinel (not merely without panicking, which TestZeroValues
// checks): each case calls one method and names the error it must match.
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
	{"modemlink.Link.SendTPDU", func(ctx context.Context) error {
		_, _, err := new(modemlink.Link).SendTPDU(ctx, "", "+15550000001", []byte{1, 2})
		return err
	}, modemlink.ErrNotCreated},
	{"modemlink.Link.Inbound is closed", func(ctx context.Context) error {
		if _, ok := <-new(modemlink.Link).Inbound(); !ok {
			return modemlink.ErrNotCreated
		}
		return nil
	}, modemlink.ErrNotCreated},
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
	{"client.Client.ServeCoAP answers 5.03", func(context.Context) error {
		w := &codeWriter{}
		new(client.Client).ServeCoAP(w, bearer.NewRequest(codes.GET, &net.UDPAddr{}, "/3/0/0"))
		if w.code != codes.ServiceUnavailable {
			return fmt.Errorf("answered %v", w.code)
		}
		return client.ErrNotCreated
	}, client.ErrNotCreated},
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
	{"queue.Manager.Wait is closed", func(ctx context.Context) error {
		_, err := new(queue.Manager).Wait(ctx, 1)
		return err
	}, queue.ErrClosed},
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

func TestZeroRefusals(t *testing.T) {
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := tc.call(ctx); !errors.Is(err, tc.want) {
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
