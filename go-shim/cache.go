package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"cuelang.org/go/mod/modcache"
	"cuelang.org/go/mod/modfile"
	"cuelang.org/go/mod/module"
)

// cacheRegistry serves modules from the CUE cache directory and never from
// the network: Rust downloads whatever a load needs before calling the shim.
// It reads cue's own layout through mod/modcache, so the cue CLI and opm
// share one cache.
type cacheRegistry struct {
	dir   string
	cache *modcache.Cache
}

func newCacheRegistry(dir string) *cacheRegistry {
	r := &cacheRegistry{dir: dir}
	if dir != "" {
		// modcache.New only fails when dir exists and is not a directory;
		// then every lookup reports the module as missing.
		r.cache, _ = modcache.New(nil, dir)
	}
	return r
}

func (r *cacheRegistry) missing(mv module.Version) error {
	return fmt.Errorf("module %s is not in the CUE cache (%s): run 'opm mod get %s'", mv, r.dir, mv)
}

func (r *cacheRegistry) ModFile(ctx context.Context, mv module.Version) (*modfile.File, error) {
	escPath, err := module.EscapePath(mv.BasePath())
	if err != nil {
		return nil, err
	}
	escVer, err := module.EscapeVersion(mv.Version())
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(r.dir, "mod", "download", escPath, "@v", escVer+".mod"))
	if err != nil {
		return nil, r.missing(mv)
	}
	return parseDependency(data, mv.String(), mv.Path())
}

func (r *cacheRegistry) Fetch(ctx context.Context, mv module.Version) (module.SourceLoc, error) {
	return r.FetchFromCache(mv)
}

func (r *cacheRegistry) FetchFromCache(mv module.Version) (module.SourceLoc, error) {
	if r.cache == nil {
		return module.SourceLoc{}, r.missing(mv)
	}
	loc, err := r.cache.FetchFromCache(mv)
	if err != nil {
		return module.SourceLoc{}, r.missing(mv)
	}
	return loc, nil
}

func (r *cacheRegistry) ModuleVersions(ctx context.Context, mpath string) ([]string, error) {
	return nil, fmt.Errorf("listing versions of %s needs the network; opm resolves versions before loading", mpath)
}
