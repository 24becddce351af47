package main

import (
	goerrors "errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/mod/modfile"
	"cuelang.org/go/mod/module"
)

func languageVersion() string { return cue.LanguageVersion() }

type modfileInitRequest struct {
	Module     string            `json:"module"`
	SourceKind string            `json:"source_kind"`
	Deps       map[string]string `json:"deps"` // module path with major -> version
}

type moduleCheckRequest struct {
	Path string `json:"path"`
}

// opModuleCheck checks a module path as cue checks one: with its major
// version (example.com/x@v1) or without (example.com/x, a routing or
// policy prefix).
func opModuleCheck(body []byte) (any, error) {
	var req moduleCheckRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	check := module.CheckPathWithoutVersion
	if _, _, ok := ast.SplitPackageVersion(req.Path); ok {
		check = module.CheckPath
	}
	if err := check(req.Path); err != nil {
		var invalid *module.InvalidPathError
		if goerrors.As(err, &invalid) {
			err = invalid.Err
		}
		return nil, &callError{Kind: kindUsage, Message: fmt.Sprintf("invalid module path %q: %v", req.Path, err)}
	}
	return struct{}{}, nil
}

type modfileInitResult struct {
	Content string `json:"content"`
}

// opModfileInit returns the module.cue that `cue mod init --source KIND PATH`
// writes: the checked path, the current language version, the source kind;
// plus the given dependencies, formatted as cue formats them.
func opModfileInit(body []byte) (any, error) {
	var req modfileInitRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := module.CheckPath(req.Module); err != nil {
		return nil, &callError{Kind: kindUsage, Message: message(err)}
	}
	mf := &modfile.File{
		Module:   req.Module,
		Language: &modfile.Language{Version: languageVersion()},
	}
	if req.SourceKind != "" {
		mf.Source = &modfile.Source{Kind: req.SourceKind}
		if err := mf.Source.Validate(); err != nil {
			return nil, &callError{Kind: kindUsage, Message: message(err)}
		}
	}
	for p, v := range req.Deps {
		if mf.Deps == nil {
			mf.Deps = map[string]*modfile.Dep{}
		}
		mf.Deps[p] = &modfile.Dep{Version: v}
	}
	data, err := modfile.Format(mf)
	if err != nil {
		return nil, err
	}
	return modfileInitResult{Content: string(data)}, nil
}

type modfileLoadRequest struct {
	Root string `json:"root"` // module root, absolute
}

// moduleFile is the one model of a module file that crosses to Rust.
type moduleFile struct {
	Module     string `json:"module"` // with its major version, e.g. example.com/x@v0
	Language   string `json:"language"`
	SourceKind string `json:"source_kind,omitempty"`
	Deps       []dep  `json:"deps"` // sorted as cue sorts them (modfile DepVersions)
	// Explicit default major versions by base path (default: true, and
	// the module's own path).
	Defaults map[string]string `json:"defaults"`
}

type dep struct {
	Path        string `json:"path"` // with its major version
	Version     string `json:"v"`
	Default     bool   `json:"default,omitempty"`
	ReplaceWith string `json:"replace_with,omitempty"` // cue.mod/local-module.cue
}

func describe(mf *modfile.File) moduleFile {
	info := moduleFile{Module: mf.QualifiedModule(), Deps: []dep{}, Defaults: mf.DefaultMajorVersions()}
	if mf.Language != nil {
		info.Language = mf.Language.Version
	}
	if mf.Source != nil {
		info.SourceKind = mf.Source.Kind
	}
	versions := map[string]module.Version{}
	for m, d := range mf.Deps {
		path := m
		v, err := module.NewVersion(m, d.Version)
		if err == nil {
			path = v.Path()
		}
		versions[path] = v
		info.Deps = append(info.Deps, dep{Path: path, Version: d.Version, Default: d.Default, ReplaceWith: d.ReplaceWith})
	}
	slices.SortFunc(info.Deps, func(a, b dep) int { return module.Version.Compare(versions[a.Path], versions[b.Path]) })
	return info
}

