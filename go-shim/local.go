package main

import (
	"cmp"
	goerrors "errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"cuelang.org/go/mod/modfile"
)

// The two views cue's tidy resolves (internal/mod/modload/tidy.go): the
// published module.cue, and the main-module view of cue.mod/local-module.cue
// with module.cue's own replaceWith entries folded in.

type tidyViewsRequest struct {
	Root string `json:"root"`
}

type tidyViews struct {
	Module moduleFile `json:"module"` // module.cue, read leniently
	// The main-module view; nil when no replacement is left (then
	// local-module.cue, if any, has nothing to say).
	Local       *moduleFile `json:"local"`
	LocalExists bool        `json:"local_exists"`
}

func opTidyViews(body []byte) (any, error) {
	var req tidyViewsRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	modPath := filepath.Join(req.Root, "cue.mod", "module.cue")
	data, err := os.ReadFile(modPath)
	if err != nil {
		return nil, err
	}
	base, err := modfile.ParseNonStrict(data, modPath)
	if err != nil {
		return nil, &callError{Kind: kindInvalid, Message: fmt.Sprintf("cannot parse module file %s: %s", modPath, message(err))}
	}
	out := tidyViews{Module: describe(base)}
	var local *modfile.File
	localPath := filepath.Join(req.Root, "cue.mod", "local-module.cue")
	if data, err := os.ReadFile(localPath); err == nil {
		out.LocalExists = true
		if local, err = modfile.ParseLocal(data, "cue.mod/local-module.cue", base); err != nil {
			return nil, &callError{Kind: kindInvalid, Message: message(err)}
		}
	} else if !goerrors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cannot read cue.mod/local-module.cue: %v", err)
	}
	merged, err := mergeLocalReplaces(base, local)
	if err != nil {
		return nil, &callError{Kind: kindInvalid, Message: message(err)}
	}
	if merged != nil {
		d := describe(merged)
		out.Local = &d
	}
	return out, nil
}

// mergeLocalReplaces is cue's: local-module.cue's deps, and every
// module.cue dep with a replaceWith; nil when none has one.
func mergeLocalReplaces(base, local *modfile.File) (*modfile.File, error) {
	deps := map[string]*modfile.Dep{}
	if local != nil {
		for p, d := range local.Deps {
			d := *d
			deps[p] = &d
		}
	}
	for p, b := range base.Deps {
		if b.ReplaceWith == "" {
			continue
		}
		if d, ok := deps[p]; ok {
			d.ReplaceWith = cmp.Or(d.ReplaceWith, b.ReplaceWith)
			d.Version = cmp.Or(d.Version, b.Version)
			continue
		}
		d := *b
		deps[p] = &d
	}
	replaced := false
	for _, d := range deps {
		replaced = replaced || d.ReplaceWith != ""
	}
	if !replaced {
		return nil, nil
	}
	eff := &modfile.File{Module: base.Module, Language: base.Language, Source: base.Source, Custom: base.Custom, Deps: deps}
	if err := eff.InitNonStrict(); err != nil {
		return nil, err
	}
	return eff, nil
}

type formatLocalRequest struct {
	// The module.cue the local file goes with (as it will be written).
	Module string `json:"module"`
	Deps   []dep  `json:"deps"`
}

// opFormatLocal writes cue.mod/local-module.cue as cue's tidy does
// (modfile.FormatLocal: what equals module.cue is left out).
func opFormatLocal(body []byte) (any, error) {
	var req formatLocalRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	base, err := modfile.ParseNonStrict([]byte(req.Module), "cue.mod/module.cue")
	if err != nil {
		return nil, &callError{Kind: kindInternal, Message: "parsing the new module.cue: " + err.Error()}
	}
	local := &modfile.File{Module: base.Module, Language: base.Language, Deps: map[string]*modfile.Dep{}}
	for _, d := range req.Deps {
		local.Deps[d.Path] = &modfile.Dep{Version: d.Version, Default: d.Default, ReplaceWith: d.ReplaceWith}
	}
	data, err := modfile.FormatLocal(local, base)
	if err != nil {
		return nil, &callError{Kind: kindInternal, Message: "formatting local-module.cue: " + err.Error()}
	}
	return modfileInitResult{Content: string(data)}, nil
}
