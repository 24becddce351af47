package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/scanner"
	"cuelang.org/go/cue/token"
)

// What `cue mod tidy` reads of CUE files: package names, build attributes
// and imports (cuelang.org/go/internal/mod/modimports and buildattr, which
// are internal to cue, rewritten here over the public parser). Rust does
// the module resolution on top.

type sourceFile struct {
	path   string
	syntax *ast.File
}

// readImportsOnly parses the file's header (attributes, package clause,
// imports), reading no more of the file than it needs, as cue's own
// reader does: a 20 MB data file costs its first 64 KiB. A file that does
// not parse at all is an error; one that parses partly is used as far as
// it goes.
func readImportsOnly(path string) (*ast.File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var data []byte
	for want := 64 << 10; ; want *= 2 {
		chunk := make([]byte, want-len(data))
		n, err := io.ReadFull(fh, chunk)
		data = append(data, chunk[:n]...)
		whole := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !whole {
			return nil, err
		}
		f, err := parser.ParseFile(path, data, parser.ImportsOnly)
		switch {
		case whole && f == nil:
			return nil, err
		case whole || f != nil && headerEnds(f, data):
			return f, nil
		}
	}
}

// headerEnds says whether what was read holds the whole header that f
// parsed: after its last declaration comes a token that cannot continue
// a header and that ends before the data do (so it was not cut).
func headerEnds(f *ast.File, data []byte) bool {
	from := 0
	if n := len(f.Decls); n > 0 {
		from = f.Decls[n-1].End().Offset()
	}
	if from <= 0 || from > len(data) {
		from = 0
	}
	rest := data[from:]
	file := token.NewFile("", -1, len(rest))
	var s scanner.Scanner
	s.Init(file, rest, nil, scanner.ScanComments)
	for {
		pos, tok, lit := s.Scan()
		switch {
		case tok == token.COMMENT || tok == token.COMMA:
			continue
		case tok == token.EOF || tok == token.ILLEGAL || tok == token.ATTRIBUTE:
			return false
		case tok == token.IDENT && (lit == "import" || lit == "package"):
			return false
		}
		if lit == "" {
			lit = tok.String()
		}
		return file.Offset(pos)+len(lit) < len(rest)
	}
}

func isHidden(name string) bool { return name == "" || name[0] == '.' || name[0] == '_' }

