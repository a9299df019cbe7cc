package config

import (
	"fmt"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp"
)

// validateSMPP checks the smpp: links and adds their E.164 sources to sims.
func (c *Config) validateSMPP(ck *checker, sims map[string]bool) {
	names := map[string]bool{}
	for i, l := range c.SMPP {
		idx := fmt.Sprint(i)
		at := func(msg, key string) { ck.add(msg, "smpp", idx, key) }
		name := l.Name
		if name == "" {
			name = fmt.Sprintf("%s:%d", l.Host, l.Port)
		}
		if names[name] {
			at(fmt.Sprintf("link name %q used twice", name), "name")
		}
		names[name] = true
		if l.Host == "" {
			at("host is required (the SMSC's name or address)", "host")
		}
		if l.Port < 1 || l.Port > 65535 {
			at(fmt.Sprintf("port %d is not in 1..65535 (SMPP is usually 2775, 3550 with TLS)", l.Port), "port")
		}
		switch {
		case l.SystemID == "" || len(l.SystemID) > 15:
			at("system_id is required, at most 15 characters", "system_id")
		case len(l.Password) > 8:
			at("password is at most 8 characters in SMPP 3.4", "password")
		case len(l.SystemType) > 12:
			at("system_type is at most 12 characters", "system_type")
		}
		switch l.Bind {
		case "", "transceiver", "transmitter-receiver":
		default:
			at(fmt.Sprintf("unknown bind %q; use transceiver or transmitter-receiver", l.Bind), "bind")
		}
		if _, err := smpp.ParseConcat(l.Concat); err != nil {
			at(fmt.Sprintf("unknown concat %q; use udh, sar or payload", l.Concat), "concat")
		}
		if len(l.Sources) == 0 {
			at("at least one source number is needed", "sources")
		}
		for j, src := range l.Sources {
			if _, err := smpp.SourceAddress(src); err != nil {
				ck.add(err.Error(), "smpp", idx, "sources", fmt.Sprint(j))
				continue
			}
			if a, err := sms.ParseMSISDN(src); err == nil {
				sims[a.String()] = true
			}
		}
		if l.Window < 0 || l.Window > 1000 {
			at("window must be in 0..1000 (0: default 10)", "window")
		}
		if l.Rate < 0 {
			at("rate must not be negative", "rate")
		}
		if l.EnquireLink < 0 {
			at("enquire_link must not be negative", "enquire_link")
		}
	}
}
