package firmware

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// setDevice stores a device's new state (durably, batched with other
// workers' writes) before the step it announces is taken.
func (r *run) setDevice(d DeviceState, smsDelta int) error {
	r.mu.Lock()
	*r.dev[d.Endpoint] = d
	r.rec.SMSUsed += smsDelta
	rec := r.rec
	r.mu.Unlock()
	ctx, cancel := r.saveCtx(d.Endpoint)
	err := r.m.store.SaveDevice(ctx, rec.ID, d, smsDelta)
	cancel()
	if r.m.hook != nil {
		r.m.hook(CampaignEvent{Campaign: rec.ID, Name: rec.Spec.Name, Device: d})
	}
	if err != nil {
		return fmt.Errorf("firmware: store device state: %w", err)
	}
	return nil
}

func (m *Manager) start(r *run) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		r.loop()
	}()
}

func (r *run) loop() {
	defer func() {
		r.mu.Lock()
		finished := true
		for _, d := range r.dev {
			if d.State == DevPending || d.State == DevRunning {
				finished = false
			}
		}
		if finished && r.rec.Status != CampaignCancelled {
			r.rec.Status = CampaignDone
		}
		if finished || r.rec.Status == CampaignCancelled {
			r.rec.Finished = time.Now().UTC()
			if err := r.saveLocked(); err != nil {
				r.m.log.Error("firmware: save campaign", "id", r.rec.ID, "err", err)
			}
			r.mu.Unlock()
			close(r.done)
			return
		}
		r.mu.Unlock()
		// Manager closed: the campaign resumes with the next Manager.
	}()
	if r.m.shared != nil {
		r.sharedLoop()
	} else {
		r.localLoop()
	}
	if r.ctx.Err() != nil {
		r.mu.Lock()
		cancelled := r.rec.Status == CampaignCancelled
		r.mu.Unlock()
		if cancelled {
			for _, ep := range r.ord {
				r.mu.Lock()
				d := *r.dev[ep]
				r.mu.Unlock()
				if d.State == DevPending || d.State == DevRunning {
					d.State, d.Error, d.Finished = DevCancelled, ErrCancelled.Error(), time.Now().UTC()
					_ = r.setDevice(d, 0)
				}
			}
		}
	}
}

// localLoop runs the campaign's devices on this node alone.
func (r *run) localLoop() {
	r.mu.Lock()
	var todo []DeviceState
	for _, ep := range r.ord {
		if d := r.dev[ep]; d.State == DevPending || d.State == DevRunning {
			todo = append(todo, *d)
		}
	}
	conc := r.rec.Spec.Concurrency
	r.mu.Unlock()
	work := make(chan DeviceState)
	var wg sync.WaitGroup
	for i := 0; i < conc && i < len(todo); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				r.device(d)
			}
		}()
	}
