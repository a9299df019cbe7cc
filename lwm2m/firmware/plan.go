package firmware

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// Method is how a package reaches the device.
type Method uint8

// Delivery methods.
const (
	Push Method = iota + 1 // block-wise Write of /5/0/0
	Pull                   // Write of /5/0/1 Package URI; the device downloads
)

func (m Method) String() string {
	switch m {
	case Push:
		return "push"
	case Pull:
		return "pull"
	}
	return "none"
}

// PullURIs are the base URIs under which the Package URI servers serve
// images ("coap://gw.example:5683/fw/"); the image id is appended. Empty
// ones are not offered.
type PullURIs struct {
	CoAP, CoAPS, HTTP, HTTPS string
}

// Plan is what an update of one device will do and cost, computed before
// it starts.
type Plan struct {
	Endpoint  string
	Image     ImageInfo
	Method    Method
	Transport string // the server's transport name the device uses
	URI       string // Package URI (pull)
	BlockSize int    // push block size, from the bearer's parameters
	Blocks    int    // push blocks
	Queue     bool   // device in queue mode (woken before each step)
	// SMS is the estimated number of SMS segments the gateway sends on an
	// SMS bearer (the package or URI write, the plan read, one State poll,
	// the Execute, the re-registration answer and the version read; each
	// further poll costs one more);
	// 0 on IP bearers.
	SMS int
}

func isSMS(transport string, p bearer.Params) bool {
	return strings.Contains(transport, "sms") || strings.Contains(p.Name, "sms")
}

// Plan reads the device's Object 5 capabilities (/5/0/8 Protocol Support,
// /5/0/9 Delivery Method) and chooses how to deliver image id, with the
// estimated SMS cost. A queue-mode device must be awake (or wakeable:
// Plan does not wake it; it plans from the registration alone when the
// read fails).
func (u *Updater) Plan(ctx context.Context, ep, imageID string, opts Options) (Plan, error) {
	if u.done == nil {
		return Plan{}, ErrNotCreated
	}
	info, err := u.cfg.Store.Get(imageID)
	if err != nil {
		return Plan{}, err
	}
	reg, ok := u.cfg.Server.Lookup(ep)
	if !ok {
		return Plan{}, fmt.Errorf("firmware: %s: %w", ep, server.ErrNotRegistered)
	}
	protos, delivery := u.capabilities(ctx, ep, reg)
	return u.plan(reg, info, protos, delivery, opts)
}

// capabilities reads /5/0/8 and /5/0/9; unknown values mean "anything".
func (u *Updater) capabilities(ctx context.Context, ep string, reg *registry.Registration) (protos map[int64]bool, delivery int64) {
	delivery = DeliveryBoth
	protos = map[int64]bool{}
	if reg.Queue && u.cfg.Waker != nil && u.lastSeen(ep).IsZero() {
		// Asleep: do not wake it just to plan; assume what it says in
		// its binding (pull over UDP, the spec's intent for sleepers).
		return protos, delivery
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	recs, err := u.cfg.Server.ReadValues(rctx, ep, path.Instance(5, 0))
	if err != nil {
		return protos, delivery
	}
	u.touch(ep)
	for _, r := range recs {
		switch r.Path.ResourceID() {
		case 8:
			protos[r.Value.Int()] = true
		case 9:
			delivery = r.Value.Int()
		}
	}
	return protos, delivery
}

func (u *Updater) plan(reg *registry.Registration, info ImageInfo, protos map[int64]bool, delivery int64, opts Options) (Plan, error) {
	p := Plan{Endpoint: reg.Endpoint, Image: info, Transport: reg.Transport(), Queue: reg.Queue}
	e := u.cfg.Endpoints[p.Transport]
	var params bearer.Params
	if e != nil {
		params = e.Params()
		p.BlockSize = e.BlockSize()
	}
	sms := isSMS(p.Transport, params)
	canPush := delivery != DeliveryPull && e != nil
	secure := strings.Contains(p.Transport, "dtls") || strings.Contains(params.Name, "dtls")
	uri := ""
	any := len(protos) == 0
	switch {
	case secure && u.cfg.Pull.CoAPS != "" && (any || protos[ProtoCoAPS]):
		uri = u.cfg.Pull.CoAPS
	case secure && u.cfg.Pull.HTTPS != "" && (any || protos[ProtoHTTPS]):
		uri = u.cfg.Pull.HTTPS
	case u.cfg.Pull.CoAP != "" && (any || protos[ProtoCoAP]):
		uri = u.cfg.Pull.CoAP
	case u.cfg.Pull.HTTP != "" && (any || protos[ProtoHTTP]):
		uri = u.cfg.Pull.HTTP
	case u.cfg.Pull.HTTPS != "" && protos[ProtoHTTPS]:
		uri = u.cfg.Pull.HTTPS
	case u.cfg.Pull.CoAPS != "" && protos[ProtoCoAPS]:
		uri = u.cfg.Pull.CoAPS
	}
	// An SMS-only device cannot pull over IP; an IP device (also a
	// sleeping one, woken by SMS) pulls when it can.
	smsOnly := sms && !reg.Binding.Has(registry.BindingU)
	canPull := delivery != DeliveryPush && uri != "" && !smsOnly
	switch {
	case canPull && canPush:
		p.Method = Pull
		if opts.Prefer == Push || (sms && opts.Prefer != Pull) {
			p.Method = Push
		}
	case canPull:
		p.Method = Pull
	case canPush:
		p.Method = Push
	default:
		return p, fmt.Errorf("%w: %s (delivery %d, transport %q)", ErrUnsupported, reg.Endpoint, delivery, p.Transport)
	}
	if p.Method == Pull {
		p.URI = uri + info.ID
		if sms {
			p.SMS = int(params.Cost(len(p.URI)+blockOverhead) + controlRequests*params.Cost(blockOverhead) + 0.5)
		}
		return p, nil
	}
	if p.BlockSize <= 0 {
		return p, fmt.Errorf("%w: no block size for %q", ErrUnsupported, p.Transport)
	}
	p.Blocks = int((info.Size + int64(p.BlockSize) - 1) / int64(p.BlockSize))
	if sms {
		if !opts.AllowSMSPush {
			return p, fmt.Errorf("%w: %s is reached over SMS only and SMS push is not allowed (it would cost about %d SMS)",
				ErrUnsupported, reg.Endpoint, smsPushCost(params, info.Size, p.BlockSize))
		}
		p.SMS = smsPushCost(params, info.Size, p.BlockSize)
	}
	return p, nil
}

// blockOverhead is the CoAP header room of one Block1 request: header 4,
// token 8, Uri-Path "5","0","0" 6, Content-Format 2, Block1 4, Size1 5.
const blockOverhead = 29

// controlRequests are the small messages the gateway sends in an update
// besides the package: the /5/0 read of the plan, one State poll, the
// Execute, the answer to the device's re-registration and the /3/0/3
// read (more polls cost one segment each).
const controlRequests = 5

// smsPushCost estimates the SMS segments a push sends: each block plus
// its header, in segments, plus the control requests.
func smsPushCost(p bearer.Params, size int64, block int) int {
	full := int(size / int64(block))
	last := int(size % int64(block))
	c := float64(full) * p.Cost(block+blockOverhead)
	if last > 0 {
		c += p.Cost(last + blockOverhead)
	}
	c += controlRequests * p.Cost(blockOverhead)
	return int(c + 0.5)
}
