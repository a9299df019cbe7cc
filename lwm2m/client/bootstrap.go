package client

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/link"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// Account is a server account the client holds in its Security (and
// Server) objects, as a bootstrap server wrote it.
type Account struct {
	SecurityInstance uint16
	ServerURI        string
	Bootstrap        bool
	Mode             int64
	Identity         []byte
	SecretKey        []byte
	ShortID          int64
	Lifetime         int64  // from the Server instance with the same Short Server ID
	Binding          string // idem
}

// Bootstrap performs a client-initiated bootstrap (Core 1.1 §6.1.3): it
// sends Bootstrap-Request to the bootstrap server at bs through ep, lets
// the server delete and write the Security and Server objects, and
// returns when the server sends Bootstrap-Finish (or ctx ends). While it
// runs the client accepts the bootstrap interface (writes to objects 0
// and 1, Bootstrap-Delete, Bootstrap-Discover).
func (c *Client) Bootstrap(ctx context.Context, ep *bearer.Endpoint, bs net.Addr) ([]Account, error) {
	if c.stop == nil {
		return nil, ErrNotCreated
	}
	finished := make(chan struct{})
	c.mu.Lock()
	if c.bsFinish != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("lwm2m client: bootstrap already running")
	}
	c.bsFinish = finished
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.bsFinish = nil
		c.mu.Unlock()
	}()
	for _, id := range []uint16{0, 1} {
		if err := c.ensure(id); err != nil {
			return nil, err
		}
	}
	req := bearer.NewRequest(codes.POST, bs, "/bs")
	req.AddOption(bearer.StringOption(message.URIQuery, "ep="+c.name))
	resp, err := ep.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("lwm2m client: bootstrap-request: %w", err)
	}
	if resp.Code != codes.Changed {
		return nil, &RegistrationError{Op: "bootstrap-request", Code: resp.Code, Diag: string(resp.Payload)}
	}
	select {
	case <-finished:
	case <-ctx.Done():
		return nil, fmt.Errorf("lwm2m client: waiting for bootstrap-finish: %w", ctx.Err())
	}
	return c.Accounts(), nil
}

func (c *Client) bootstrapping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bsFinish != nil
}

func (c *Client) finishBootstrap(w bearer.ResponseWriter) {
	c.mu.Lock()
	ch := c.bsFinish
	c.bsFinish = nil
	c.mu.Unlock()
	if ch == nil {
		answer(w, codes.MethodNotAllowed, "no bootstrap running")
		return
	}
	answer(w, codes.Changed, "")
	close(ch)
}

// Accounts returns the server accounts in the Security object.
func (c *Client) Accounts() []Account {
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	sec, ok := c.t.objs[0]
	if !ok {
		return nil
	}
	val := func(o *objNode, i, r uint16) content.Value {
		if inst, ok := o.insts[i]; ok {
			if rn, ok := inst[r]; ok && rn.multi == nil {
				return rn.single
			}
		}
		return content.Value{}
	}
	var out []Account
	for _, i := range slices.Sorted(maps.Keys(sec.insts)) {
		a := Account{
			SecurityInstance: i,
			ServerURI:        val(sec, i, 0).Str(),
			Bootstrap:        val(sec, i, 1).Bool(),
			Mode:             val(sec, i, 2).Int(),
			Identity:         val(sec, i, 3).Bytes(),
			SecretKey:        val(sec, i, 5).Bytes(),
			ShortID:          val(sec, i, 10).Int(),
		}
		if srv, ok := c.t.objs[1]; ok {
			for si := range srv.insts {
				if val(srv, si, 0).Int() == a.ShortID && !a.Bootstrap {
					a.Lifetime, a.Binding = val(srv, si, 1).Int(), val(srv, si, 7).Str()
				}
			}
		}
		out = append(out, a)
	}
	return out
}

// bootstrapDelete deletes the instances of object p (or of every object
// for the root), keeping the bootstrap-server Security instance and the
// Device object (Core 1.1 §5.2.7.5).
func (c *Client) bootstrapDelete(w bearer.ResponseWriter, p path.Path) {
	c.t.mu.Lock()
	for id, o := range c.t.objs {
		if !p.IsRoot() && id != p.ObjectID() {
			continue
		}
		if id == 3 {
			continue
		}
		for iid, inst := range o.insts {
			if p.IsInstance() && iid != p.InstanceID() {
				continue
			}
			if id == 0 {
				if rn, ok := inst[1]; ok && rn.single.Bool() {
					continue // the bootstrap-server account stays
				}
			}
			delete(o.insts, iid)
		}
	}
	c.t.mu.Unlock()
	answer(w, codes.Deleted, "")
}

// bootstrapDiscover answers Bootstrap-Discover with the objects and
// instances, the Security instances carrying uri and the Server ones ssid.
func (c *Client) bootstrapDiscover(w bearer.ResponseWriter, p path.Path) {
	c.t.mu.RLock()
	var links []link.Link
	ver := link.Link{Target: "/"}
	ver.Params = append(ver.Params, link.Param{Name: "lwm2m", Value: c.cfg.version, HasValue: true, Quoted: true})
	links = append(links, ver)
	for _, id := range slices.Sorted(maps.Keys(c.t.objs)) {
		if !p.IsRoot() && id != p.ObjectID() {
			continue
		}
		o := c.t.objs[id]
		links = append(links, link.Link{Target: path.Object(id).String()})
		for _, iid := range slices.Sorted(maps.Keys(o.insts)) {
			l := link.Link{Target: path.Instance(id, iid).String()}
			inst := o.insts[iid]
			switch id {
			case 0:
				if rn, ok := inst[10]; ok {
					l.Set("ssid", rn.single.String())
				}
				if rn, ok := inst[0]; ok {
					l.SetQuoted("uri", rn.single.Str())
				}
			case 1:
				if rn, ok := inst[0]; ok {
					l.Set("ssid", rn.single.String())
				}
			}
			links = append(links, l)
		}
	}
	c.t.mu.RUnlock()
	w.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
	_ = w.WriteResponse(codes.Content, link.Encode(links))
}