feed:
	for _, d := range todo {
		r.mu.Lock()
		resume := r.resume
		r.mu.Unlock()
		select {
		case <-resume:
		case <-r.ctx.Done():
			break feed
		}
		select {
		case work <- d:
		case <-r.ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
}

// permanent reports whether a device failure is about the image itself,
// so that retrying cannot help.
func permanent(err error) bool {
	var re *ResultError
	if errors.As(err, &re) {
		switch re.Result {
		case ResultIntegrity, ResultUnsupportedType, ResultInvalidURI, ResultUnsupportedProto, ResultNoStorage:
			return true
		}
	}
	return errors.Is(err, ErrUnsupported) || errors.Is(err, ErrBudget) || errors.Is(err, ErrNotFound)
}

// device runs one device to completion (with retries).
func (r *run) device(d DeviceState) { r.deviceCtx(r.ctx, d) }

// deviceCtx is device within ctx (a step lease's, in shared mode).
func (r *run) deviceCtx(ctx context.Context, d DeviceState) {
	spec := r.rec.Spec
	version := r.rec.Version
	// Resumed after a crash: an update may have been executed already.
	if d.State == DevRunning && (d.Step == StepUpdating || d.Step == StepRebooting || d.Step == StepVerified) {
		if v, err := r.settleVersion(ctx, d.Endpoint, version, spec.Options); err == nil && v == version {
			d.State, d.Step, d.Error, d.Finished = DevDone, StepVerified, "", time.Now().UTC()
		} else {
			d.State, d.Finished = DevFailed, time.Now().UTC()
			d.Error = fmt.Sprintf("interrupted after Execute and device reports %q (err %v); not updated again", v, err)
		}
		_ = r.setDevice(d, 0)
		return
	}
	for {
		if ctx.Err() != nil {
			return
		}
		d.Attempts++
		d.State, d.Step, d.Error, d.Result, d.Reason = DevRunning, StepPlanned, "", 0, ""
		if d.Started.IsZero() {
			d.Started = time.Now().UTC()
		}
		if err := r.setDevice(d, 0); err != nil {
			r.m.log.Error("firmware: campaign", "err", err)
			return
		}
		err := r.attempt(ctx, &d, version, spec)
		if err == nil {
			d.State, d.Step, d.Finished = DevDone, StepVerified, time.Now().UTC()
			_ = r.setDevice(d, 0)
			return
		}
		if ctx.Err() != nil {
			return // cancelled or manager closed: state stays for resume
		}
		d.Error = err.Error()
		var re *ResultError
		if errors.As(err, &re) {
			d.Result = re.Result
		}
		if errors.Is(err, ErrBudget) || errors.Is(err, ErrUnsupported) {
			d.State, d.Finished, d.Reason = DevSkipped, time.Now().UTC(), ReasonUnsupported
			if errors.Is(err, ErrBudget) {
				d.Reason = ReasonSMSBudget
			}
			_ = r.setDevice(d, 0)
			return
		}
		if d.Attempts > spec.retries() || permanent(err) || d.Step == StepUpdating || d.Step == StepRebooting {
			// After Execute the device may have updated: never again.
			d.State, d.Finished = DevFailed, time.Now().UTC()
			_ = r.setDevice(d, 0)
			return
		}
		d.State = DevPending
		_ = r.setDevice(d, 0)
		back := spec.Backoff << (d.Attempts - 1)
		if back > spec.MaxBackoff || back <= 0 {
			back = spec.MaxBackoff
		}
		t := time.NewTimer(back)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (r *run) readVersion(ctx context.Context, ep string, o Options) (string, error) {
	return r.m.upd.Version(ctx, ep, o)
}

// attempt is one try: skip a device already on the version, plan, reserve
// the SMS budget, update; the device state is stored before each step.
func (r *run) attempt(ctx context.Context, d *DeviceState, version string, spec Spec) error {
	upd := r.m.upd
	if _, ok := upd.cfg.Server.Lookup(d.Endpoint); !ok {
		return fmt.Errorf("firmware: %s is not registered", d.Endpoint)
	}
	// A device already on the version is skipped. A queue-mode device is
	// woken for the read (Version wakes it); the update would wake it
	// anyway, and it stays awake for the update that follows.
	if v, err := r.readVersion(ctx, d.Endpoint, spec.Options); err == nil && v == version {
		d.Error, d.Reason = "already on version "+version, ReasonUpToDate
		return nil
	}
	plan, err := upd.Plan(ctx, d.Endpoint, spec.Image, spec.Options)
	if err != nil {
		return err
	}
	d.Method = plan.Method.String()
	if plan.SMS > 0 {
		r.mu.Lock()
		used := r.rec.SMSUsed // written by other devices' setDevice under r.mu
		r.mu.Unlock()
		if spec.SMSBudget >= 0 && used+plan.SMS > spec.SMSBudget {
			return fmt.Errorf("%w: %s needs about %d SMS, campaign has %d of %d left", ErrBudget, d.Endpoint, plan.SMS, spec.SMSBudget-used, spec.SMSBudget)
		}
		d.SMS += plan.SMS
		if err := r.setDevice(*d, plan.SMS); err != nil {
			return err
		}
	}
	opts := spec.Options
	var stepErr error
	opts.Progress = func(s Step) {
		d.Step = s
		// Stored before the step is taken; Updating is the last point
		// before Execute, after which the device is never updated again.
		if s == StepDelivering || s == StepUpdating {
			if err := r.setDevice(*d, 0); err != nil && stepErr == nil {
				stepErr = err
			}
		}
	}
	_, err = upd.update(ctx, d.Endpoint, spec.Image, opts, &plan)
	if stepErr != nil && err == nil {
		return stepErr
	}
	return err
}
