package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// fwPrefix is the path under which both Package URI servers (CoAP Block2 on
// the LwM2M listeners, HTTP on the API listener) serve images.
const fwPrefix = "/fw/"

// Single-device updates are one-device campaigns of the durable campaign
// Manager, so a restart resumes them like any campaign (and never applies
// an update twice). They are named devJobPrefix+endpoint; the finished ones
// beyond maxFWJobs are deleted, oldest first, when a new one starts.
const (
	devJobPrefix = "device-update "
	maxFWJobs    = 200
	// maxCampaigns bounds campaigns of all kinds in the Manager: operator
	// campaigns plus running single-device updates.
	maxCampaigns = 1000
)

// fw is the gateway's firmware side: the image store, the Updater and the
// campaign Manager (which also runs the single-device updates).
type fw struct {
	store *firmware.Store
	upd   *firmware.Updater
	mgr   *firmware.Manager

	mu    sync.Mutex
	plans map[string]*PlanJSON // job id → plan at start, for this process's jobs
	order []string             // plans' job ids, oldest first
}

// FWJob is a single-device firmware update started over the API: the view
// of a one-device campaign.
type FWJob struct {
	ID       string        `json:"id"`
	Endpoint string        `json:"endpoint"`
	Image    string        `json:"image"`
	State    string        `json:"state"` // running, done, failed
	Campaign string        `json:"campaign"`
	Step     firmware.Step `json:"step,omitempty"`
	Plan     *PlanJSON     `json:"plan,omitempty"`
	Version  string        `json:"version,omitempty"` // /3/0/3 after the update
	Result   int64         `json:"update_result,omitempty"`
	Error    string        `json:"error,omitempty"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished,omitzero"`
	Duration string        `json:"duration,omitempty"`
}

// PlanJSON is a firmware.Plan in API answers.
type PlanJSON struct {
	Endpoint  string `json:"endpoint"`
	Image     string `json:"image"`
	Version   string `json:"version"`
	Size      int64  `json:"size"`
	Method    string `json:"method"`
	Transport string `json:"transport"`
	URI       string `json:"uri,omitempty"`
	BlockSize int    `json:"block_size,omitempty"`
	Blocks    int    `json:"blocks,omitempty"`
	Queue     bool   `json:"queue"`
	SMS       int    `json:"sms"`
}

func planJSON(p firmware.Plan) *PlanJSON {
	return &PlanJSON{Endpoint: p.Endpoint, Image: p.Image.ID, Version: p.Image.Version, Size: p.Image.Size,
		Method: p.Method.String(), Transport: p.Transport, URI: p.URI, BlockSize: p.BlockSize, Blocks: p.Blocks,
		Queue: p.Queue, SMS: p.SMS}
}

// openFirmwareStore opens the image store; it must exist before the LwM2M
// listeners start, because they serve it under /fw/.
func (g *Gateway) openFirmwareStore() error {
	dir := g.cfg.Firmware.Dir
	if dir == "" {
		dir = filepath.Join(g.cfg.DataDir, "firmware")
	}
	s, err := firmware.OpenStore(dir, append(g.imageCatalog(), firmware.WithMaxBytes(g.cfg.Firmware.MaxBytes),
		firmware.WithMaxImageBytes(g.cfg.Firmware.MaxImageBytes),
		firmware.WithMaxImages(g.cfg.Firmware.MaxImages),
		firmware.WithStoreMetrics(func(images int, bytes int64) {
			g.metrics.fwStore.WithLabelValues("images").Set(float64(images))
			g.metrics.fwStore.WithLabelValues("bytes").Set(float64(bytes))
		}))...)
	if err != nil {
		return &StartError{Option: "firmware.dir", Value: dir, Err: err}
	}
	n, b := s.Usage()
	g.metrics.fwStore.WithLabelValues("images").Set(float64(n))
	g.metrics.fwStore.WithLabelValues("bytes").Set(float64(b))
	g.fw = &fw{store: s, plans: map[string]*PlanJSON{}}
	return nil
}

