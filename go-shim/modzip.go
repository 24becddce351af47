package main

import (
	"path/filepath"

	"cuelang.org/go/mod/module"
	"cuelang.org/go/mod/modzip"
)

type zipRequest struct {
	Module  string `json:"module"` // with major version, e.g. example.com/x@v0
	Version string `json:"version"`
	Dir     string `json:"dir"` // the target (absent or empty)
	Zip     string `json:"zip"` // the zip file path
}

func (r zipRequest) moduleVersion() (module.Version, error) {
	mv, err := module.NewVersion(r.Module, r.Version)
	if err != nil {
		return module.Version{}, &callError{Kind: kindUsage, Message: err.Error()}
	}
	return mv, nil
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
		return nil, &callError{Kind: kindUsage, Message: err.Error()}
	}
	return struct{}{}, nil
}
