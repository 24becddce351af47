package main

import (
	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/load"
)

type vetRequest struct {
	Dir      string   `json:"dir"`       // module root, absolute
	Cwd      string   `json:"cwd"`       // messages name files relative to it, as cue does
	CacheDir string   `json:"cache_dir"` // CUE cache; dependencies are read from here only
	Concrete bool     `json:"concrete"`
	Tags     []string `json:"tags"` // -t key=value injections
}

type vetResult struct {
	Packages []string     `json:"packages"`
	Errors   []diagnostic `json:"errors"`
}

// opVet loads every package of the module ("./...") and validates each one
// exactly as `cue vet -c=false` (or `-c` when Concrete) does.
func opVet(body []byte) (any, error) {
	var req vetRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	cfg := &load.Config{
		Dir:      req.Dir,
		Tags:     req.Tags,
		Registry: newCacheRegistry(req.CacheDir),
		Env:      []string{}, // never consult the process environment
	}
	result := vetResult{Packages: []string{}, Errors: []diagnostic{}}
	ctx := cuecontext.New()
	opts := []cue.Option{
		cue.Attributes(true),
		cue.Definitions(true),
		cue.Hidden(true),
		cue.Concrete(req.Concrete),
	}
	for _, inst := range load.Instances([]string{"./..."}, cfg) {
		if inst.Err != nil {
			result.Errors = append(result.Errors, diagnostics(inst.Err, req.Dir, req.Cwd)...)
			continue
		}
		result.Packages = append(result.Packages, inst.ImportPath)
		v := ctx.BuildInstance(inst)
		if err := v.Err(); err != nil {
			result.Errors = append(result.Errors, diagnostics(err, req.Dir, req.Cwd)...)
			continue
		}
		if err := v.Validate(opts...); err != nil {
			result.Errors = append(result.Errors, diagnostics(errors.Promote(err, "validation failed"), req.Dir, req.Cwd)...)
		}
	}
	return result, nil
}
