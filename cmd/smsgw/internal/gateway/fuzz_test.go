package gateway

import (
	"strings"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// FuzzOperationRequest feeds the API's request parser (LwM2M path from the
// URL, JSON body, typed values from the object model, the wait parameter)
// with arbitrary input: it must answer a request or an error, never panic,
// and a request it accepts must be one the queue accepts.
func FuzzOperationRequest(f *testing.F) {
	f.Add(uint8(1), "3/0", "", "30s")
	f.Add(uint8(2), "3311/0/5851", `{"value": 40}`, "")
	f.Add(uint8(2), "3311/0/5851", `{"value": "bright"}`, "")
	f.Add(uint8(3), "3311/0", `{"values": {"5850": true, "5851": "7"}}`, "5")
	f.Add(uint8(6), "3/0/4", `{"args": "0='on',1"}`, "")
	f.Add(uint8(7), "3311", `{"instance": 3, "values": {"5850": 1}}`, "")
	f.Add(uint8(8), "3311/1", "", "-1s")
	f.Add(uint8(2), "6/0/0", `{"value": 1e400}`, "")
	f.Add(uint8(2), "3/0/13", `{"value": "2026-11-25T12:00:00Z"}`, "")
	f.Add(uint8(2), "5/0/0", `{"value": "AAEC"}`, "")
	g := &Gateway{model: model.DefaultRegistry()}
	reg := &registry.Registration{Endpoint: "light", Version: registry.V1_1, Binding: registry.BindingU}
	f.Fuzz(func(t *testing.T, kind uint8, p, body, wait string) {
		parseWait(wait, 0)
		lp, err := path.Parse("/" + strings.Trim(p, "/"))
		if err != nil {
			return
		}
		var b OpBody
		if decodeJSONBytes([]byte(body), &b, false) != nil {
			return
		}
		k := queue.Kind(kind%12 + 1)
		req, recs, err := g.buildRequest(reg, k, lp, b)
		if err != nil {
			return
		}
		if req.Endpoint != "light" || len(req.Paths) != 1 || req.Kind != k {
			t.Fatalf("request %+v", req)
		}
		for _, r := range recs {
			if !r.Path.HasPrefix(lp.Truncate(min(lp.Len(), 2))) && k != queue.KindCreate {
				t.Fatalf("record %v outside %v", r.Path, lp)
			}
		}
	})
}