// opModfileLoad parses cue.mod/module.cue strictly, as cue does, and
// applies cue.mod/local-module.cue when present.
func opModfileLoad(body []byte) (any, error) {
	var req modfileLoadRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	path := filepath.Join(req.Root, "cue.mod", "module.cue")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	mf, err := modfile.Parse(data, path)
	if err != nil {
		return nil, &callError{Kind: kindInvalid, Message: "invalid cue.mod/module.cue", Errors: diagnostics(err, "", req.Root)}
	}
	localPath := filepath.Join(req.Root, "cue.mod", "local-module.cue")
	if local, err := os.ReadFile(localPath); err == nil {
		if mf, err = modfile.ParseLocal(local, localPath, mf); err != nil {
			return nil, &callError{Kind: kindInvalid, Message: "invalid cue.mod/module.cue", Errors: diagnostics(err, "", req.Root)}
		}
	} else if !goerrors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return describe(mf), nil
}

type modfileParseRequest struct {
	Data     string `json:"data"`
	Filename string `json:"filename"`
	// Strict is how cue reads a dependency's module.cue; the main module's
	// is read leniently (deps keys may lack their major version).
	Strict bool `json:"strict"`
	// Module, for a dependency's module file (strict): the module it must
	// declare; its parse is remembered (memo.go).
	Module string `json:"module"`
	// Declared reads only the module the file declares, as cue reads a
	// module file it does not resolve with (modfile.ParseLegacy, without
	// the module-file schema): what checking a download's identity needs.
	Declared bool `json:"declared"`
}

// opModfileParse parses a module file as cue's module loader does.
func opModfileParse(body []byte) (any, error) {
	var req modfileParseRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	parse := modfile.ParseNonStrict
	switch {
	case req.Declared:
		parse = modfile.ParseLegacy
	case req.Module != "":
		parse = func(data []byte, filename string) (*modfile.File, error) {
			return parseDependency(data, filename, req.Module)
		}
	case req.Strict:
		parse = modfile.Parse
	}
	mf, err := parse([]byte(req.Data), req.Filename)
	if err != nil {
		return nil, &callError{Kind: kindInvalid, Message: fmt.Sprintf("cannot parse module file %s: %s", req.Filename, message(err))}
	}
	if req.Declared {
		return struct {
			Module string `json:"module"`
		}{mf.QualifiedModule()}, nil
	}
	return describe(mf), nil
}

type modfileUpdateRequest struct {
	Data     string `json:"data"` // the current cue.mod/module.cue
	Filename string `json:"filename"`
	Deps     []struct {
		Path    string `json:"path"` // with its major version
		Version string `json:"v"`
		Default bool   `json:"default"`
	} `json:"deps"`
}

// opModfileUpdate returns module.cue with its deps replaced, written as
// `cue mod get` and `cue mod tidy` write it: the file is re-encoded from
// its parsed form (module, language, source, deps, custom), so comments
// and unknown fields go, as they do with cue.
func opModfileUpdate(body []byte) (any, error) {
	var req modfileUpdateRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	old, err := modfile.ParseNonStrict([]byte(req.Data), req.Filename)
	if err != nil {
		return nil, &callError{Kind: kindInvalid, Message: fmt.Sprintf("cannot parse module file %s: %s", req.Filename, message(err))}
	}
	mf := &modfile.File{
		Module:   old.Module,
		Language: old.Language,
		Source:   old.Source,
		Custom:   old.Custom,
		Deps:     map[string]*modfile.Dep{},
	}
	for _, d := range req.Deps {
		mf.Deps[d.Path] = &modfile.Dep{Version: d.Version, Default: d.Default}
	}
	data, err := modfile.Format(mf)
	if err != nil {
		return nil, &callError{Kind: kindInternal, Message: "formatting module.cue: " + err.Error()}
	}
	return modfileInitResult{Content: string(data)}, nil
}
