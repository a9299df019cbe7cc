package gateway

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIBudgetFields: every SMS budget field of openapi.json says
// what -1 and 0 mean (-1 no limit, 0 no SMS at all, as the configuration
// and campaignSpec read them): a reader must not guess that 0 is
// "unlimited", which it used to be.
func TestOpenAPIBudgetFields(t *testing.T) {
	var doc any
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var found []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if props, ok := v["properties"].(map[string]any); ok {
				for name, p := range props {
					if !strings.Contains(name, "budget") || strings.Contains(name, "used") {
						continue
					}
					found = append(found, path+"."+name)
					desc, _ := p.(map[string]any)["description"].(string)
					if !strings.Contains(desc, "-1 means") || !strings.Contains(desc, "0 means no SMS") {
						t.Errorf("%s.%s: description %q does not say what -1 and 0 mean", path, name, desc)
					}
				}
			}
			for k, c := range v {
				walk(path+"/"+k, c)
			}
		case []any:
			for _, c := range v {
				walk(path, c)
			}
		}
	}
	walk("", doc)
	slices.Sort(found)
	t.Logf("budget fields: %v", found)
	if len(found) < 3 {
		t.Fatalf("found only %v; want the campaign's sms_budget, the device's budget_per_day and the deployment's daily_budget", found)
	}
}
