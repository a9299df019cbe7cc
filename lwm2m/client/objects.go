package client

import (
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// Security describes one LwM2M Security object instance (object 0). The
// DM interface never exposes it; it is written by bootstrap or here.
type Security struct {
	Instance  uint16
	ServerURI string // e.g. "coap://127.0.0.1:5683"
	Bootstrap bool
	Mode      int64 // 0 PSK, 1 RPK, 2 certificate, 3 NoSec
	Identity  []byte
	SecretKey []byte
	ShortID   int64
	ServerSMS string // LwM2M Server SMS Number (/0/x/9)
}

// AddSecurity adds object 0 (if needed) and one instance.
func (c *Client) AddSecurity(s Security) error {
	if err := c.ensure(0); err != nil {
		return err
	}
	i := s.Instance
	return c.setAll(
		rec(path.Resource(0, i, 0), content.NewString(s.ServerURI)),
		rec(path.Resource(0, i, 1), content.NewBool(s.Bootstrap)),
		rec(path.Resource(0, i, 2), content.NewInt(s.Mode)),
		rec(path.Resource(0, i, 3), content.NewOpaque(s.Identity)),
		rec(path.Resource(0, i, 4), content.NewOpaque(nil)),
		rec(path.Resource(0, i, 5), content.NewOpaque(s.SecretKey)),
		rec(path.Resource(0, i, 10), content.NewInt(s.ShortID)),
	)
}

// Server describes one LwM2M Server object instance (object 1).
type Server struct {
	Instance   uint16
	ShortID    int64
	Lifetime   int64
	Binding    string
	DefaultMin int64 // Default Minimum Period (/1/x/2), 0 for none
	DefaultMax int64 // Default Maximum Period (/1/x/3), 0 for none
	Storing    bool  // Notification Storing When Disabled or Offline
}

// AddServer adds object 1 (if needed) and one instance. Executing its
// Registration Update Trigger (/1/x/8) makes the client send an Update.
func (c *Client) AddServer(s Server) error {
	if err := c.ensure(1); err != nil {
		return err
	}
	i := s.Instance
	recs := []content.Record{
		rec(path.Resource(1, i, 0), content.NewInt(s.ShortID)),
		rec(path.Resource(1, i, 1), content.NewInt(s.Lifetime)),
		rec(path.Resource(1, i, 6), content.NewBool(s.Storing)),
		rec(path.Resource(1, i, 7), content.NewString(s.Binding)),
	}
	if s.DefaultMin > 0 {
		recs = append(recs, rec(path.Resource(1, i, 2), content.NewInt(s.DefaultMin)))
	}
	if s.DefaultMax > 0 {
		recs = append(recs, rec(path.Resource(1, i, 3), content.NewInt(s.DefaultMax)))
	}
	return c.setAll(recs...)
}

// Device is the content of the Device object (object 3, instance 0).
type Device struct {
	Manufacturer, Model, Serial, Firmware string
	DeviceType, Hardware, Software        string
	Binding                               string // Supported Binding and Modes (/3/0/16)
	// Reboot is run by Execute on /3/0/4; FactoryReset on /3/0/5.
	Reboot, FactoryReset func() error
}

// AddDevice adds object 3 with instance 0.
func (c *Client) AddDevice(d Device) error {
	h := Handlers{Execute: func(p path.Path, _ string) error {
		switch p.ResourceID() {
		case 4:
			if d.Reboot != nil {
				return d.Reboot()
			}
		case 5:
			if d.FactoryReset != nil {
				return d.FactoryReset()
			}
		}
		return nil
	}}
	if err := c.AddObject(3, h); err != nil {
		return err
	}
	b := d.Binding
	if b == "" {
		b = "U"
	}
	recs := []content.Record{
		rec(path.Resource(3, 0, 0), content.NewString(d.Manufacturer)),
		rec(path.Resource(3, 0, 1), content.NewString(d.Model)),
		rec(path.Resource(3, 0, 2), content.NewString(d.Serial)),
		rec(path.Resource(3, 0, 3), content.NewString(d.Firmware)),
		rec(path.ResourceInstance(3, 0, 6, 0), content.NewInt(1)),  // available power source: internal battery... DC
		rec(path.ResourceInstance(3, 0, 11, 0), content.NewInt(0)), // error code: no error
		rec(path.Resource(3, 0, 16), content.NewString(b)),
	}
	if d.DeviceType != "" {
		recs = append(recs, rec(path.Resource(3, 0, 17), content.NewString(d.DeviceType)))
	}
	if d.Hardware != "" {
		recs = append(recs, rec(path.Resource(3, 0, 18), content.NewString(d.Hardware)))
	}
	if d.Software != "" {
		recs = append(recs, rec(path.Resource(3, 0, 19), content.NewString(d.Software)))
	}
	return c.setAllLenient(recs...)
}

// Connectivity is the content of the Connectivity Monitoring object
// (object 4, instance 0).
type Connectivity struct {
	NetworkBearer int64    // /4/0/0, e.g. 6 LTE FDD
	RSSI          int64    // /4/0/2 dBm
	LinkQuality   int64    // /4/0/3
	IPAddresses   []string // /4/0/4
	CellID        int64    // /4/0/8
}

// AddConnectivity adds object 4 with instance 0.
func (c *Client) AddConnectivity(m Connectivity) error {
	if err := c.ensure(4); err != nil {
		return err
	}
	recs := []content.Record{
		rec(path.Resource(4, 0, 0), content.NewInt(m.NetworkBearer)),
		rec(path.ResourceInstance(4, 0, 1, 0), content.NewInt(m.NetworkBearer)),
		rec(path.Resource(4, 0, 2), content.NewInt(m.RSSI)),
		rec(path.Resource(4, 0, 3), content.NewInt(m.LinkQuality)),
		rec(path.Resource(4, 0, 8), content.NewInt(m.CellID)),
	}
	for k, ip := range m.IPAddresses {
		recs = append(recs, rec(path.ResourceInstance(4, 0, 4, uint16(k)), content.NewString(ip)))
	}
	return c.setAllLenient(recs...)
}

// Firmware update states (/5/0/3) and results (/5/0/5), Core Appendix E.6.
const (
	FwIdle        = 0
	FwDownloading = 1
	FwDownloaded  = 2
	FwUpdating    = 3

	FwResultInitial = 0
	FwResultSuccess = 1
	FwResultFailed  = 8
)

// Firmware hooks the Firmware Update object (object 5, instance 0).
type Firmware struct {
	// Package receives a package written to /5/0/0 (push).
	Package func(pkg []byte) error
	// URI receives a Package URI written to /5/0/1 (pull); the
	// application downloads it and calls SetFirmwareState.
	URI func(uri string) error
	// Update applies the downloaded package on Execute /5/0/2; nil
	// reports success at once.
	Update func() error
}

// AddFirmware adds object 5 with instance 0 and its state machine
// (Core Appendix E.6): a written package moves State to Downloaded;
// Execute Update moves it to Updating, then Idle with Update Result
// success (1) or failure (8); writing an empty Package or Package URI
// resets it to Idle with Update Result 0. Every write of Package or
// Package URI starts a new process (FirmwareProcess): the state changes
// the client makes itself are applied in place, before the server has
// the answer to its request, and a change the application reports for an
// earlier process (SetFirmwareStateFor) is dropped, so a late one cannot
// overwrite the state of a newer process.
func (c *Client) AddFirmware(fw Firmware) error {
	h := Handlers{
		Write:   func(p path.Path, v content.Value) error { return c.firmwareWrite(fw, p, v) },
		Execute: func(p path.Path, _ string) error { return c.firmwareExecute(fw, p) },
	}
	if err := c.AddObject(5, h); err != nil {
		return err
	}
	return c.setAllLenient(
		rec(path.Resource(5, 0, 1), content.NewString("")),
		rec(path.Resource(5, 0, 3), content.NewInt(FwIdle)),
		rec(path.Resource(5, 0, 5), content.NewInt(FwResultInitial)),
	)
}

// firmwareWrite is the Write handler of /5/0: a write of Package (0) or
// Package URI (1) starts a new process, resets Update Result, and moves
// State to Downloaded (a package) or Idle (an empty one).
func (c *Client) firmwareWrite(fw Firmware, p path.Path, v content.Value) error {
	// The handler runs under the client's object lock: the
	// state is set in place and observers are told after.
	var changed []path.Path
	defer func() {
		if len(changed) > 0 {
			go c.notifyAll(changed)
		}
	}()
	set := func(rid uint16, v int64) {
		if c.t.set(path.Resource(5, 0, rid), content.NewInt(v)) == nil {
			changed = append(changed, path.Resource(5, 0, rid))
		}
	}
	var empty bool
	switch p.ResourceID() {
	case 0:
		empty = len(v.Bytes()) == 0
	case 1:
		empty = v.Str() == ""
	default:
		return nil
	}
	// A write of Package or Package URI starts a new process
	// (or resets): what is pending for the previous one is
	// stale. Update Result goes back to Initial before the
	// server has the answer to its write (Object 5, resource
	// 5: "Once the updating process is initiated (Download
	// /Update), this Resource MUST be reset to Initial value"),
	// so it never reads the previous attempt's failure as this
	// one's; an empty one resets State to Idle too.
	c.fwProcess.Add(1)
	if empty {
		set(3, FwIdle)
	}
	set(5, FwResultInitial)
	switch p.ResourceID() {
	case 0:
		if fw.Package != nil {
			if err := fw.Package(v.Bytes()); err != nil {
				return err
			}
		}
		if !empty {
			set(3, FwDownloaded)
		}
	case 1:
		if fw.URI != nil {
			return fw.URI(v.Str())
		}
	}
	return nil
}

// firmwareExecute is the Execute handler of /5/0: Update (2) checks that a
// package is Downloaded, moves to Updating, and applies it in the
// background, reporting the result for this process only.
func (c *Client) firmwareExecute(fw Firmware, p path.Path) error {
	if p.ResourceID() != 2 {
		return nil
	}
	// Check Downloaded and move to Updating in one step: a
	// second Execute, or a write starting a new process, sees
	// Updating, not Downloaded.
	c.t.mu.Lock()
	recs, err := c.t.records(path.Resource(5, 0, 3))
	if err != nil || len(recs) != 1 || recs[0].Value.Int() != FwDownloaded {
		c.t.mu.Unlock()
		return &Error{Code: 0x85, Message: "no package downloaded"} // 4.05
	}
	err = c.t.set(path.Resource(5, 0, 3), content.NewInt(FwUpdating))
	process := c.fwProcess.Load()
	c.t.mu.Unlock()
	if err != nil {
		return err
	}
	c.obs.changed(path.Resource(5, 0, 3))
	go func() {
		res := int64(FwResultSuccess)
		if fw.Update != nil && fw.Update() != nil {
			res = FwResultFailed
		}
		c.SetFirmwareStateFor(process, FwIdle, res)
	}()
	return nil
}

// FirmwareProcess returns the number of the current Firmware Update
// process: each write of /5/0/0 Package or /5/0/1 Package URI starts the
// next one. The Firmware hooks may call it (it takes no lock) to tag the
// state changes they report later with SetFirmwareStateFor.
func (c *Client) FirmwareProcess() uint64 { return c.fwProcess.Load() }

// SetFirmwareState sets /5/0/3 State and /5/0/5 Update Result together,
// whatever the current process.
func (c *Client) SetFirmwareState(state, result int64) {
	c.t.mu.Lock()
	c.setFirmwareLocked(state, result)
}

// SetFirmwareStateFor sets /5/0/3 State and /5/0/5 Update Result together
// if process (FirmwareProcess) is still the current Firmware Update
// process; it reports whether it did. A change for an earlier process
// (the server wrote a new Package URI, or reset the state machine, since)
// is stale and dropped.
func (c *Client) SetFirmwareStateFor(process uint64, state, result int64) bool {
	c.t.mu.Lock()
	if c.fwProcess.Load() != process {
		c.t.mu.Unlock()
		return false
	}
	c.setFirmwareLocked(state, result)
	return true
}

// setFirmwareLocked sets State and Update Result under t.mu (held by the
// caller, released here) and then tells observers.
func (c *Client) setFirmwareLocked(state, result int64) {
	var changed []path.Path
	if c.t.set(path.Resource(5, 0, 3), content.NewInt(state)) == nil {
		changed = append(changed, path.Resource(5, 0, 3))
	}
	if c.t.set(path.Resource(5, 0, 5), content.NewInt(result)) == nil {
		changed = append(changed, path.Resource(5, 0, 5))
	}
	c.t.mu.Unlock()
	c.notifyAll(changed)
}

func (c *Client) notifyAll(ps []path.Path) {
	for _, p := range ps {
		c.obs.changed(p)
	}
}

func rec(p path.Path, v content.Value) content.Record { return content.Record{Path: p, Value: v} }

func (c *Client) ensure(id uint16) error {
	c.t.mu.RLock()
	_, ok := c.t.objs[id]
	c.t.mu.RUnlock()
	if ok {
		return nil
	}
	return c.AddObject(id, Handlers{})
}

func (c *Client) setAll(recs ...content.Record) error {
	for _, r := range recs {
		if err := c.Set(r.Path, r.Value); err != nil {
			return err
		}
	}
	return nil
}

// setAllLenient sets what the model defines and skips the rest (object
// versions differ in their optional resources).
func (c *Client) setAllLenient(recs ...content.Record) error {
	for _, r := range recs {
		if err := c.Set(r.Path, r.Value); err != nil && !isNoResource(err) {
			return err
		}
	}
	return nil
}
