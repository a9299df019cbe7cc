// Command codestats prints the code-health counts of issue 18 for the
// module it is run in, so that the same numbers are measured before and
// after a refactor with one command.
//
// # Usage
//
//	go run ./internal/codestats          # summary
//	go run ./internal/codestats -v       # and every function, type, link and loop counted
//	go run ./internal/codestats -root ../other-checkout
//
// .ci/run prints the summary in its complexity report (a report, not a
// gate).
//
// # Design
//
// Product code is every non-test .go file; test code is every _test.go
// file. Directories named testdata, vendor, or starting with "." or "_"
// are skipped, as the go command skips them. It counts:
//
//   - long functions: function and method declarations in product code
//     whose declaration (signature to closing brace) spans more than
//     -maxlines lines (80);
//   - long parameter lists: declarations in product code with -maxparams
//     (6) or more parameters, the receiver not counted, "a, b int" counted
//     as two;
//   - duplicate definitions: the packages that define the LwM2M
//     content-format numbers (a const or var declaration holding the
//     literal 11542, the TLV format), the packages that declare a type
//     named Security, and the exported type names declared in more than
//     one product package;
//   - package docs: doc links (a name in square brackets) in product
//     comments, package docs with a "# Usage" and a "# Design" section,
//     and the bracketed names in package docs that go/doc does not resolve
//     to a link;
//   - table tests: Test functions, calls of t.Run (any X.Run(name, func(t
//     *testing.T) ...)), and table loops that do not use t.Run: a range
//     over a slice or map of struct literals whose body reports failures
//     with t.Error/t.Errorf/t.Fatal/t.Fatalf directly, so that a failing
//     case does not name itself; and, counted apart, loops of the same kind
//     over a literal list of values or a map (for _, in := range
//     []string{...}).
//
// The counts are syntactic (go/parser and go/doc, no type checking): they
// are meant to be compared with themselves over time, not to be exact to a
// definition.
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/doc"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

type funcInfo struct {
	pos    string
	name   string
	lines  int
	params int
}

type stats struct {
	root string
	fset *token.FileSet

	longFuncs  []funcInfo
	manyParams []funcInfo

	formatPkgs   map[string]bool
	securityPkgs map[string]bool
	typePkgs     map[string]map[string]bool // exported type name -> packages

	tests        int
	tRuns        int
	plainLoops   []string // positions of table loops without t.Run
	valueLoops   []string // positions of value-list loops without t.Run
	loopsByPkg   map[string]int
	testsByPkg   map[string]int
	tRunsByPkg   map[string]int
	productFiles int
	testFiles    int
	productFuncs int

	docLinks   int // [Name] doc links in product comments
	pkgFiles   map[string][]*ast.File
	badLinks   []string        // [Name] in a package doc that go/doc does not resolve
	pkgDocs    map[string]bool // packages with a package doc comment
	usageDocs  map[string]bool // ... that has a "# Usage" heading
	designDocs map[string]bool // ... that has a "# Design" heading
	maxLines   int
	maxParams  int
}

func main() {
	root := flag.String("root", ".", "module root to scan")
	verbose := flag.Bool("v", false, "list every counted function, type and loop")
	maxLines := flag.Int("maxlines", 80, "a function longer than this many lines is counted as long")
	maxParams := flag.Int("maxparams", 6, "a function with at least this many parameters is counted")
	flag.Parse()

	s, err := collect(*root, *maxLines, *maxParams)
	if err != nil {
		fmt.Fprintln(os.Stderr, "codestats:", err)
		os.Exit(1)
	}
	s.print(os.Stdout, *verbose)
}

// collect reads every Go file under root and counts.
func collect(root string, maxLines, maxParams int) (*stats, error) {
	s := &stats{
		root:         root,
		fset:         token.NewFileSet(),
		formatPkgs:   map[string]bool{},
		securityPkgs: map[string]bool{},
		typePkgs:     map[string]map[string]bool{},
		loopsByPkg:   map[string]int{},
		testsByPkg:   map[string]int{},
		tRunsByPkg:   map[string]int{},
		pkgDocs:      map[string]bool{},
		usageDocs:    map[string]bool{},
		designDocs:   map[string]bool{},
		pkgFiles:     map[string][]*ast.File{},
		maxLines:     maxLines,
		maxParams:    maxParams,
	}
	if err := s.walk(root); err != nil {
		return nil, err
	}
	s.checkLinks()
	return s, nil
}

