package firmware

// SetStateHook makes d run each deferred State/Update Result transition of
// its hooks through f, which must call apply (tests reorder them with it).
func SetStateHook(d *Device, f func(st, res int64, apply func())) {
	d.mu.Lock()
	d.stateHook = f
	d.mu.Unlock()
}
