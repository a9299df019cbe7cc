package firmware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Protocol Support (/5/0/8) and Delivery Method (/5/0/9) values.
const (
	ProtoCoAP  = 0
	ProtoCoAPS = 1
	ProtoHTTP  = 2
	ProtoHTTPS = 3

	DeliveryPull = 0
	DeliveryPush = 1
	DeliveryBoth = 2
)

// DeviceConfig configures the demo-device firmware behaviour. A zero
// MaxPackage or PullTimeout takes its default; a negative one makes
// NewDevice fail with an error wrapping ErrInvalidOption.
type DeviceConfig struct {
	// Endpoint is the client's CoAP endpoint, used to pull coap:// URIs
	// (coaps:// when Secure). Nil disables CoAP pull.
	Endpoint *bearer.Endpoint
	// Secure says Endpoint runs over a DTLS session with the gateway: the
	// device announces CoAPS (/5/0/8 = 1) instead of CoAP.
	Secure bool
	// HTTP pulls http:// URIs; nil disables HTTP pull.
	HTTP *http.Client
	// PushOnly and PullOnly restrict the Delivery Method announced in
	// /5/0/9 (default: both, or push only when no pull is configured).
	PushOnly, PullOnly bool
	// MaxPackage bounds a package in bytes (default 1 MiB); larger gives
	// Update Result 2 (not enough storage).
	MaxPackage int
	// PullTimeout bounds one download (default 2 minutes).
	PullTimeout time.Duration
	// Applied, if set, is called with the new version after an update.
	Applied func(version string)
}

// Device gives an lwm2m/client Client the firmware behaviour of a demo
// streetlight: a package written to /5/0/0 or fetched from the /5/0/1
// URI is checked (ParsePackage: integrity failure → Update Result 5,
// unknown format → 6); Execute /5/0/2 applies it: /3/0/3 becomes the
// package's version and the device "reboots" by registering again.
// The zero Device has no client: Close does nothing (use NewDevice).
type Device struct {
	c   *client.Client
	cfg DeviceConfig

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool   // set by Close: no goroutine starts after it
	pending string // version of the downloaded package
	// stopPull cancels the download in flight, if any: a new write of
	// Package or Package URI (or a reset) ends the process it serves.
	stopPull context.CancelFunc
	applied  int // updates applied

	// stateHook, set only by tests (export_test.go), runs each deferred
	// transition of setState: it must call apply.
	stateHook func(st, res int64, apply func())
}

// spawn runs f in a goroutine that Close waits for, unless the device is
// closed. The client calls the hooks that spawn from its own goroutines, so
// the closed check and wg.Add are under mu: no Add can race Close's Wait.
func (d *Device) spawn(f func()) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		f()
	}()
	return true
}

// NewDevice adds object 5 to c with the demo firmware behaviour. The
// client must already have object 3 (AddDevice). Close stops downloads
// and re-registrations in flight.
func NewDevice(c *client.Client, cfg DeviceConfig) (*Device, error) {
	var f cfgcheck.Fields
	cfgcheck.Default(&f, "MaxPackage", &cfg.MaxPackage, 1<<20)
	cfgcheck.Default(&f, "PullTimeout", &cfg.PullTimeout, 2*time.Minute)
	if err := f.Err(ErrInvalidOption, "DeviceConfig"); err != nil {
		return nil, err
	}
	delivery := int64(DeliveryBoth)
	switch {
	case cfg.PushOnly || (cfg.Endpoint == nil && cfg.HTTP == nil):
		delivery = DeliveryPush
	case cfg.PullOnly:
		delivery = DeliveryPull
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Device{c: c, cfg: cfg, ctx: ctx, cancel: cancel}
	err := c.AddFirmware(client.Firmware{Package: d.push, URI: d.pull, Update: d.update})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("firmware: device: %w", err)
	}
	var k uint16
	if cfg.Endpoint != nil {
		proto := int64(ProtoCoAP)
		if cfg.Secure {
			proto = ProtoCoAPS
		}
		_ = c.Set(path.ResourceInstance(5, 0, 8, k), content.NewInt(proto))
		k++
	}
	if cfg.HTTP != nil {
		_ = c.Set(path.ResourceInstance(5, 0, 8, k), content.NewInt(ProtoHTTP))
	}
	_ = c.Set(path.Resource(5, 0, 9), content.NewInt(delivery))
	return d, nil
}

// Close stops the device's goroutines.
func (d *Device) Close() error {
	if d.cancel == nil { // a zero Device: nothing runs
		return nil
	}
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	return nil
}

// Applied returns how many updates the device applied.
func (d *Device) Applied() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applied
}

func resultOf(err error) int64 {
	switch {
	case errors.Is(err, ErrIntegrity):
		return ResultIntegrity
	case errors.Is(err, ErrBadPackage):
		return ResultUnsupportedType
	}
	return ResultUpdateFailed
}

// newProcess ends what the device does for the previous Firmware Update
// process (a write of Package or Package URI starts a new one): the
// download in flight stops and its package is forgotten.
func (d *Device) newProcess() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopPull != nil {
		d.stopPull()
		d.stopPull = nil
	}
	d.pending = ""
}