func (s *stats) walk(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" ||
				strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(s.fset, path, nil, parser.SkipObjectResolution|parser.ParseComments)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(rel))
		if strings.HasSuffix(name, "_test.go") {
			s.testFiles++
			s.scanTest(pkg, f)
		} else {
			s.productFiles++
			s.scanProduct(pkg, f)
			s.pkgFiles[pkg] = append(s.pkgFiles[pkg], f)
		}
		return nil
	})
}

// checkLinks lists the bracketed names of each package doc that go/doc does
// not turn into a doc link: a misspelt or vanished name, or a package the
// files do not import.
func (s *stats) checkLinks() {
	for _, pkg := range sortedKeys(s.pkgFiles) {
		p, err := doc.NewFromFiles(s.fset, s.pkgFiles[pkg], pkg)
		if err != nil || p.Doc == "" {
			continue
		}
		for _, plain := range plainText(p.Parser().Parse(p.Doc)) {
			for _, m := range docLink.FindAllString(string(plain), -1) {
				s.badLinks = append(s.badLinks, pkg+": "+m[:strings.Index(m, "]")+1])
			}
		}
	}
}

// plainText returns the plain text of d's paragraphs and list items: what
// go/doc did not turn into a link, code or a heading.
func plainText(d *comment.Doc) []comment.Plain {
	var paras []*comment.Paragraph
	for _, b := range d.Content {
		switch b := b.(type) {
		case *comment.Paragraph:
			paras = append(paras, b)
		case *comment.List:
			for _, it := range b.Items {
				for _, c := range it.Content {
					if para, ok := c.(*comment.Paragraph); ok {
						paras = append(paras, para)
					}
				}
			}
		}
	}
	var out []comment.Plain
	for _, para := range paras {
		for _, t := range para.Text {
			if plain, ok := t.(comment.Plain); ok {
				out = append(out, plain)
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *stats) position(p token.Pos) string {
	pos := s.fset.Position(p)
	name := pos.Filename
	if rel, err := filepath.Rel(s.root, name); err == nil {
		name = rel
	}
	return fmt.Sprintf("%s:%d", filepath.ToSlash(name), pos.Line)
}

func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if st, ok := t.(*ast.StarExpr); ok {
		t = st.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

func countFields(fl *ast.FieldList) int {
	if fl == nil {
		return 0
	}
	n := 0
	for _, f := range fl.List {
		if len(f.Names) == 0 {
			n++
		} else {
			n += len(f.Names)
		}
	}
	return n
}

// docLink matches a Go doc link: [Name], [Name.Method], [pkg.Name],
// [*Name], not followed by "(" or ":" (a Markdown link or link definition).
var docLink = regexp.MustCompile(`\[\*?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\]([^(:]|$)`)

func (s *stats) scanProduct(pkg string, f *ast.File) {
	for _, cg := range f.Comments {
		s.docLinks += len(docLink.FindAllString(cg.Text(), -1))
	}
	if f.Doc != nil {
		text := f.Doc.Text()
		s.pkgDocs[pkg] = true
		if strings.Contains(text, "\n# Usage\n") {
			s.usageDocs[pkg] = true
		}
		if strings.Contains(text, "\n# Design\n") {
			s.designDocs[pkg] = true
		}
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			s.productFuncs++
			fi := funcInfo{
				pos:    s.position(d.Pos()),
				name:   pkg + "." + funcName(d),
				lines:  s.fset.Position(d.End()).Line - s.fset.Position(d.Pos()).Line + 1,
				params: countFields(d.Type.Params),
			}
			if fi.lines > s.maxLines {
				s.longFuncs = append(s.longFuncs, fi)
			}
			if fi.params >= s.maxParams {
				s.manyParams = append(s.manyParams, fi)
			}
		case *ast.GenDecl:
			s.scanGenDecl(pkg, d)
		}
	}
}

func (s *stats) scanGenDecl(pkg string, d *ast.GenDecl) {
	switch d.Tok {
	case token.TYPE:
		for _, sp := range d.Specs {
			ts := sp.(*ast.TypeSpec)
			if ts.Name.Name == "Security" {
				s.securityPkgs[pkg] = true
			}
			if ts.Name.IsExported() {
				if s.typePkgs[ts.Name.Name] == nil {
					s.typePkgs[ts.Name.Name] = map[string]bool{}
				}
				s.typePkgs[ts.Name.Name][pkg] = true
			}
		}
	case token.CONST, token.VAR:
		ast.Inspect(d, func(n ast.Node) bool {
			if bl, ok := n.(*ast.BasicLit); ok && bl.Kind == token.INT && bl.Value == "11542" {
				s.formatPkgs[pkg] = true
			}
			return true
		})
	}
}

// isTRun reports whether call is X.Run("name" or expr, func(t *testing.T) {...}).
func isTRun(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "Run" || len(call.Args) != 2 {
		return false
	}
	fl, ok := call.Args[1].(*ast.FuncLit)
	if !ok || fl.Type.Params == nil || len(fl.Type.Params.List) != 1 {
		return false
	}
	return isTestingT(fl.Type.Params.List[0].Type)
}

func isTestingT(e ast.Expr) bool {
	st, ok := e.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := st.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == "testing" && sel.Sel.Name == "T"
}

func isTestFunc(fd *ast.FuncDecl) bool {
	if fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "Test") || fd.Name.Name == "TestMain" {
		return false
	}
	p := fd.Type.Params
	return p != nil && len(p.List) == 1 && isTestingT(p.List[0].Type)
}

func (s *stats) scanTest(pkg string, f *ast.File) {
	ast.Inspect(f, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok && isTRun(call) {
			s.tRuns++
			s.tRunsByPkg[pkg]++
		}
		return true
	})
	fileTables := map[string]bool{}
	for _, decl := range f.Decls {
		if gd, ok := decl.(*ast.GenDecl); ok && gd.Tok == token.VAR {
			for name := range tableVars(gd) {
				fileTables[name] = true
			}
		}
	}
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		if isTestFunc(fd) {
			s.tests++
			s.testsByPkg[pkg]++
		}
		tables := tableVars(fd.Body)
		for name := range fileTables {
			tables[name] = true
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			rs, ok := n.(*ast.RangeStmt)
			if !ok || !reportsDirectly(rs.Body) {
				return true
			}
			switch {
			case isTable(rs.X, tables):
				s.plainLoops = append(s.plainLoops, s.position(rs.Pos())+" "+fd.Name.Name)
				s.loopsByPkg[pkg]++
			case isValueList(rs.X):
				s.valueLoops = append(s.valueLoops, s.position(rs.Pos())+" "+fd.Name.Name)
			}
			return true
		})
	}
}