// lwm2mHandler is the handler of an LwM2M listener: the LwM2M server, and
// the CoAP Block2 Package URI server under /fw/.
func (g *Gateway) lwm2mHandler(transport string, epRef **bearer.Endpoint) bearer.Handler {
	mux := bearer.NewServeMux()
	mux.Handle("/", g.srv.Handler(transport))
	if g.fw != nil {
		// The block size follows the Endpoint's bearer, known once the
		// Endpoint exists; until then (never in practice) the largest.
		var once sync.Once
		var h *firmware.CoAPHandler
		served := g.metrics.fwServed.WithLabelValues("coap+" + transport)
		mux.Handle(fwPrefix, bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
			once.Do(func() {
				bs := 1024
				if *epRef != nil {
					bs = (*epRef).BlockSize()
				}
				h = firmware.NewCoAPHandler(g.fw.store, fwPrefix, bs, nil)
			})
			h.ServeCoAP(countingCoAPWriter{w, served}, r)
		}))
	}
	return mux
}

// startFirmware creates the Updater (push through every transport, pull
// from the listeners' addresses, SMS wake-ups through the queue's waker) and
// the campaign Manager on <data_dir>/campaigns.db, which resumes campaigns
// interrupted by a crash or a restart.
func (g *Gateway) startFirmware(ctx context.Context) error {
	if g.fw == nil {
		return nil
	}
	eps := map[string]*bearer.Endpoint{}
	var pull firmware.PullURIs
	if g.udpEP != nil {
		eps["udp"] = g.udpEP
		pull.CoAP = "coap://" + hostPort(g.udpEP.LocalAddr()) + fwPrefix
	}
	if g.dtlsEP != nil {
		eps["dtls"] = g.dtlsEP
		pull.CoAPS = "coaps://" + hostPort(g.dtlsEP.LocalAddr()) + fwPrefix
	}
	if g.smsEP != nil {
		eps["sms"] = g.smsEP
	}
	if g.apiLn != nil {
		pull.HTTP = "http://" + hostPort(g.apiLn.Addr()) + fwPrefix
	}
	cfg := firmware.Config{Server: g.srv, Store: g.fw.store, Endpoints: eps, Pull: pull,
		Logger: g.log.With("component", "firmware")}
	if g.smsB != nil {
		cfg.Waker = &firmware.QueueWaker{Waker: g.smsWaker(), Registrations: g.srv.Store(),
			Target: func(reg *registry.Registration, t *queue.WakeTarget) {
				if wt := g.wakeTarget(reg); wt != nil {
					t.MSISDN, t.SIM, t.Trigger, t.WAPPush = wt.MSISDN, wt.SIM, wt.Trigger, wt.WAPPush
				}
				g.metrics.wakeups.Inc()
			}}
	}
	upd, err := firmware.NewUpdater(cfg)
	if err != nil {
		return fmt.Errorf("firmware updater: %w", err)
	}
	g.fw.upd = upd
	var cs firmware.CampaignStore
	if g.rdb != nil {
		cs = g.rdb.Campaigns()
	} else {
		var err error
		_, err = g.openStateDB("campaigns.db", func(db *bolt.DB) (err error) { // closed by the gateway
			cs, err = firmware.NewBoltCampaigns(db)
			return err
		})
		if err != nil {
			return err
		}
	}
	mgr, err := firmware.NewManagerOn(cs, upd, append([]firmware.ManagerOption{firmware.WithManagerLogger(g.log.With("component", "campaign")),
		firmware.WithCampaignHook(g.onCampaignEvent), firmware.WithMaxCampaigns(maxCampaigns)}, g.cluster.campaignOptions()...)...)
	if err != nil {
		return fmt.Errorf("campaigns: %w", err)
	}
	g.fw.mgr = mgr
	g.metrics.setCampaignSource(g.fw.campaigns)
	return nil
}

