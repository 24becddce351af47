package main

import (
	"bytes"
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
var releaseKinds = map[string]struct{ field, release, input string }{
	"module": {"module", "#ModuleRelease", "#module"},
	"bundle": {"bundle", "#BundleRelease", "#bundle"},
}

type renderRequest struct {
	Dir         string   `json:"dir"`  // the package directory, absolute
	Root        string   `json:"root"` // the module root, absolute
	Cwd         string   `json:"cwd"`
	CacheDir    string   `json:"cache_dir"`
	Tags        []string `json:"tags"`
	Kind        string   `json:"kind"`      // "module" or "bundle"
	Name        string   `json:"name"`      // release name; default: metadata.name
	Namespace   string   `json:"namespace"` // release namespace
	ValuesFiles []string `json:"values_files"`
}

type renderedObject struct {
	APIVersion string `json:"api_version"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	JSON       string `json:"json"` // indented by two spaces, one level deep
	YAML       string `json:"yaml"`
}

type renderResult struct {
	Package string           `json:"package"`
	Name    string           `json:"name"`
	Objects []renderedObject `json:"objects"`
}

// opRender loads the package at Dir, binds its `module` (or `bundle`) to a
// core release with the given name, namespace and values files (unified in
// order) and returns the release's Kubernetes objects. It is the same as
//
//	release: core.#ModuleRelease & {#module: module, metadata: {...}, values: ...}
//
// exported with `cue export -e release.objects`.
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
		// Positions in the release expression opm compiles name no file.
		for i, d := range diags {
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
	cfg := &load.Config{
		Dir:      req.Dir,
		Tags:     req.Tags,
		Registry: newCacheRegistry(req.CacheDir),
		Env:      []string{},
	}
	inst := load.Instances([]string{"."}, cfg)[0]
	if inst.Err != nil {
		return nil, invalid(inst.Err)
	}
	pkg := ctx.BuildInstance(inst)
	if err := pkg.Validate(); err != nil {
		return nil, invalid(err)
	}
	input := pkg.LookupPath(cue.ParsePath(kind.field))
	if !input.Exists() {
		return nil, &callError{Kind: kindUsage, Message: fmt.Sprintf(
			"package %s has no `%s` field: an OPM %s declares `%s: core.%s & {...}`",
			inst.ImportPath, kind.field, req.Kind, kind.field, strings.TrimSuffix(kind.release, "Release"))}
	}
	core := findImport(inst, map[*build.Instance]bool{})
	if core == nil {
		return nil, &callError{Kind: kindUsage, Message: fmt.Sprintf(
			"package %s does not import %s@%s, directly or through a dependency", inst.ImportPath, corePath, coreMajor)}
	}

	// The release is written as `release: core.#...Release & {...}` so that
	// errors read `release.values.x`, as they would in a user's own file.
	scope := ctx.CompileString("{}").
		FillPath(cue.ParsePath("Release"), ctx.BuildInstance(core).LookupPath(cue.ParsePath(kind.release))).
		FillPath(cue.ParsePath("Input"), input)
	release := ctx.CompileString(fmt.Sprintf("release: Release & {%s: Input}", kind.input), cue.Scope(scope)).
		LookupPath(cue.ParsePath("release"))
	name := req.Name
	if name == "" {
		name, _ = input.LookupPath(cue.ParsePath("metadata.name")).String()
	}
	release = release.FillPath(cue.ParsePath("metadata.name"), name)
	release = release.FillPath(cue.ParsePath("metadata.namespace"), req.Namespace)
	for _, file := range req.ValuesFiles {
		values, err := loadValues(ctx, file)
		if err != nil {
			return nil, err
		}
		release = release.FillPath(cue.ParsePath("values"), values)
	}
	// Values first: a value that does not fit the schema shows up again in
	// everything computed from it; its own error is the one to read.
	if err := release.LookupPath(cue.ParsePath("values")).Validate(cue.Concrete(true)); err != nil {
		return nil, invalid(err)
	}
	if err := release.Validate(cue.Concrete(true)); err != nil {
		return nil, invalid(err)
	}

	result := renderResult{Package: inst.ImportPath, Name: name, Objects: []renderedObject{}}
	iter, err := release.LookupPath(cue.ParsePath("objects")).List()
	if err != nil {
		return nil, invalid(err)
	}
	for iter.Next() {
		obj, err := encodeObject(iter.Value())
		if err != nil {
			return nil, invalid(err)
		}
		result.Objects = append(result.Objects, obj)
	}
	return result, nil
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

// loadValues reads a values file: CUE, YAML or JSON, by extension.
func loadValues(ctx *cue.Context, file string) (cue.Value, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return cue.Value{}, &callError{Kind: kindIO, Message: fmt.Sprintf("cannot read values file: %v", err)}
	}
	var v cue.Value
	switch strings.ToLower(filepath.Ext(file)) {
	case ".cue":
		v = ctx.CompileBytes(data, cue.Filename(file))
	case ".yaml", ".yml":
		f, err := yaml.Extract(file, data)
		if err != nil {
			return cue.Value{}, &callError{Kind: kindInvalid, Message: "invalid values file", Errors: diagnostics(err, "", "")}
		}
		v = ctx.BuildFile(f)
	case ".json":
		expr, err := json.Extract(file, data)
		if err != nil {
			return cue.Value{}, &callError{Kind: kindInvalid, Message: "invalid values file", Errors: diagnostics(err, "", "")}
		}
		v = ctx.BuildExpr(expr)
	default:
		return cue.Value{}, &callError{Kind: kindUsage, Message: fmt.Sprintf(
			"values file %s: unknown format; use .cue, .yaml, .yml or .json", file)}
	}
	if err := v.Err(); err != nil {
		return cue.Value{}, &callError{Kind: kindInvalid, Message: "invalid values file", Errors: diagnostics(err, "", "")}
	}
	return v, nil
}

func encodeObject(v cue.Value) (renderedObject, error) {
	str := func(path string) string {
		s, _ := v.LookupPath(cue.ParsePath(path)).String()
		return s
	}
	raw, err := v.MarshalJSON()
	if err != nil {
		return renderedObject{}, err
	}
	var indented bytes.Buffer
	if err := encjson.Indent(&indented, raw, "  ", "  "); err != nil {
		return renderedObject{}, err
	}
	y, err := yaml.Encode(v)
	if err != nil {
		return renderedObject{}, err
	}
	return renderedObject{
		APIVersion: str("apiVersion"),
		Kind:       str("kind"),
		Namespace:  str("metadata.namespace"),
		Name:       str("metadata.name"),
		JSON:       indented.String(),
		YAML:       string(y),
	}, nil
}
