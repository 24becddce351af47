package main

import (
	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
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
	// The same three steps as `cue vet`: build every instance (load and
	// syntax errors of all packages are reported together), then stop at
	// the first package that does not evaluate, then validate each package
	// with the vet options, reporting every error.
	insts := load.Instances([]string{"./..."}, cfg)
	values, err := ctx.BuildInstances(insts)
	if err != nil {
		result.Errors = diagnostics(err, req.Dir, req.Cwd)
		return result, nil
	}
	for i, v := range values {
		result.Packages = append(result.Packages, insts[i].ImportPath)
		if err := v.Validate(); err != nil {
			result.Errors = diagnostics(err, req.Dir, req.Cwd)
			return result, nil
		}
	}
	for _, v := range values {
		if err := v.Validate(opts...); err != nil {
			result.Errors = append(result.Errors, diagnostics(err, req.Dir, req.Cwd)...)
		}
	}
	return result, nil
}
