package main

import (
	"bytes"
	"strconv"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/parser"
	encjson "encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/encoding/json"
	"cuelang.org/go/encoding/yaml"
	"cuelang.org/go/mod/module"
)

// The core model every OPM module and bundle is written against.
const corePath, coreMajor = "opmodel.dev/core", "v0"

// What a package exposes, and the core definition that releases it.
type releaseKind struct{ field, release, input string }

var releaseKinds = map[string]releaseKind{
	"module": {"module", "#ModuleRelease", "#module"},
	"bundle": {"bundle", "#BundleRelease", "#bundle"},
}

type renderRequest struct {
	Dir         string   `json:"dir"` // the package directory, absolute
	Cwd         string   `json:"cwd"`
	CacheDir    string   `json:"cache_dir"`
	Tags        []string `json:"tags"`
	Kind        string   `json:"kind"`      // "module" or "bundle"
	Name        string   `json:"name"`      // release name; default: metadata.name
	Namespace   string   `json:"namespace"` // release namespace
	ValuesFiles []string `json:"values_files"`
	Encoding    string   `json:"encoding"` // "yaml" or "json"
}

type renderedObject struct {
	APIVersion string `json:"api_version"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	// YAML as `cue export --out yaml` writes it, or JSON indented as an
	// element of a top-level list.
	Text string `json:"text"`
}

type renderResult struct {
	Package string           `json:"package"`
	Name    string           `json:"name"`
	Objects []renderedObject `json:"objects"`
	// The release's modules, for the provenance of what is delivered.
	Modules []releaseModule `json:"modules"`
}

// releaseModule is what a module's metadata says of it: its name (the
// part-of label of its objects), where it comes from (usually its CUE
// module path) and its version.
type releaseModule struct {
	Name       string `json:"name"`
	APIVersion string `json:"api_version"`
	Version    string `json:"version"`
}

// opRender loads the package at Dir, binds its `module` (or `bundle`) to a
// core release with the given name, namespace and values files (unified in
// order) and returns the release's Kubernetes objects. It is the same as
// adding
//
//	release: core.#ModuleRelease & {#module: module, metadata: {...}, values: ...}
//
// to the package and running `cue export -e release.objects`.
func opRender(body []byte) (any, error) {
	var req renderRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	kind, ok := releaseKinds[req.Kind]
	if !ok {
		return nil, &callError{Kind: kindInternal, Message: "unknown release kind " + req.Kind}
	}
	invalid := func(err error) error {
		diags := diagnostics(err, "", req.Cwd)
		// The release file has no name: its positions mean nothing to a
		// user, and its field reads as `release`, as in a user's own file.
		for i, d := range diags {
			diags[i].Message = strings.ReplaceAll(d.Message, releaseField+".", "release.")
			kept := d.Positions[:0]
			for _, p := range d.Positions {
				if p.File != "" {
					kept = append(kept, p)
				}
			}
			diags[i].Positions = kept
		}
		return &callError{Kind: kindInvalid, Message: "the release is invalid", Errors: diags}
	}

	ctx := cuecontext.New()
	inst := loadPackage(req.Dir, req.CacheDir, req.Tags)
	if inst.Err != nil {
		return nil, invalid(inst.Err)
	}
	if !declares(inst, kind.field) {
		return nil, &callError{Kind: kindUsage, Message: fmt.Sprintf(
			"package %s has no `%s` field: an OPM %s declares `%s: core.%s & {...}`",
			inst.ImportPath, kind.field, req.Kind, kind.field, strings.TrimSuffix(kind.release, "Release"))}
	}
	core := findImport(inst, map[*build.Instance]bool{})
	if core == nil {
		return nil, &callError{Kind: kindUsage, Message: fmt.Sprintf(
			"package %s does not import %s@%s, directly or through a dependency", inst.ImportPath, corePath, coreMajor)}
	}
	if inst.LookupImport(core.ImportPath) == nil {
		inst.Imports = append(inst.Imports, core) // reached only through a dependency
	}

	// The release is one more file of the package, as a user would write it
	// for `cue export -e release.objects`, so CUE evaluates the package once.
	// Values files become fields of it, keeping their own positions.
	release, err := releaseFile(inst, core, kind, req)
	if err != nil {
		return nil, err
	}
	if err := inst.AddSyntax(release); err != nil {
		return nil, invalid(err)
	}
	pkg := ctx.BuildInstance(inst)
	rel := pkg.LookupPath(cue.MakePath(cue.Hid(releaseField, inst.ID())))
	// Values first: a value that does not fit shows up again in everything
	// computed from it, and its own error is the one to read. Then, as
	// `cue export` does, the package must be valid and the exported objects
	// concrete.
	if err := rel.LookupPath(cue.ParsePath("values")).Validate(cue.Concrete(true)); err != nil {
		return nil, invalid(err)
	}
	if err := pkg.Validate(); err != nil {
		return nil, invalid(err)
	}
	objects := rel.LookupPath(cue.ParsePath("objects"))
	if err := objects.Validate(cue.Concrete(true)); err != nil {
		return nil, invalid(err)
	}
	name, _ := rel.LookupPath(cue.ParsePath("metadata.name")).String()

	result := renderResult{Package: inst.ImportPath, Name: name, Objects: []renderedObject{}}
	iter, err := objects.List()
	if err != nil {
		return nil, invalid(err)
	}
	var sources []source
	for iter.Next() {
		obj, err := encodeObject(iter.Value(), req.Encoding)
		if err != nil {
			return nil, invalid(err)
		}
		result.Objects = append(result.Objects, obj)
		sources = append(sources, sourceOf(iter.Value()))
	}
	if err := checkObjects(result.Objects, sources, releaseComponents(rel, req.Kind)); err != nil {
		return nil, err
	}
	for _, m := range releaseModules(rel, req.Kind) {
		field := func(path string) string {
			s, _ := m.LookupPath(cue.ParsePath(path)).String()
			return s
		}
		result.Modules = append(result.Modules, releaseModule{field("metadata.name"), field("metadata.apiVersion"), field("metadata.version")})
	}
	return result, nil
}

// source is where an object comes from: the core model's transformers
// label each one with its module (part-of) and component.
type source struct{ module, component string }

func (s source) String() string {
	return fmt.Sprintf("component %s of module %s", s.component, s.module)
}

func sourceOf(v cue.Value) source {
	label := func(name string) string {
		s, _ := v.LookupPath(cue.MakePath(cue.Str("metadata"), cue.Str("labels"), cue.Str(name))).String()
		return s
	}
	return source{module: label("app.kubernetes.io/part-of"), component: label("app.kubernetes.io/component")}
}

// releaseModules lists the compiled modules of a release.
func releaseModules(rel cue.Value, kind string) []cue.Value {
	if kind != "bundle" {
		return []cue.Value{rel.LookupPath(cue.ParsePath("compiled"))}
	}
	var modules []cue.Value
	iter, err := rel.LookupPath(cue.ParsePath("modules")).Fields()
	for err == nil && iter.Next() {
		modules = append(modules, iter.Value())
	}
	return modules
}

// releaseComponents lists every component of the release's modules.
func releaseComponents(rel cue.Value, kind string) []source {
	var out []source
	for _, m := range releaseModules(rel, kind) {
		name, _ := m.LookupPath(cue.ParsePath("metadata.name")).String()
		iter, err := m.LookupPath(cue.ParsePath("components")).Fields()
		for err == nil && iter.Next() {
			out = append(out, source{module: name, component: iter.Selector().Unquoted()})
		}
	}
	return out
}

// checkObjects refuses a release that Kubernetes would not take as
// rendered: an object rendered twice (whichever were applied second would
// win), or a component that no transformer turns into anything.
func checkObjects(objects []renderedObject, sources []source, components []source) error {
	seen := map[[4]string]int{}
	for i, o := range objects {
		key := [4]string{o.APIVersion, o.Kind, o.Namespace, o.Name}
		if j, ok := seen[key]; ok {
			at := o.Name
			if o.Namespace != "" {
				at = o.Namespace + "/" + o.Name
			}
			return &callError{Kind: kindInvalid, Message: fmt.Sprintf(
				"%s %s (%s) is rendered twice, by %s and by %s: give one of them another name", o.Kind, at, o.APIVersion, sources[j], sources[i])}
		}
		seen[key] = i
	}
	rendered := map[source]bool{}
	for _, s := range sources {
		rendered[s] = true
	}
	for _, c := range components {
		if !rendered[c] {
			return &callError{Kind: kindInvalid, Message: fmt.Sprintf(
				"%s renders nothing: no transformer of the core model matches its resources, traits and labels (a Container needs a workload-type label)", c)}
		}
	}
	return nil
}

// The hidden field of the release file; errors name it `release`.
const releaseField = "_opm_release"

// declares reports whether a file of the package declares a top-level field.
func declares(inst *build.Instance, field string) bool {
	for _, f := range inst.Files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.Field); ok {
				if name, _, _ := ast.LabelName(fd.Label); name == field {
					return true
				}
			}
		}
	}
	return false
}

// releaseFile is the file opm adds to the package:
//
//	_opm_release: core.#ModuleRelease & {#module: module, metadata: {...}}
//	_opm_release: values: <values file 1>
//	...
func releaseFile(inst *build.Instance, core *build.Instance, kind releaseKind, req renderRequest) (*ast.File, error) {
	name := kind.field + ".metadata.name"
	if req.Name != "" {
		name = strconv.Quote(req.Name)
	}
	src := fmt.Sprintf("package %s\n\nimport opmcore %s\n\n%s: opmcore.%s & {%s: %s, metadata: {name: %s, namespace: %s}}\n",
		inst.PkgName, strconv.Quote(core.ImportPath), releaseField, kind.release, kind.input, kind.field, name, strconv.Quote(req.Namespace))
	file, err := parser.ParseFile("", src)
	if err != nil {
		return nil, err
	}
	for _, path := range req.ValuesFiles {
		values, err := loadValues(path)
		if err != nil {
			return nil, err
		}
		file.Decls = append(file.Decls, &ast.Field{
			Label: ast.NewIdent(releaseField),
			Value: ast.NewStruct(&ast.Field{Label: ast.NewIdent("values"), Value: values}),
		})
	}
	return file, nil
}

// findImport finds the core package among the (transitive) imports of inst.
func findImport(inst *build.Instance, seen map[*build.Instance]bool) *build.Instance {
	for _, imp := range inst.Imports {
		if seen[imp] {
			continue
		}
		seen[imp] = true
		ip := module.ParseImportPath(imp.ImportPath)
		if ip.Path == corePath && (ip.Version == "" || ip.Version == coreMajor) && ip.Qualifier == "core" {
			return imp
		}
		if found := findImport(imp, seen); found != nil {
			return found
		}
	}
	return nil
}

// loadValues parses a values file (CUE, YAML or JSON, by extension) into
// an expression that keeps the file's positions.
func loadValues(file string) (ast.Expr, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &callError{Kind: kindIO, Message: fmt.Sprintf("cannot read values file: %v", err)}
	}
	bad := func(err error) error {
		return &callError{Kind: kindInvalid, Message: "invalid values file " + file, Errors: diagnostics(err, "", "")}
	}
	switch strings.ToLower(filepath.Ext(file)) {
	case ".cue":
		f, err := parser.ParseFile(file, data)
		if err != nil {
			return nil, bad(err)
		}
		var decls []ast.Decl
		for _, d := range f.Decls {
			switch d.(type) {
			case *ast.Package:
			case *ast.ImportDecl:
				return nil, &callError{Kind: kindUsage, Message: "values file " + file + " imports packages: a values file holds data only"}
			default:
				decls = append(decls, d)
			}
		}
		return &ast.StructLit{Elts: decls}, nil
	case ".yaml", ".yml":
		f, err := yaml.Extract(file, data)
		if err != nil {
			return nil, bad(err)
		}
		return &ast.StructLit{Elts: f.Decls}, nil
	case ".json":
		expr, err := json.Extract(file, data)
		if err != nil {
			return nil, bad(err)
		}
		return expr, nil
	}
	return nil, &callError{Kind: kindUsage, Message: fmt.Sprintf(
		"values file %s: unknown format; use .cue, .yaml, .yml or .json", file)}
}

func encodeObject(v cue.Value, encoding string) (renderedObject, error) {
	str := func(path string) string {
		s, _ := v.LookupPath(cue.ParsePath(path)).String()
		return s
	}
	var text []byte
	if encoding == "json" {
		raw, err := v.MarshalJSON()
		if err != nil {
			return renderedObject{}, err
		}
		var indented bytes.Buffer
		if err := encjson.Indent(&indented, raw, "  ", "  "); err != nil {
			return renderedObject{}, err
		}
		text = indented.Bytes()
	} else {
		var err error
		if text, err = yaml.Encode(v); err != nil {
			return renderedObject{}, err
		}
	}
	return renderedObject{
		APIVersion: str("apiVersion"),
		Kind:       str("kind"),
		Namespace:  str("metadata.namespace"),
		Name:       str("metadata.name"),
		Text:       string(text),
	}, nil
}

type lookupRequest struct {
	Dir      string `json:"dir"` // the package directory, absolute
	CacheDir string `json:"cache_dir"`
	Path     string `json:"path"` // a CUE path, e.g. module.metadata.version
}

type lookupResult struct {
	Found bool   `json:"found"`
	Value string `json:"value"`
}

// opPackageLookup evaluates the package at Dir and returns the string at
// Path when it is a concrete string (found is false otherwise: a package
// that does not evaluate is vet's to report).
func opPackageLookup(body []byte) (any, error) {
	var req lookupRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	inst := loadPackage(req.Dir, req.CacheDir, nil)
	if inst.Err != nil {
		return lookupResult{}, nil
	}
	s, err := cuecontext.New().BuildInstance(inst).LookupPath(cue.ParsePath(req.Path)).String()
	if err != nil {
		return lookupResult{}, nil
	}
	return lookupResult{Found: true, Value: s}, nil
}

type exportRequest struct {
	Dir      string `json:"dir"` // the package directory, absolute
	Cwd      string `json:"cwd"`
	CacheDir string `json:"cache_dir"`
}

// opPackageExport evaluates the package at Dir as `cue export` does and
// returns its JSON: what a module without a release renders.
func opPackageExport(body []byte) (any, error) {
	var req exportRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	invalid := func(err error) error {
		return &callError{Kind: kindInvalid, Message: "the package does not export", Errors: diagnostics(err, "", req.Cwd)}
	}
	inst := loadPackage(req.Dir, req.CacheDir, nil)
	if inst.Err != nil {
		return nil, invalid(inst.Err)
	}
	v := cuecontext.New().BuildInstance(inst)
	if err := v.Validate(cue.Concrete(true)); err != nil {
		return nil, invalid(err)
	}
	data, err := v.MarshalJSON()
	if err != nil {
		return nil, invalid(err)
	}
	return encjson.RawMessage(data), nil
}

// loadPackage loads the package at dir (absolute), its dependencies from
// the CUE cache at cacheDir only, with no environment.
func loadPackage(dir, cacheDir string, tags []string) *build.Instance {
	cfg := &load.Config{Dir: dir, Tags: tags, Registry: newCacheRegistry(cacheDir), Env: []string{}}
	return load.Instances([]string{"."}, cfg)[0]
}
