package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// TestLastValuesTypedAndWritten: through the API, a read of a resource
// outside the model with ?type= is remembered as that type (not as raw
// text), and writes the device accepted are remembered as "write" or
// "write-composite" with the type they were written as; the same for a
// device in queue mode, whose read and write run as jobs (the type travels
// with the job) and whose values arrive after the API call.
func TestLastValuesTypedAndWritten(t *testing.T) {
	g, a, tc := startDMGateway(t, t.TempDir(), "")
	sse, ok := g.hub.subscribe()
	if !ok {
		t.Fatal("no event subscription")
	}
	defer g.hub.unsubscribe(sse)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	qc := startTestClient(ctx, t, g, "qdev", client.WithQueueMode())
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, d := a.do("GET", "/devices/qdev", ""); code == 200 && d["queue"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("qdev not registered in queue mode")
		}
	}
	value := func(ep, p string) map[string]any {
		_, v := a.do("GET", "/devices/"+ep+"/values", "")
		vals, _ := v["values"].([]any)
		for _, x := range vals {
			if m, _ := x.(map[string]any); m["path"] == p {
				return m
			}
		}
		return nil
	}
	steps := []struct {
		name, ep, method, path, body string
		code                         int
		answer                       string // in the API answer
		value                        string // the last value of valuePath: "type source text"
		valuePath                    string
	}{
		{"raw read is String", "tdev", "GET", "/data/31024/10/1", "", 200, `"value":"1"`, "String read 1", "/31024/10/1"},
		{"typed read", "tdev", "GET", "/data/31024/10/1?type=Integer", "", 200, `"value":1}`, "Integer read 1", "/31024/10/1"},
		{"typed read, unsigned", "tdev", "GET", "/data/31024/10/1?type=Unsigned", "", 200, `"value":1}`, "Unsigned Integer read 1", "/31024/10/1"},
		{"write outside the model", "tdev", "PUT", "/data/31024/10/1", `{"value": 42, "type": "Integer"}`, 200, `"code":"2.04"`, "Integer write 42", "/31024/10/1"},
		{"write in the model", "tdev", "PUT", "/data/3/0/13", `{"value": "2026-12-01T00:00:00Z"}`, 200, `"code":"2.04"`, "Time write 1796083200", "/3/0/13"},
		{"refused write keeps the value", "tdev", "PUT", "/data/31024/10/1", `{"value": 300, "type": "Integer"}`, 400, `out of range`, "Integer write 42", "/31024/10/1"},
		{"write composite", "tdev", "POST", "/composite/write", `{"values": {"/31024/10/3": 2.25}, "types": {"/31024/10/3": "Float"}}`, 200, `"code":"2.04"`, "Float write-composite 2.25", "/31024/10/3"},
		{"typed observe", "tdev", "POST", "/observe/31024/10/1?type=Integer", "", 200, `"value":42}`, "Integer observe 42", "/31024/10/1"},
		{"queued typed read", "qdev", "GET", "/data/31024/10/1?type=Integer&wait=30s", "", 200, `"value":1}`, "Integer job 1", "/31024/10/1"},
		{"queued write", "qdev", "PUT", "/data/31024/10/3?wait=30s", `{"value": 7.5, "type": "Float"}`, 200, `"code":"2.04"`, "Float write 7.5", "/31024/10/3"},
		{"queued read answer typed in the job", "qdev", "GET", "/data/31024/10/5?type=String&wait=30s", "", 200, `"value":"hello"`, "String job hello", "/31024/10/5"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.ep == "qdev" {
				// An Update keeps the queue-mode device awake for the server
				// however slow the steps before were.
				if err := qc.Update(ctx, false); err != nil {
					t.Fatal(err)
				}
			}
			code, v := a.do(st.method, "/devices/"+st.ep+st.path, st.body)
			if got := toJSON(v); code != st.code || !strings.Contains(got, st.answer) {
				t.Fatalf("%s %s: HTTP %d %s, want %d with %s", st.method, st.path, code, got, st.code, st.answer)
			}
			// A queued job's values are kept when its done event is handled.
			var got string
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				m := value(st.ep, st.valuePath)
				got = strings.Join([]string{str(m["type"]), str(m["source"]), str(m["text"])}, " ")
				if got == st.value || time.Now().After(deadline) {
					break
				}
			}
			if got != st.value {
				t.Fatalf("last value of %s: %q, want %q", st.valuePath, got, st.value)
			}
		})
	}

	// A notification of the typed observation: its event and the last
	// value carry the type.
	if err := tc.Set(path.Resource(31024, 10, 1), content.NewInt(5)); err != nil {
		t.Fatal(err)
	}
	for got := false; !got; {
		select {
		case ev := <-sse:
			if ev.kind != "notification" {
				continue
			}
			if !strings.Contains(string(ev.data), `"values":[{"path":"/31024/10/1","value":5}]`) {
				t.Fatalf("notification event: %s", ev.data)
			}
			got = true
		case <-ctx.Done():
			t.Fatal("no notification")
		}
	}
	if m := value("tdev", "/31024/10/1"); m["type"] != "Integer" || m["source"] != "notify" || m["value"] != float64(5) {
		t.Fatalf("last value after the notification: %v", m)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// TestExplicitTypesMeta: the explicit types a queued request keeps in its
// Meta read back as written; entries that cannot be read are left out.
func TestExplicitTypesMeta(t *testing.T) {
	ts := explicitTypes{{Object: 31024, Resource: 1}: model.Integer, {Object: 31024, Resource: 3}: model.Unsigned}
	tests := []struct {
		name string
		meta string
		want explicitTypes
	}{
		{"round trip", ts.meta(), ts},
		{"spelling", "31024/1=Integer,31024/3=Unsigned Integer", ts},
		{"none", "", nil},
		{"bad entries skipped", "31024/1=Integer,x/1=Float,1/70000=Float,5/5=Blob,9/9", explicitTypes{{Object: 31024, Resource: 1}: model.Integer}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := typesOfMeta(map[string]string{metaTypes: tc.meta})
			if len(got) != len(tc.want) {
				t.Fatalf("%q → %v, want %v", tc.meta, got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("%q → %v, want %v", tc.meta, got, tc.want)
				}
			}
		})
	}
	if got := ts.meta(); got != "31024/1=Integer,31024/3=Unsigned Integer" {
		t.Fatalf("meta %q", got)
	}
}