// push checks a package written to /5/0/0. A failed check answers the
// Write with an error and leaves State Idle with the Update Result.
// An empty package resets the state machine: the client has already set
// State Idle and Update Result 0.
func (d *Device) push(pkg []byte) error {
	d.newProcess()
	if len(pkg) == 0 {
		return nil
	}
	if len(pkg) > d.cfg.MaxPackage {
		d.setState(StateIdle, ResultNoStorage)
		return &client.Error{Code: uint8(codes.RequestEntityTooLarge), Message: "package too large"}
	}
	v, _, err := ParsePackage(pkg)
	if err != nil {
		d.setState(StateIdle, resultOf(err))
		return &client.Error{Code: uint8(codes.BadRequest), Message: err.Error()}
	}
	d.mu.Lock()
	d.pending = v
	d.mu.Unlock()
	return nil
}

// setState sets State and Update Result from outside the client's write
// handler (the hooks run under the client's object lock), for the
// Firmware Update process of the write being handled: if the server has
// started another one (or reset) by the time it runs, it is dropped.
func (d *Device) setState(st, res int64) {
	process := d.c.FirmwareProcess()
	d.mu.Lock()
	hook := d.stateHook
	d.mu.Unlock()
	apply := func() { d.c.SetFirmwareStateFor(process, st, res) }
	d.spawn(func() {
		if hook != nil {
			hook(st, res, apply)
			return
		}
		apply()
	})
}

// pull starts the download of uri in the background (State Downloading).
// An empty URI resets the state machine: the client has already set State
// Idle and Update Result 0.
func (d *Device) pull(uri string) error {
	d.newProcess()
	if uri == "" {
		return nil
	}
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		d.setState(StateIdle, ResultInvalidURI)
		return nil
	}
	switch {
	case u.Scheme == "coap" && d.cfg.Endpoint != nil && !d.cfg.Secure:
	case u.Scheme == "coaps" && d.cfg.Endpoint != nil && d.cfg.Secure:
	case u.Scheme == "http" && d.cfg.HTTP != nil:
	default:
		d.setState(StateIdle, ResultUnsupportedProto)
		return nil
	}
	process := d.c.FirmwareProcess()
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.PullTimeout)
	d.mu.Lock()
	d.stopPull = cancel
	d.mu.Unlock()
	started := d.spawn(func() {
		defer cancel()
		if !d.c.SetFirmwareStateFor(process, StateDownloading, ResultInitial) {
			return // a newer write came first
		}
		pkg, res := d.fetch(ctx, u)
		if res != ResultInitial {
			d.c.SetFirmwareStateFor(process, StateIdle, res)
			return
		}
		v, _, err := ParsePackage(pkg)
		if err != nil {
			d.c.SetFirmwareStateFor(process, StateIdle, resultOf(err))
			return
		}
		d.mu.Lock()
		if d.c.FirmwareProcess() == process {
			d.pending = v
		}
		d.mu.Unlock()
		d.c.SetFirmwareStateFor(process, StateDownloaded, ResultInitial)
	})
	if !started {
		cancel()
	}
	return nil
}

func (d *Device) fetch(ctx context.Context, u *url.URL) ([]byte, int64) {
	if u.Scheme == "coap" || u.Scheme == "coaps" {
		addr, err := net.ResolveUDPAddr("udp", u.Host)
		if err != nil {
			return nil, ResultInvalidURI
		}
		resp, err := d.cfg.Endpoint.Get(ctx, addr, u.Path)
		if err != nil {
			if errors.Is(err, bearer.ErrBodyTooLarge) {
				return nil, ResultNoStorage
			}
			return nil, ResultConnectionLost
		}
		if resp.Code != codes.Content {
			return nil, ResultInvalidURI
		}
		if len(resp.Payload) > d.cfg.MaxPackage {
			return nil, ResultNoStorage
		}
		return resp.Payload, ResultInitial
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, ResultInvalidURI
	}
	resp, err := d.cfg.HTTP.Do(req)
	if err != nil {
		return nil, ResultConnectionLost
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, ResultInvalidURI
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(d.cfg.MaxPackage)+1))
	if err != nil {
		return nil, ResultConnectionLost
	}
	if len(body) > d.cfg.MaxPackage {
		return nil, ResultNoStorage
	}
	return body, ResultInitial
}

// update applies the downloaded package: /3/0/3 takes the new version,
// then the device "reboots": it registers again once State is back to
// Idle, as a real device does after restarting into the new firmware.
func (d *Device) update() error {
	d.mu.Lock()
	v := d.pending
	d.mu.Unlock()
	if v == "" {
		return errors.New("firmware: no package")
	}
	if err := d.c.Set(path.Resource(3, 0, 3), content.NewString(v)); err != nil {
		return err
	}
	d.mu.Lock()
	d.applied++
	d.pending = ""
	d.mu.Unlock()
	if d.cfg.Applied != nil {
		d.cfg.Applied(v)
	}
	d.spawn(func() {
		ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
		defer cancel()
		// The client sets State Idle, Update Result 1 right after update
		// returns; register after that so the server reads both.
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if st, ok := d.c.Get(path.Resource(5, 0, 3)); ok && st.Int() == StateIdle {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		for ctx.Err() == nil {
			if err := d.c.Register(ctx); err == nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return nil
}
