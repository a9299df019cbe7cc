package firmware

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

type devUpdate struct {
	u      *Updater
	ep     string
	plan   Plan
	opts   Options
	events chan server.Event
	step   func(Step)
	notify chan struct{}
}

// awake makes sure a queue-mode device is awake: heard from within the
// awake window, or woken and heard from.
func (d *devUpdate) awake(ctx context.Context) error {
	return d.awakeOr(ctx, false)
}

// serverQueues reports whether the server's queue mode carries this
// device's requests: it then wakes the device itself, once, when a
// request waits, and the Updater must not wake it a second time.
func (d *devUpdate) serverQueues() bool {
	return d.plan.Queue && d.u.cfg.Server.Queued(d.ep)
}

// awakeOr is awake; with force the device is woken even when the server's
// queue would carry the requests (a device that never came back).
func (d *devUpdate) awakeOr(ctx context.Context, force bool) error {
	if !d.plan.Queue || d.u.cfg.Waker == nil || d.serverQueues() && !force {
		return nil
	}
	win := d.opts.AwakeWindow
	if win <= 0 {
		if e := d.u.cfg.Endpoints[d.plan.Transport]; e != nil {
			win = e.Params().MaxTransmitWait()
		} else {
			win = 93 * time.Second
		}
	}
	if t := d.u.lastSeen(d.ep); !t.IsZero() && time.Since(t) < win {
		return nil
	}
	d.step(StepWaking)
	// Drop a stale event: only a Register/Update after the wake counts.
	select {
	case <-d.events:
	default:
	}
	if err := d.u.cfg.Waker.Wake(ctx, d.ep); err != nil {
		return fmt.Errorf("firmware: wake %s: %w", d.ep, err)
	}
	t := time.NewTimer(d.opts.WakeTimeout)
	defer t.Stop()
	select {
	case <-d.events:
		d.u.touch(d.ep)
		return nil
	case <-t.C:
		return fmt.Errorf("%w: %s did not wake within %v", ErrTimeout, d.ep, d.opts.WakeTimeout)
	case <-ctx.Done():
		return ctx.Err()
	case <-d.u.done:
		return fmt.Errorf("firmware: updater: %w", bearer.ErrClosed)
	}
}

func (d *devUpdate) run(ctx context.Context) error {
	if err := d.awake(ctx); err != nil {
		return err
	}
	d.notify = make(chan struct{}, 1)
	if !d.opts.NoObserve {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		obs, _, err := d.u.cfg.Server.Observe(octx, d.ep, path.Resource(5, 0, 3), func(server.Notification) {
			select {
			case d.notify <- struct{}{}:
			default:
			}
		})
		cancel()
		if err == nil {
			d.u.touch(d.ep) // it answered: heard from now
			defer func() {
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = d.u.cfg.Server.CancelObservation(cctx, d.ep, path.Resource(5, 0, 3))
			}()
			_ = obs
		}
	}
	// A device left in Downloaded by an earlier, interrupted attempt of
	// this same image is not sent the image again.
	d.step(StepDelivering)
	if err := d.deliver(ctx); err != nil {
		return err
	}
	if err := d.waitDownloaded(ctx); err != nil {
		return err
	}
	d.step(StepDownloaded)
	return d.execute(ctx)
}

func (d *devUpdate) deliver(ctx context.Context) error {
	if err := d.awake(ctx); err != nil {
		return err
	}
	if d.plan.Method == Pull {
		err := d.u.cfg.Server.WriteValues(ctx, d.ep, path.Resource(5, 0, 1), server.Replace,
			content.Record{Path: path.Resource(5, 0, 1), Value: content.NewString(d.plan.URI)})
		if err != nil {
			return d.deviceError(ctx, fmt.Errorf("firmware: write package URI to %s: %w", d.ep, err))
		}
		d.u.touch(d.ep)
		return nil
	}
	if err := d.push(ctx); err != nil {
		return d.deviceError(ctx, err)
	}
	d.u.touch(d.ep)
	return nil
}

