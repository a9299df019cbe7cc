package config

import (
	"encoding/hex"
	"fmt"

	"github.com/m2mbearer/m2mbearer/bearer/oscore"
)

// OSCORE is the OSCORE security context of one device (RFC 8613 §3.2, the
// server's half of the device's LwM2M Object 21). Binary fields are hex.
// The device authenticated by it may register only as Endpoint; over SMS
// (a device listed in sms.devices) its messages must be OSCORE-protected.
type OSCORE struct {
	// Endpoint is the endpoint name the context may register as.
	Endpoint string `yaml:"endpoint"`
	// MasterSecret (at least 16 bytes) and the optional MasterSalt are
	// the context's input keying material, in hex.
	MasterSecret string `yaml:"master_secret"`
	MasterSalt   string `yaml:"master_salt"`
	// SenderID is the server's Sender ID (the device's Recipient ID).
	SenderID string `yaml:"sender_id"`
	// RecipientID is the device's Sender ID.
	RecipientID string `yaml:"recipient_id"`
	// IDContext is optional; empty means none.
	IDContext string `yaml:"id_context"`
	// Rederive runs RFC 8613 Appendix B.2 with the device: whenever either
	// side has no state to continue with (first contact, lost storage),
	// the two derive a fresh context from these parameters and random
	// values, with no operator action. The device must enable it too; its
	// recipient_id must then be unique among all contexts.
	Rederive bool `yaml:"rederive"`
}

// ContextOptions returns the oscore.NewContext options the entry asks for.
func (o OSCORE) ContextOptions() []oscore.ContextOption {
	if o.Rederive {
		return []oscore.ContextOption{oscore.WithRederivation()}
	}
	return nil
}

// Params decodes the context parameters.
func (o OSCORE) Params() (oscore.Params, error) {
	var p oscore.Params
	var err error
	dec := func(s string) []byte {
		if err != nil {
			return nil
		}
		var b []byte
		b, err = hex.DecodeString(s)
		return b
	}
	p.MasterSecret, p.MasterSalt = dec(o.MasterSecret), dec(o.MasterSalt)
	p.SenderID, p.RecipientID = dec(o.SenderID), dec(o.RecipientID)
	if o.IDContext != "" {
		p.IDContext = dec(o.IDContext)
	}
	if err != nil {
		return p, fmt.Errorf("not hex: %w", err)
	}
	return p, p.Validate()
}

func (c *Config) validateOSCORE(ck *checker) {
	eps := map[string]bool{}
	kids := map[string]bool{}
	ids, rederive := map[string]bool{}, map[string]bool{}
	for i, o := range c.LwM2M.OSCORE {
		idx := fmt.Sprint(i)
		if o.Endpoint == "" {
			ck.add("endpoint is required: the endpoint name this context may register as", "lwm2m", "oscore", idx, "endpoint")
		} else if eps[o.Endpoint] {
			ck.add(fmt.Sprintf("endpoint %q has two OSCORE contexts", o.Endpoint), "lwm2m", "oscore", idx, "endpoint")
		}
		eps[o.Endpoint] = true
		if len(o.MasterSecret) < 32 {
			ck.add("master_secret must be at least 16 bytes in hex", "lwm2m", "oscore", idx, "master_secret")
			continue
		}
		if _, err := o.Params(); err != nil {
			ck.add(err.Error(), "lwm2m", "oscore", idx)
			continue
		}
		k := o.IDContext + "|" + o.RecipientID
		if kids[k] {
			ck.add(fmt.Sprintf("recipient_id %q (id_context %q) is used twice: the server finds a device's context by it", o.RecipientID, o.IDContext), "lwm2m", "oscore", idx, "recipient_id")
		}
		kids[k] = true
		if o.Rederive {
			if rederive[o.RecipientID] || ids[o.RecipientID] {
				ck.add(fmt.Sprintf("recipient_id %q of a context with rederive is used by another context: its re-derivation requests are found by recipient_id alone", o.RecipientID), "lwm2m", "oscore", idx, "recipient_id")
			}
			rederive[o.RecipientID] = true
		} else if rederive[o.RecipientID] {
			ck.add(fmt.Sprintf("recipient_id %q is used by a context with rederive", o.RecipientID), "lwm2m", "oscore", idx, "recipient_id")
		}
		ids[o.RecipientID] = true
	}
}
