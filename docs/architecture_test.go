package docs

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestImportRules checks the dependency rules architecture.md states
// against the packages' imports (go list; test files aside).
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/m2mbearer/m2mbearer/"
	under := func(pkg, dir string) bool { return pkg == dir || strings.HasPrefix(pkg, dir+"/") }
	rules := []struct {
		name   string
		broken func(pkg, imp string) bool
	}{
		{"nothing in bearer imports lwm2m", func(p, i string) bool { return under(p, "bearer") && under(i, "lwm2m") }},
		{"nothing in modem imports bearer", func(p, i string) bool { return under(p, "modem") && under(i, "bearer") }},
		{"only modemlink and the simulated SMSC import modem", func(p, i string) bool {
			return under(p, "bearer") && under(i, "modem") && p != "bearer/sms/modemlink" && p != "bearer/sms/smpp/smsc"
		}},
		{"the SMS bearer imports none of its transports", func(p, i string) bool {
			return p == "bearer/sms" && (under(i, "bearer/sms/smpp") || i == "bearer/sms/route" || i == "bearer/sms/modemlink")
		}},
		{"the queue core and the server import the bearer interface, no transport", func(p, i string) bool {
			return (p == "lwm2m/queue" || p == "lwm2m/server") && under(i, "bearer") && i != "bearer"
		}},
		{"nothing outside cmd imports cmd", func(p, i string) bool { return !under(p, "cmd") && under(i, "cmd") }},
		{"only cmd imports redisstore", func(p, i string) bool {
			return under(i, "redisstore") && !under(p, "cmd") && !under(p, "redisstore")
		}},
	}
	type edge struct{ pkg, imp string }
	var edges []edge
	pkgs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], mod) {
			continue
		}
		pkgs++
		p := strings.TrimPrefix(f[0], mod)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, mod) {
				edges = append(edges, edge{p, strings.TrimPrefix(imp, mod)})
			}
		}
	}
	if pkgs < 20 {
		t.Fatalf("go list gave %d packages of the module", pkgs)
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			for _, e := range edges {
				if r.broken(e.pkg, e.imp) {
					t.Errorf("%s imports %s: breaks %q (docs/architecture.md)", e.pkg, e.imp, r.name)
				}
			}
		})
	}
}

// TestCoreKnowsNoSMS: neither lwm2m/queue nor lwm2m/server depends on
// a bearer transport, directly or through another package (go list
// -deps; test files aside): SMS reaches them only through lwm2m/smswake,
// which the gateway wires.
func TestCoreKnowsNoSMS(t *testing.T) {
	const mod = "github.com/m2mbearer/m2mbearer/"
	out, err := exec.Command("go", "list", "-deps", "../lwm2m/queue", "../lwm2m/server").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	found := false
	for _, d := range deps {
		rel, ok := strings.CutPrefix(d, mod)
		if !ok {
			continue
		}
		found = found || rel == "lwm2m/queue"
		if strings.HasPrefix(rel, "bearer/") && !strings.HasPrefix(rel, "bearer/internal/") {
			t.Errorf("lwm2m/queue or lwm2m/server depends on %s: breaks \"the queue core and the server import the bearer interface, no transport\" (docs/architecture.md)", rel)
		}
	}
	if !found {
		t.Fatalf("go list -deps gave no lwm2m/queue in %d packages", len(deps))
	}
}

// TestEveryPackageDocumented fails when a package of the module is not
// named in architecture.md (each package says there what it owns).
func TestEveryPackageDocumented(t *testing.T) {
	out, err := exec.Command("go", "list", "../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	arch, err := os.ReadFile("architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(p, "github.com/m2mbearer/m2mbearer/")
		if !ok {
			continue
		}
		if !strings.Contains(string(arch), "`"+rel+"`") {
			t.Errorf("package %s is not in docs/architecture.md: say what it owns there", rel)
		}
	}
}