// deviceError turns a failed request into the device's Update Result when
// it set one.
func (d *devUpdate) deviceError(ctx context.Context, err error) error {
	var se *server.Error
	if !errors.As(err, &se) {
		return err
	}
	// The device sets its Update Result right after refusing the
	// request: read it a few times.
	for i := 0; i < 5; i++ {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, res, rerr := d.state(rctx)
		cancel()
		if rerr == nil && res > ResultSuccess && st == StateIdle {
			return fmt.Errorf("%w (%v)", &ResultError{Endpoint: d.ep, Result: res}, err)
		}
		t := time.NewTimer(d.opts.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
	return err
}

// push streams the image to /5/0/0 in blocks read one at a time from the
// store: RFC 9177 Q-Block1 when the device is known to support it (its
// Endpoint learnt so from a Q-Block option in the device's Register or in
// its answer to the plan's read of /5/0, see bearer.QBlockParams), else
// RFC 7959 Block1, following a smaller block size the device asks for.
func (d *devUpdate) push(ctx context.Context) error {
	reg, ok := d.u.cfg.Server.Lookup(d.ep)
	if !ok {
		return fmt.Errorf("firmware: %s: %w", d.ep, server.ErrNotRegistered)
	}
	e := d.u.cfg.Endpoints[reg.Transport()]
	peer := reg.PeerAddr()
	if e == nil || peer == nil {
		return fmt.Errorf("%w: no endpoint for transport %q", server.ErrNoTransport, reg.Transport())
	}
	img, err := d.u.cfg.Store.Open(d.plan.Image.ID)
	if err != nil {
		return err
	}
	defer img.Close()
	return pushBlocks(ctx, e, peer, devPath(reg, "/5/0/0"), img)
}

func devPath(reg *registry.Registration, p string) string {
	if alt := reg.AltPath(); alt != "/" {
		return alt + p
	}
	return p
}

func pushBlocks(ctx context.Context, e *bearer.Endpoint, peer net.Addr, p string, img *Image) error {
	req := bearer.NewRequest(codes.PUT, peer, p)
	req.SetOption(bearer.ContentFormatOption(message.AppOctets))
	req.SetBody(img, img.Info.Size) // read block by block from the store
	resp, err := e.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("firmware: push %s: %w", p, err)
	}
	if resp.Code != codes.Changed && resp.Code != codes.Created {
		return &server.Error{Op: "write", Path: p, Code: resp.Code, Message: string(resp.Payload)}
	}
	return nil
}

// state reads /5/0/3 State and /5/0/5 Update Result.
func (d *devUpdate) state(ctx context.Context) (st, res int64, err error) {
	recs, err := d.u.cfg.Server.ReadValues(ctx, d.ep, path.Instance(5, 0))
	if err != nil {
		return 0, 0, err
	}
	d.u.touch(d.ep)
	st, res = -1, -1
	for _, r := range recs {
		switch r.Path.ResourceID() {
		case 3:
			st = r.Value.Int()
		case 5:
			res = r.Value.Int()
		}
	}
	if st < 0 || res < 0 {
		return 0, 0, fmt.Errorf("firmware: %s: /5/0 without State or Update Result", d.ep)
	}
	return st, res, nil
}

// waitDownloaded polls (and listens for notifications) until State is
// Downloaded, or the device reports a failure.
func (d *devUpdate) waitDownloaded(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.DownloadTimeout)
	defer cancel()
	tick := time.NewTicker(d.opts.PollInterval)
	defer tick.Stop()
	for {
		if err := d.awake(ctx); err != nil {
			return err
		}
		rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
		st, res, err := d.state(rctx)
		rcancel()
		if err == nil {
			switch {
			case st == StateDownloaded:
				return nil
			case st == StateIdle && res > ResultSuccess:
				return &ResultError{Endpoint: d.ep, Result: res}
			}
		} else if ctx.Err() == nil {
			d.u.log.Debug("firmware: poll failed", "ep", d.ep, "err", err)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: %s not Downloaded after %v", ErrTimeout, d.ep, d.opts.DownloadTimeout)
			}
			return ctx.Err()
		case <-d.u.done:
			return fmt.Errorf("firmware: updater: %w", bearer.ErrClosed)
		case <-d.notify:
		case <-tick.C:
		}
	}
}

