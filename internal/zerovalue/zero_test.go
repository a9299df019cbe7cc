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

// TestZeroValues calls every exported method of every listed type on a
// pointer to its zero value twice: with zero arguments, and with
// non-zero ones (true, 1, "+15550000001", 300 bytes: more than an SMS, a deadline 50 ms
// ahead, a buffered channel, a func returning zero values: see
// nonZeroArg), so that a guard cannot hide behind an argument's zero value
// (SetRegistered(true), a TPDU of two octets). A context.Context ends
// after 200 ms. It fails on a panic or on a call that has not returned
// after 3 s.
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
				for _, nonZero := range []bool{false, true} {
					if err := callZero(typ, m, nonZero); err != "" {
						if nonZero {
							err += " (non-zero arguments)"
						}
						ch <- outcome{m.Name, err}
						return
					}
				}
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
		if len(bad) > 0 {
			t.Errorf("zero %s (make it work, or refuse with the package's ErrNotCreated):\n\t%s", n, strings.Join(bad, "\n\t"))
		}
	}
}

// callZero calls method m on a pointer to a new zero typ, with zero or
// non-zero arguments, and returns "" or the panic it caught.
func callZero(typ reflect.Type, m reflect.Method, nonZero bool) (bad string) {
	defer func() {
		if r := recover(); r != nil {
			bad = fmt.Sprint("panic: ", r)
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
		if nonZero {
			args = append(args, nonZeroArg(mt.In(j), ctx))
		} else {
			args = append(args, argFor(mt.In(j), ctx))
		}
	}
	m.Func.Call(args)
	return ""
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

// nonZeroArg is argFor with a non-zero value for the basic kinds, byte
// slices, times, channels and funcs; other kinds get argFor's value.
func nonZeroArg(at reflect.Type, ctx context.Context) reflect.Value {
	switch at {
	case reflect.TypeFor[time.Time]():
		return reflect.ValueOf(time.Now().Add(50 * time.Millisecond))
	case reflect.TypeFor[time.Duration]():
		return reflect.ValueOf(10 * time.Millisecond)
	}
	v := reflect.New(at).Elem()
	switch at.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.String:
		v.SetString("+15550000001")
	case reflect.Slice:
		if at.Elem().Kind() != reflect.Uint8 {
			return argFor(at, ctx)
		}
		b := reflect.MakeSlice(at, 300, 300)
		for i := range 300 {
			b.Index(i).SetUint(0x40)
		}
		return b
	case reflect.Chan:
		return reflect.MakeChan(reflect.ChanOf(reflect.BothDir, at.Elem()), 16).Convert(at)
	case reflect.Func:
		return reflect.MakeFunc(at, func([]reflect.Value) []reflect.Value {
			out := make([]reflect.Value, at.NumOut())
			for i := range out {
				out[i] = reflect.Zero(at.Out(i))
			}
			return out
		})
	default:
		return argFor(at, ctx)
	}
	return v
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

// TestZeroDocumented: every listed type says what its zero value is ("The
// zero X is ready to use", "The zero X is not usable: use NewX", or what
// the zero data means), except the error types, whose zero value is an
// error with no detail.
func TestZeroDocumented(t *testing.T) {
	docs := map[string]map[string]string{} // package -> type -> doc comment
	for n := range zeroTypes {
		pkg, typ, _ := strings.Cut(n, ".")
		if strings.HasSuffix(typ, "Error") {
			continue
		}
		if docs[pkg] == nil {
			docs[pkg] = typeDocs(t, filepath.Join("../..", pkg))
		}
		if !strings.Contains(strings.ToLower(docs[pkg][typ]), "zero") {
			t.Errorf("%s: its doc does not say what its zero value is", n)
		}
	}
}

// typeDocs returns the doc comments of the exported types of the package
// in dir.
func typeDocs(t *testing.T, dir string) map[string]string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fs := token.NewFileSet()
	out := map[string]string{}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fs, filepath.Join(dir, n), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, s := range g.Specs {
				if ts, ok := s.(*ast.TypeSpec); ok && ts.Name.IsExported() {
					doc := ts.Doc
					if doc == nil {
						doc = g.Doc
					}
					out[ts.Name.Name] = doc.Text()
				}
			}
		}
	}
	return out
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