// hostPort gives the address a device on this host reaches: an unspecified
// listen address becomes the loopback of its family.
func hostPort(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	switch host {
	case "0.0.0.0", "":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// onCampaignEvent counts device outcomes and publishes them on the SSE stream.
func (g *Gateway) onCampaignEvent(ev firmware.CampaignEvent) {
	switch ev.Device.State {
	case firmware.DevDone, firmware.DevFailed, firmware.DevSkipped, firmware.DevCancelled:
		g.metrics.fwDevices.WithLabelValues(ev.Device.State).Inc()
		g.metrics.fwSMS.Add(float64(ev.Device.SMS))
	}
	g.hub.publish("campaign-device", map[string]any{"campaign": ev.Campaign, "device": ev.Device})
	if strings.HasPrefix(ev.Name, devJobPrefix) {
		g.hub.publish("firmware-update", map[string]any{"job": ev.Campaign, "endpoint": ev.Device.Endpoint,
			"step": ev.Device.Step, "state": jobState(ev.Device.State)})
	}
}

// closeFirmware stops campaigns (they resume at the next start) and the
// Updater, and closes the campaigns database.
func (g *Gateway) closeFirmware() error {
	if g.fw == nil {
		return nil
	}
	var errs []error
	if g.fw.mgr != nil {
		errs = append(errs, g.fw.mgr.Close())
	}
	if g.fw.upd != nil {
		errs = append(errs, g.fw.upd.Close())
	}
	return errors.Join(errs...)
}

// startUpdate starts a single-device update: a durable one-device campaign
// with a single attempt (the operator decides on a retry), so it survives a
// restart of the daemon.
func (g *Gateway) startUpdate(ctx context.Context, ep, image string, opts firmware.Options, plan firmware.Plan) (FWJob, error) {
	f := g.fw
	f.pruneJobs()
	spec := firmware.Spec{Name: devJobPrefix + ep, Image: image, Endpoints: []string{ep}, Concurrency: 1,
		Retries: new(0), SMSBudget: -1, Options: opts}
	id, err := f.mgr.Create(ctx, spec)
	if err != nil {
		return FWJob{}, err
	}
	f.mu.Lock()
	f.plans[id] = planJSON(plan)
	f.order = append(f.order, id)
	if len(f.order) > maxFWJobs {
		delete(f.plans, f.order[0])
		f.order = f.order[1:]
	}
	f.mu.Unlock()
	j, _ := f.job(id)
	return j, nil
}

// campaigns lists the operator's campaigns: the Manager's, without the
// single-device updates (those are firmware jobs).
func (f *fw) campaigns() []firmware.Report {
	all := f.mgr.List()
	out := all[:0]
	for _, r := range all {
		if !strings.HasPrefix(r.Spec.Name, devJobPrefix) {
			out = append(out, r)
		}
	}
	return out
}

// pruneJobs deletes the oldest finished single-device updates beyond
// maxFWJobs.
func (f *fw) pruneJobs() {
	var done []firmware.Report
	for _, r := range f.mgr.List() { // oldest first
		if strings.HasPrefix(r.Spec.Name, devJobPrefix) && r.Status != firmware.CampaignRunning && r.Status != firmware.CampaignPaused {
			done = append(done, r)
		}
	}
	for i := 0; i < len(done)-maxFWJobs+1; i++ {
		_ = f.mgr.Delete(done[i].ID)
	}
}

// jobState maps a campaign device state to the job states running, done
// and failed (a device skipped for its SMS budget or an unsupported method
// has failed to update).
func jobState(s string) string {
	switch s {
	case firmware.DevDone:
		return "done"
	case firmware.DevFailed, firmware.DevSkipped, firmware.DevCancelled:
		return "failed"
	}
	return "running"
}

// job returns the single-device update id.
func (f *fw) job(id string) (FWJob, bool) {
	rep, err := f.mgr.Status(id, true)
	if err != nil || !strings.HasPrefix(rep.Spec.Name, devJobPrefix) || len(rep.Devices) != 1 {
		return FWJob{}, false
	}
	d := rep.Devices[0]
	j := FWJob{ID: id, Campaign: id, Endpoint: d.Endpoint, Image: rep.Spec.Image, State: jobState(d.State), Step: d.Step,
		Result: d.Result, Error: d.Error, Started: rep.Created, Finished: d.Finished}
	if j.State == "running" && (rep.Status == firmware.CampaignCancelled || rep.Status == firmware.CampaignDone) {
		j.State = "failed" // cancelled before the device started
	}
	if j.State == "failed" && j.Step != firmware.StepFailed {
		j.Step = firmware.StepFailed
	}
	if j.State == "done" {
		j.Version = rep.Version
	}
	if !j.Finished.IsZero() {
		j.Duration = j.Finished.Sub(j.Started).Round(time.Millisecond).String()
	}
	f.mu.Lock()
	j.Plan = f.plans[id]
	f.mu.Unlock()
	return j, true
}

// countingCoAPWriter counts the payload bytes of successful Package URI
// answers (one block each).
type countingCoAPWriter struct {
	bearer.ResponseWriter
	served prometheus.Counter
}

// Unwrap lets bearer.SetRegenerable reach the Endpoint's writer.
func (c countingCoAPWriter) Unwrap() bearer.ResponseWriter { return c.ResponseWriter }

func (c countingCoAPWriter) WriteResponse(code codes.Code, payload []byte) error {
	if code == codes.Content {
		c.served.Add(float64(len(payload)))
	}
	return c.ResponseWriter.WriteResponse(code, payload)
}