// execute runs /5/0/2 and waits for the device to come back with the new
// version: a Register/Update after the Execute, or State Idle with Update
// Result 1 (devices that do not re-register), then /3/0/3 is read.
func (d *devUpdate) execute(ctx context.Context) error {
	if err := d.awake(ctx); err != nil {
		return err
	}
	select { // only a registration after the Execute counts
	case <-d.events:
	default:
	}
	d.step(StepUpdating)
	if err := d.u.cfg.Server.Execute(ctx, d.ep, path.Resource(5, 0, 2), ""); err != nil {
		return d.deviceError(ctx, fmt.Errorf("firmware: execute update on %s: %w", d.ep, err))
	}
	d.u.touch(d.ep)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, d.opts.UpdateTimeout)
	defer cancel()
	tick := time.NewTicker(d.opts.PollInterval)
	defer tick.Stop()
	d.step(StepRebooting)
	registered := false
	// A sleeping device's registration after the update is the
	// confirmation: it is not polled (each poll would wake it).
	sleeper := d.plan.Queue && (d.u.cfg.Waker != nil || d.serverQueues())
	for !registered {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				if sleeper && parent.Err() == nil {
					// It never came back by itself: one wake-up, then
					// its version says whether the update took.
					return d.confirmAfterWake(parent)
				}
				return fmt.Errorf("%w: %s did not come back after Execute within %v", ErrTimeout, d.ep, d.opts.UpdateTimeout)
			}
			return ctx.Err()
		case <-d.u.done:
			return fmt.Errorf("firmware: updater: %w", bearer.ErrClosed)
		case <-d.events:
			registered = true
			continue
		case <-d.notify:
		case <-tick.C:
		}
		if sleeper {
			continue // a sleeping device comes back by itself
		}
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		st, res, err := d.state(rctx)
		rcancel()
		if err != nil {
			continue // rebooting
		}
		if res > ResultSuccess && st != StateUpdating {
			return &ResultError{Endpoint: d.ep, Result: res}
		}
		if res == ResultSuccess && st == StateIdle {
			break
		}
	}
	return d.verify(ctx)
}

// confirmAfterWake wakes a device that did not register after the update
// within UpdateTimeout (the second and last wake-up of its update) and
// checks its version.
func (d *devUpdate) confirmAfterWake(ctx context.Context) error {
	if err := d.awakeOr(ctx, true); err != nil {
		return fmt.Errorf("%w: %s did not come back after Execute within %v: %w", ErrTimeout, d.ep, d.opts.UpdateTimeout, err)
	}
	return d.verify(ctx)
}

// verify reads /3/0/3 and compares it with the image's version.
func (d *devUpdate) verify(ctx context.Context) error {
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	recs, err := d.u.cfg.Server.ReadValues(rctx, d.ep, path.Resource(3, 0, 3))
	if err != nil {
		return fmt.Errorf("firmware: read /3/0/3 of %s: %w", d.ep, err)
	}
	d.u.touch(d.ep)
	if len(recs) != 1 || recs[0].Value.Str() != d.plan.Image.Version {
		got := ""
		if len(recs) == 1 {
			got = recs[0].Value.Str()
		}
		if st, res, err := d.state(rctx); err == nil && res > ResultSuccess && st != StateUpdating {
			return &ResultError{Endpoint: d.ep, Result: res}
		}
		return fmt.Errorf("%w: %s reports %q, image is %q", ErrVersionMismatch, d.ep, got, d.plan.Image.Version)
	}
	d.step(StepVerified)
	return nil
}
