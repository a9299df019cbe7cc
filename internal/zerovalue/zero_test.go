package zerovalue

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// constructorOnly lists the exported types whose zero value still panics
// or blocks in some method, with the constructor that makes a usable one.
// It is a debt, not a design: a type leaves the list when its zero value
// is usable or refuses with an error, and TestZeroValues fails when a type
// listed here has become safe (so the list only shrinks).
var constructorOnly = map[string]string{
	"bearer/oscore.Addr":        "oscore.Conn.ReadFrom",
	"bearer/oscore.BoltStore":   "oscore.OpenBoltStore",
	"bearer/oscore.Conn":        "oscore.New",
	"bearer/oscore.Context":     "oscore.NewContext",
	"bearer/secure.Conn":        "secure.Dial",
	"bearer/secure.Server":      "secure.NewServer",
	"bearer/sms.Bearer":         "sms.New",
	"bearer/sms/modemlink.Link": "modemlink.New",
	"bearer/sms/outbox.Outbox":  "outbox.Open",
	"bearer/sms/outbox.Worker":  "outbox.NewWorker",
	"lwm2m/client.Client":       "client.New",
	"lwm2m/firmware.Device":     "firmware.NewDevice",
	"lwm2m/firmware.Image":      "firmware.Store.Open",
	"lwm2m/firmware.Manager":    "firmware.NewManager",
	"lwm2m/firmware.Updater":    "firmware.NewUpdater",
	"lwm2m/queue.BoltStore":     "queue.OpenBoltStore",
	"lwm2m/queue.Manager":       "queue.New",
	"lwm2m/queue.MemStore":      "queue.NewMemStore",
	"lwm2m/queue.Subscription":  "queue.Manager.Subscribe",
	"modem.Modem":               "modem.Open",
	"modem.Pool":                "modem.NewPool",
	"modem.PrometheusMetrics":   "modem.NewPrometheusMetrics",
	"modem/sim.Modem":           "sim.Network.AddModem",
	"modem/sim.Network":         "sim.NewNetwork",
}

// TestZeroValues calls every exported method of every listed type on a
// pointer to its zero value, with zero arguments (a context that ends
// after 200 ms for a context.Context), and fails on a panic or on a call
// that has not returned after 3 s.
func TestZeroValues(t *testing.T) {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range zeroTypes {
			if !yield(n) {
				return
			}
		}
	})
	type outcome struct {
		method string
		err    string // "" when the call returned
	}
	results := map[string][]chan outcome{}
	for _, n := range names {
		typ := zeroTypes[n]
		pt := reflect.PointerTo(typ)
		for i := range pt.NumMethod() {
			m := pt.Method(i)
			ch := make(chan outcome, 1)
			results[n] = append(results[n], ch)
			go func() {
				defer func() {
					if r := recover(); r != nil {
						ch <- outcome{m.Name, fmt.Sprint("panic: ", r)}
					}
				}()
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				args := []reflect.Value{reflect.New(typ)}
				mt := m.Type
				for j := 1; j < mt.NumIn(); j++ {
					if mt.IsVariadic() && j == mt.NumIn()-1 {
						break
					}
					args = append(args, argFor(mt.In(j), ctx))
				}
				m.Func.Call(args)
				ch <- outcome{m.Name, ""}
			}()
		}
	}
	deadline := time.After(3 * time.Second)
	for _, n := range names {
		var bad []string
		for i, ch := range results[n] {
			select {
			case o := <-ch:
				if o.err != "" {
					bad = append(bad, o.method+": "+o.err)
				}
			case <-deadline:
				bad = append(bad, reflect.PointerTo(zeroTypes[n]).Method(i).Name+": did not return")
			}
		}
		ctor, listed := constructorOnly[n]
		switch {
		case len(bad) > 0 && !listed:
			t.Errorf("zero %s:\n\t%s", n, strings.Join(bad, "\n\t"))
		case len(bad) == 0 && listed:
			t.Errorf("zero %s is safe now: remove it from constructorOnly", n)
		case listed:
			t.Logf("zero %s not usable yet (use %s): %d of %d methods", n, ctor, len(bad), len(results[n]))
		}
	}
}

// argFor returns the argument passed for a parameter of type at: the
// zero value, except that pointers point to a zero value and the usual
// interfaces get a harmless implementation, so that a panic is the
// receiver's, not a nil argument's (which is the caller's error).
func argFor(at reflect.Type, ctx context.Context) reflect.Value {
	known := map[reflect.Type]any{
		reflect.TypeFor[context.Context]():       ctx,
		reflect.TypeFor[net.Addr]():              &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9},
		reflect.TypeFor[io.Reader]():             strings.NewReader(""),
		reflect.TypeFor[io.Writer]():             io.Discard,
		reflect.TypeFor[fs.FS]():                 fstest.MapFS{},
		reflect.TypeFor[bearer.ResponseWriter](): discardWriter{},
	}
	if v, ok := known[at]; ok {
		return reflect.ValueOf(v)
	}
	if at.Kind() == reflect.Pointer {
		return reflect.New(at.Elem())
	}
	return reflect.Zero(at)
}

type discardWriter struct{}

func (discardWriter) SetOption(message.Option)               {}
func (discardWriter) AddOption(message.Option)               {}
func (discardWriter) WriteResponse(codes.Code, []byte) error { return nil }
func (discardWriter) Observe() (*bearer.Observer, error)     { return nil, bearer.ErrNotObservable }

// TestTableComplete: every exported struct type with methods in the
// library packages is in zeroTypes (types_test.go).
func TestTableComplete(t *testing.T) {
	root := "../.."
	for _, top := range []string{"bearer", "lwm2m", "modem"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				return nil
			}
			// internal packages are not API; *test packages are test helpers.
			if n := d.Name(); n == "testdata" || n == "internal" || strings.HasSuffix(n, "test") || strings.HasPrefix(n, ".") {
				return filepath.SkipDir
			}
			rel, _ := filepath.Rel(root, p)
			for _, typ := range exportedTypesWithMethods(t, p) {
				if _, ok := zeroTypes[filepath.ToSlash(rel)+"."+typ]; !ok {
					t.Errorf("%s.%s is not in zeroTypes (types_test.go)", rel, typ)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func exportedTypesWithMethods(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fs := token.NewFileSet()
	structs, methods := map[string]bool{}, map[string]bool{}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fs, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv != nil && d.Name.IsExported() {
					rt := d.Recv.List[0].Type
					if s, ok := rt.(*ast.StarExpr); ok {
						rt = s.X
					}
					if id, ok := rt.(*ast.Ident); ok {
						methods[id.Name] = true
					}
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					if ts, ok := s.(*ast.TypeSpec); ok && ts.Name.IsExported() {
						if _, ok := ts.Type.(*ast.StructType); ok {
							structs[ts.Name.Name] = true
						}
					}
				}
			}
		}
	}
	var out []string
	for s := range structs {
		if methods[s] {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}
