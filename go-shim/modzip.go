package main

import (
	"os"
	"path/filepath"

	"cuelang.org/go/mod/module"
	"cuelang.org/go/mod/modzip"
)

type zipRequest struct {
	Module  string `json:"module"` // with major version, e.g. example.com/x@v0
	Version string `json:"version"`
	Dir     string `json:"dir"` // create: the module root; unzip: the target (absent or empty)
	Zip     string `json:"zip"` // the zip file path
}

func (r zipRequest) moduleVersion() (module.Version, error) {
	mv, err := module.NewVersion(r.Module, r.Version)
	if err != nil {
		return module.Version{}, &callError{Kind: kindUsage, Message: err.Error()}
	}
	return mv, nil
}

// opZipCreate writes the module zip exactly as `cue mod publish` builds it
// for a `source: kind: "self"` module: CUE's size limits, excluded files
// (nested modules, cue.mod/local-module.cue, VCS dirs), no symlinks.
func opZipCreate(body []byte) (any, error) {
	var req zipRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	mv, err := req.moduleVersion()
	if err != nil {
		return nil, err
	}
	f, err := os.Create(req.Zip)
	if err != nil {
		return nil, err
	}
	if err := modzip.CreateFromDir(f, mv, req.Dir); err != nil {
		f.Close()
		os.Remove(req.Zip)
		return nil, &callError{Kind: kindInvalid, Message: err.Error()}
	}
	return struct{}{}, f.Close()
}

// opZipUnzip checks a module zip with CUE's rules and extracts it.
func opZipUnzip(body []byte) (any, error) {
	var req zipRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	mv, err := req.moduleVersion()
	if err != nil {
		return nil, err
	}
	if err := modzip.Unzip(filepath.Clean(req.Dir), mv, req.Zip); err != nil {
		return nil, &callError{Kind: kindInvalid, Message: err.Error()}
	}
	return struct{}{}, nil
}