// tableVars returns the names declared in n (a function body or a
// top-level var declaration) as slices, arrays or maps of struct literals (x := []struct{...}{...},
// var x = ..., or a named struct element type written as []T{{...}}).
func tableVars(n ast.Node) map[string]bool {
	m := map[string]bool{}
	ast.Inspect(n, func(n ast.Node) bool {
		switch st := n.(type) {
		case *ast.AssignStmt:
			for i, rhs := range st.Rhs {
				if i < len(st.Lhs) && isTableLit(rhs) {
					if id, ok := st.Lhs[i].(*ast.Ident); ok {
						m[id.Name] = true
					}
				}
			}
		case *ast.ValueSpec:
			for i, v := range st.Values {
				if i < len(st.Names) && isTableLit(v) {
					m[st.Names[i].Name] = true
				}
			}
		}
		return true
	})
	return m
}

func isTable(x ast.Expr, tables map[string]bool) bool {
	if id, ok := x.(*ast.Ident); ok {
		return tables[id.Name]
	}
	return isTableLit(x)
}

// isTableLit reports whether e is a slice, array or map literal whose
// elements are struct literals (written out or elided: []T{{...}}).
func isTableLit(e ast.Expr) bool {
	cl, ok := e.(*ast.CompositeLit)
	if !ok || len(cl.Elts) == 0 {
		return false
	}
	var elt ast.Expr
	switch t := cl.Type.(type) {
	case *ast.ArrayType:
		elt = t.Elt
	case *ast.MapType:
		elt = t.Value
	default:
		return false
	}
	if _, ok := elt.(*ast.StructType); ok {
		return true
	}
	// A named element type: a table when its elements are keyed literals.
	first := cl.Elts[0]
	if kv, ok := first.(*ast.KeyValueExpr); ok {
		first = kv.Value
	}
	inner, ok := first.(*ast.CompositeLit)
	if !ok || len(inner.Elts) == 0 {
		return false
	}
	_, keyed := inner.Elts[0].(*ast.KeyValueExpr)
	return keyed || len(inner.Elts) > 1
}

