package client

import (
	"fmt"

	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// OSCORE describes one instance of the OSCORE object (object 21, LwM2M
// 1.1): the keying material of RFC 8613 §3.2 for one LwM2M server.
type OSCORE struct {
	Instance     uint16
	MasterSecret []byte // /21/x/0
	SenderID     []byte // /21/x/1, the client's
	RecipientID  []byte // /21/x/2, the server's
	AEAD         int64  // /21/x/3, 0: AES-CCM-16-64-128 (10)
	HMAC         int64  // /21/x/4, 0: HKDF SHA-256
	MasterSalt   []byte // /21/x/5
	IDContext    []byte // /21/x/6 (object 21 version 2.0); nil: none
}

// AddOSCORE adds object 21 (if needed) with instance o.Instance and links
// it from Security instance security (/0/x/17 OSCORE Security Mode, an
// Objlnk to 21:o.Instance), as a Bootstrap-Server would write it.
func (c *Client) AddOSCORE(security uint16, o OSCORE) error {
	if err := c.ensure(model.OSCOREID); err != nil {
		return err
	}
	i := o.Instance
	recs := []content.Record{
		rec(path.Resource(model.OSCOREID, i, 0), content.NewOpaque(o.MasterSecret)),
		rec(path.Resource(model.OSCOREID, i, 1), content.NewOpaque(o.SenderID)),
		rec(path.Resource(model.OSCOREID, i, 2), content.NewOpaque(o.RecipientID)),
		rec(path.Resource(model.SecurityID, security, 17), content.NewObjlnk(model.OSCOREID, i)),
	}
	if o.AEAD != 0 {
		recs = append(recs, rec(path.Resource(model.OSCOREID, i, 3), content.NewInt(o.AEAD)))
	}
	if o.HMAC != 0 {
		recs = append(recs, rec(path.Resource(model.OSCOREID, i, 4), content.NewInt(o.HMAC)))
	}
	if len(o.MasterSalt) > 0 {
		recs = append(recs, rec(path.Resource(model.OSCOREID, i, 5), content.NewOpaque(o.MasterSalt)))
	}
	if o.IDContext != nil {
		recs = append(recs, rec(path.Resource(model.OSCOREID, i, 6), content.NewOpaque(o.IDContext)))
	}
	return c.setAll(recs...)
}

// ErrNoOSCORE is returned by OSCOREParams when the Security instance has
// no OSCORE Security Mode link.
var ErrNoOSCORE = fmt.Errorf("lwm2m client: no OSCORE object linked from the Security instance")

// OSCOREParams returns the OSCORE context parameters of the server
// described by Security instance security: the object 21 instance that
// /0/x/17 links to. The application builds its bearer with them
// (oscore.NewContext, oscore.New) before the Endpoint, as it dials DTLS
// with the PSK of /0/x/3 and /0/x/5.
func (c *Client) OSCOREParams(security uint16) (oscore.Params, error) {
	lnk, ok := c.stored(model.SecurityID, security, 17)
	if !ok {
		return oscore.Params{}, ErrNoOSCORE
	}
	obj, inst := lnk.Objlnk()
	if obj != model.OSCOREID {
		return oscore.Params{}, fmt.Errorf("%w: /0/%d/17 links to %d:%d", ErrNoOSCORE, security, obj, inst)
	}
	get := func(r uint16) (content.Value, bool) { return c.stored(model.OSCOREID, inst, r) }
	var p oscore.Params
	for r, dst := range map[uint16]*[]byte{0: &p.MasterSecret, 1: &p.SenderID, 2: &p.RecipientID} {
		v, ok := get(r)
		if !ok {
			return oscore.Params{}, fmt.Errorf("%w: /21/%d/%d missing", ErrNoOSCORE, inst, r)
		}
		*dst = append([]byte{}, v.Bytes()...)
	}
	if v, ok := get(3); ok {
		p.AEAD = int(v.Int())
	}
	if v, ok := get(4); ok {
		p.HKDF = int(v.Int())
	}
	if v, ok := get(5); ok {
		p.MasterSalt = v.Bytes()
	}
	if v, ok := get(6); ok {
		p.IDContext = append([]byte{}, v.Bytes()...)
	}
	return p, p.Validate()
}

// stored returns a single resource's stored value whatever its operations
// (Security and OSCORE resources are not readable over the DM interface).
func (c *Client) stored(obj, inst, res uint16) (content.Value, bool) {
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	o, ok := c.t.objs[obj]
	if !ok {
		return content.Value{}, false
	}
	rn, ok := o.insts[inst][res]
	if !ok || rn.multi != nil {
		return content.Value{}, false
	}
	return rn.single, true
}
