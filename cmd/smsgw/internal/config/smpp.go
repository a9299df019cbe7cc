package config

import (
	"fmt"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp"
)

// validateSMPP checks the smpp: links and adds their E.164 sources to sims.
func (c *Config) validateSMPP(ck *checker, sims map[string]bool) {
	names := map[string]bool{}
	accounts := map[string]string{} // account -> system_id
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
		validateSMPPLink(ck, idx, l, sims)
		if l.Account != "" {
			if id, ok := accounts[l.Account]; ok && id != l.SystemID {
				at(fmt.Sprintf("account %q is bound with system_id %q by another link; links of one account share its system_id", l.Account, id), "account")
			} else if !ok {
				accounts[l.Account] = l.SystemID
			}
		}
	}
}

// validateSMPPLink checks the options of link smpp[idx] that do not
// depend on the other links, and adds its E.164 sources to sims.
func validateSMPPLink(ck *checker, idx string, l SMPPLink, sims map[string]bool) {
	at := func(msg, key string) { ck.add(msg, "smpp", idx, key) }
	if l.Host == "" {
		at("host is required (the SMSC's name or address)", "host")
	} else if msg := hostProblem(l.Host); msg != "" {
		at(fmt.Sprintf("`smpp.%s.host`: %s", idx, msg), "host")
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
	validateSMPPSources(ck, idx, l.Sources, sims)
	if l.Window < 0 || l.Window > 1000 {
		at("window must be in 0..1000 (0: default 10)", "window")
	}
	if l.Rate < 0 {
		at("rate must not be negative", "rate")
	}
	if l.EnquireLink < 0 {
		at("enquire_link must not be negative", "enquire_link")
	}
	validateSMPPTLS(l, at)
}

// validateSMPPSources checks smpp[idx].sources and adds the E.164 ones to
// sims.
func validateSMPPSources(ck *checker, idx string, sources []string, sims map[string]bool) {
	if len(sources) == 0 {
		ck.add("at least one source number is needed", "smpp", idx, "sources")
	}
	for j, src := range sources {
		if _, err := smpp.SourceAddress(src); err != nil {
			ck.add(err.Error(), "smpp", idx, "sources", fmt.Sprint(j))
			continue
		}
		if a, err := sms.ParseMSISDN(src); err == nil {
			sims[a.String()] = true
		}
	}
}

// validateSMPPTLS checks the tls_* options of one link: they need tls:
// true, and the files they name must load.
func validateSMPPTLS(l SMPPLink, at func(msg, key string)) {
	if !l.TLS {
		for _, o := range []struct{ key, v string }{{"tls_server_name", l.TLSServerName}, {"tls_ca_file", l.TLSCAFile},
			{"tls_cert_file", l.TLSCertFile}, {"tls_key_file", l.TLSKeyFile}} {
			if o.v != "" {
				at(o.key+" has no effect without tls: true", o.key)
			}
		}
		return
	}
	if _, err := l.TLSOptions().Config(l.Host); err != nil {
		key := "tls_ca_file"
		if l.TLSCertFile != "" || l.TLSKeyFile != "" {
			if _, err2 := (smpp.TLSOptions{CAFile: l.TLSCAFile}).Config(l.Host); err2 == nil {
				key = "tls_cert_file"
			}
		}
		at(err.Error(), key)
	}
}

// TLSOptions are the link's tls_* options.
func (l SMPPLink) TLSOptions() smpp.TLSOptions {
	return smpp.TLSOptions{ServerName: l.TLSServerName, CAFile: l.TLSCAFile, CertFile: l.TLSCertFile, KeyFile: l.TLSKeyFile}
}