// canonicalImports returns the canonical import paths of the files.
func canonicalImports(files []sourceFile) ([]string, error) {
	seen := map[string]bool{}
	for _, f := range files {
		for spec := range f.syntax.ImportSpecs() {
			p, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return nil, fmt.Errorf("invalid import path %s in %s", spec.Path.Value, f.path)
			}
			seen[ast.ParseImportPath(p).Canonical().String()] = true
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

// buildAttr returns whether the file has @ignore() and its @if attribute,
// both of which come before the package clause.
func buildAttr(f *ast.File) (ignore bool, attr *ast.Attribute, err error) {
	for _, d := range f.Decls {
		switch x := d.(type) {
		case *ast.Attribute:
			switch key, _ := x.Split(); key {
			case "ignore":
				return true, x, nil
			case "if":
				if attr != nil {
					return false, attr, fmt.Errorf("multiple @if attributes")
				}
				attr = x
			}
		case *ast.Package:
			return false, attr, nil
		case *ast.CommentGroup:
		default:
			return false, attr, nil
		}
	}
	return false, attr, nil
}

// evalBuildExpr evaluates an @if expression with every tag unset.
func evalBuildExpr(expr ast.Expr) (bool, error) {
	switch x := expr.(type) {
	case *ast.Ident:
		return false, nil
	case *ast.ParenExpr:
		return evalBuildExpr(x.X)
	case *ast.BinaryExpr:
		if x.Op != token.LAND && x.Op != token.LOR {
			return false, fmt.Errorf("invalid operator %v in build attribute", x.Op)
		}
		a, err := evalBuildExpr(x.X)
		if err != nil {
			return false, err
		}
		b, err := evalBuildExpr(x.Y)
		if err != nil {
			return false, err
		}
		if x.Op == token.LAND {
			return a && b, nil
		}
		return a || b, nil
	case *ast.UnaryExpr:
		if x.Op != token.NOT {
			return false, fmt.Errorf("invalid operator %v in build attribute", x.Op)
		}
		v, err := evalBuildExpr(x.X)
		return !v, err
	}
	return false, fmt.Errorf("invalid build attribute expression")
}

type mainImportsRequest struct {
	// The main module's CUE sources, as opm walks them (cue's
	// modimports.AllModuleFiles rules).
	Files []string `json:"files"`
}

// opImportsMain lists the imports of the main module's files that tidy
// starts from, leaving out files marked @ignore(). Build tags are not
// evaluated.
func opImportsMain(body []byte) (any, error) {
	var req mainImportsRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	var files []sourceFile
	for _, p := range req.Files {
		f, err := readImportsOnly(p)
		if err != nil {
			return nil, &callError{Kind: kindInvalid, Message: fmt.Sprintf("cannot read %q: %v", p, err)}
		}
		if ignore, _, _ := buildAttr(f); !ignore {
			files = append(files, sourceFile{p, f})
		}
	}
	imports, err := canonicalImports(files)
	if err != nil {
		return nil, &callError{Kind: kindInvalid, Message: message(err)}
	}
	return imports, nil
}

type packageImportsRequest struct {
	Dir       string `json:"dir"`
	Qualifier string `json:"qualifier"`
	Main      bool   `json:"main"` // the package is in the main module
}

type packageImports struct {
	Included int      `json:"included"`
	Excluded int      `json:"excluded"`
	Imports  []string `json:"imports"`
}

// opImportsPackage reads the files of the package named Qualifier in Dir,
// with the files of the same package in parent directories up to the
// module root, as cue's module loader does, and lists their imports.
// Outside the main module, _test and _tool files and files whose @if is
// false with every tag unset are left out.
func opImportsPackage(body []byte) (any, error) {
	var req packageImportsRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	var included []sourceFile
	excluded := 0
	consider := func(p string, f *ast.File) {
		ignore, attr, err := buildAttr(f)
		ok := !ignore && err == nil
		if ok && !req.Main {
			name := filepath.Base(p)
			ok = !strings.HasSuffix(name, "_tool.cue") && !strings.HasSuffix(name, "_test.cue")
			if ok && attr != nil {
				_, expr := attr.Split()
				e, perr := parser.ParseExpr("", expr)
				ok = perr == nil
				if ok {
					ok, err = evalBuildExpr(e)
					ok = ok && err == nil
				}
			}
		}
		if ok {
			included = append(included, sourceFile{p, f})
		} else {
			excluded++
		}
	}

	dir := filepath.Clean(req.Dir)
	inCUEMod := slices.Contains(strings.Split(filepath.ToSlash(dir), "/"), "cue.mod")
	selected := func(pkg string) bool { return pkg == req.Qualifier }
	// Package names found so far; parents are searched for them, up to the
	// module root, even past a directory without any.
	matched := map[string]bool{}
	for {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		atRoot := false
		for _, e := range entries {
			if e.Name() == "cue.mod" {
				atRoot = true
			}
			if e.IsDir() || isHidden(e.Name()) || !strings.HasSuffix(e.Name(), ".cue") {
				continue
			}
			p := filepath.Join(dir, e.Name())
			f, err := readImportsOnly(p)
			if err != nil {
				return nil, &callError{Kind: kindInvalid, Message: message(err)}
			}
			if !selected(f.PackageName()) {
				continue
			}
			matched[f.PackageName()] = true
			consider(p, f)
		}
		if atRoot || inCUEMod || len(matched) == 0 {
			break
		}
		selected = func(pkg string) bool { return matched[pkg] }
		parent := filepath.Dir(dir)
		if len(parent) >= len(dir) {
			break
		}
		dir = parent
	}
	imports, err := canonicalImports(included)
	if err != nil {
		return nil, &callError{Kind: kindInvalid, Message: message(err)}
	}
	return packageImports{Included: len(included), Excluded: excluded, Imports: imports}, nil
}

type importSpecsRequest struct {
	File string `json:"file"`
}

type importSpec struct {
	Path  string `json:"path"`  // as written, unquoted
	Start int    `json:"start"` // byte offsets of the quoted literal
	End   int    `json:"end"`
}

// opImportSpecs lists a file's import declarations with the byte range of
// each path literal, so that a caller can rewrite exactly those.
func opImportSpecs(body []byte) (any, error) {
	var req importSpecsRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	f, err := readImportsOnly(req.File)
	if err != nil {
		return nil, &callError{Kind: kindInvalid, Message: err.Error(), Errors: diagnostics(err, "", "")}
	}
	specs := []importSpec{}
	for spec := range f.ImportSpecs() {
		p, err := strconv.Unquote(spec.Path.Value)
		if err != nil {
			continue
		}
		start := spec.Path.Pos().Offset()
		specs = append(specs, importSpec{Path: p, Start: start, End: start + len(spec.Path.Value)})
	}
	return specs, nil
}