// isValueList reports whether e is a slice, array or map literal of two or
// more elements that are not struct literals: a list of inputs
// ([]string{"a", "b"}) or a map of input to expectation.
func isValueList(e ast.Expr) bool {
	cl, ok := e.(*ast.CompositeLit)
	if !ok || len(cl.Elts) < 2 {
		return false
	}
	switch cl.Type.(type) {
	case *ast.ArrayType, *ast.MapType:
		return !isTableLit(e)
	}
	return false
}

// reportsDirectly reports whether body calls t.Error, t.Errorf, t.Fatal or
// t.Fatalf outside any t.Run.
func reportsDirectly(body *ast.BlockStmt) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if found {
			return false
		}
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if isTRun(call) {
			return false
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "t" {
				switch sel.Sel.Name {
				case "Error", "Errorf", "Fatal", "Fatalf":
					found = true
					return false
				}
			}
		}
		return true
	})
	return found
}

func (s *stats) print(w io.Writer, verbose bool) {
	fmt.Fprintf(w, "files: %d product, %d test; %d product functions\n", s.productFiles, s.testFiles, s.productFuncs)

	fmt.Fprintf(w, "functions over %d lines (product): %d\n", s.maxLines, len(s.longFuncs))
	if verbose {
		sort.Slice(s.longFuncs, func(i, j int) bool { return s.longFuncs[i].lines > s.longFuncs[j].lines })
		for _, f := range s.longFuncs {
			fmt.Fprintf(w, "  %4d lines  %s  (%s)\n", f.lines, f.name, f.pos)
		}
	}
	fmt.Fprintf(w, "functions with >= %d parameters (product): %d\n", s.maxParams, len(s.manyParams))
	if verbose {
		sort.Slice(s.manyParams, func(i, j int) bool { return s.manyParams[i].params > s.manyParams[j].params })
		for _, f := range s.manyParams {
			fmt.Fprintf(w, "  %2d params  %s  (%s)\n", f.params, f.name, f.pos)
		}
	}

	fmt.Fprintf(w, "packages defining the content-format numbers: %d %v\n", len(s.formatPkgs), sortedKeys(s.formatPkgs))
	fmt.Fprintf(w, "packages declaring a type Security: %d %v\n", len(s.securityPkgs), sortedKeys(s.securityPkgs))
	var dup []string
	for name, pkgs := range s.typePkgs {
		if len(pkgs) > 1 {
			dup = append(dup, name)
		}
	}
	sort.Strings(dup)
	fmt.Fprintf(w, "exported type names declared in more than one package: %d\n", len(dup))
	if verbose {
		for _, name := range dup {
			fmt.Fprintf(w, "  %s: %v\n", name, sortedKeys(s.typePkgs[name]))
		}
	}

	fmt.Fprintf(w, "doc links [Name] in product comments: %d\n", s.docLinks)
	fmt.Fprintf(w, "package docs: %d; with a # Usage section: %d; with a # Design section: %d\n",
		len(s.pkgDocs), len(s.usageDocs), len(s.designDocs))
	fmt.Fprintf(w, "unresolved [Name] links in package docs: %d\n", len(s.badLinks))
	for _, l := range s.badLinks {
		fmt.Fprintf(w, "  %s\n", l)
	}
	if verbose {
		for _, p := range sortedKeys(s.pkgDocs) {
			if !s.usageDocs[p] || !s.designDocs[p] {
				fmt.Fprintf(w, "  package doc without # Usage or # Design: %s\n", p)
			}
		}
	}
	fmt.Fprintf(w, "Test functions: %d; t.Run calls: %d; table loops without t.Run: %d; value-list loops without t.Run: %d\n",
		s.tests, s.tRuns, len(s.plainLoops), len(s.valueLoops))
	if verbose {
		pkgs := sortedKeys(s.loopsByPkg)
		sort.Slice(pkgs, func(i, j int) bool {
			if s.loopsByPkg[pkgs[i]] != s.loopsByPkg[pkgs[j]] {
				return s.loopsByPkg[pkgs[i]] > s.loopsByPkg[pkgs[j]]
			}
			return pkgs[i] < pkgs[j]
		})
		for _, p := range pkgs {
			fmt.Fprintf(w, "  %-40s %3d loops without t.Run, %3d t.Run, %3d tests\n", p, s.loopsByPkg[p], s.tRunsByPkg[p], s.testsByPkg[p])
		}
		for _, l := range s.plainLoops {
			fmt.Fprintf(w, "  loop %s\n", l)
		}
		for _, l := range s.valueLoops {
			fmt.Fprintf(w, "  value-list loop %s\n", l)
		}
	}
}
