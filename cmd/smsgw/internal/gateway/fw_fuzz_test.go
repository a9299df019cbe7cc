package gateway

import (
	"errors"
	"strings"
	"testing"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// FuzzCampaignSpec feeds the campaign request parser with arbitrary JSON:
// it must build a Spec or give an errSpec error, never panic, and a Spec it
// builds must respect the bounds the API documents.
func FuzzCampaignSpec(f *testing.F) {
	f.Add(`{"image":"0123456789abcdef","prefix":"light-"}`)
	f.Add(`{"image":"x","endpoints":["a","b"],"concurrency":5,"retries":0,"sms_budget":-1,"allow_sms_push":true}`)
	f.Add(`{"image":"x","filter":{"transport":"udp","queue":"true"},"backoff":"10s","method":"pull"}`)
	f.Add(`{"image":"x","filter":{"colour":"red"}}`)
	f.Add(`{"image":"x","prefix":"p","concurrency":-1}`)
	f.Add(`{"image":"x","prefix":"p","backoff":"-5s","method":"fax"}`)
	f.Add(`{"image":"","endpoints":[""]}`)
	f.Add(`{"image":"x","prefix":"p","sms_budget":-2,"retries":101}`)
	f.Add(`{"image":"x","name":"device-update light-1","endpoints":["light-1"]}`)
	fc := config.Default().Firmware
	reg := &registry.Registration{Endpoint: "light-1", Version: registry.V1_1, Binding: registry.BindingU}
	f.Fuzz(func(t *testing.T, body string) {
		var b CampaignBody
		if decodeJSONBytes([]byte(body), &b, true) != nil {
			return
		}
		spec, err := campaignSpec(fc, b)
		if err != nil {
			if !errors.Is(err, errSpec) {
				t.Fatalf("error %v does not wrap errSpec", err)
			}
			return
		}
		if spec.Image == "" || spec.Concurrency < 1 || spec.Concurrency > 10000 || spec.Retries == nil || *spec.Retries < 0 || *spec.Retries > 100 ||
			spec.SMSBudget < -1 || spec.Backoff < 0 {
			t.Fatalf("spec out of bounds: %+v", spec)
		}
		if strings.HasPrefix(spec.Name, devJobPrefix) {
			t.Fatalf("campaign named like a single-device update: %q", spec.Name)
		}
		if len(spec.Endpoints) == 0 && spec.Prefix == "" && spec.Match == nil {
			t.Fatalf("spec without target: %+v", spec)
		}
		if spec.Match != nil {
			spec.Match(reg)
		}
	})
}
