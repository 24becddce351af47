package main

import (
	"archive/zip"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
		return module.Version{}, &callError{Kind: kindUsage, Message: message(err)}
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
		return nil, &callError{Kind: kindUsage, Message: message(err)}
	}
	return struct{}{}, nil
}

// opZipCompare lists the files of an extracted module that differ from its
// zip: changed, missing, or not in the zip at all.
func opZipCompare(body []byte) (any, error) {
	var req zipRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	z, err := zip.OpenReader(req.Zip)
	if err != nil {
		return nil, &callError{Kind: kindUsage, Message: message(err)}
	}
	defer z.Close()
	differ := []string{}
	inZip := map[string]bool{}
	for _, f := range z.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		inZip[f.Name] = true
		want, err := readZipFile(f)
		if err != nil {
			return nil, err
		}
		got, err := os.ReadFile(filepath.Join(req.Dir, filepath.FromSlash(f.Name)))
		if err != nil || !bytes.Equal(got, want) {
			differ = append(differ, f.Name)
		}
	}
	err = filepath.WalkDir(req.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(req.Dir, p)
		if err == nil && !inZip[filepath.ToSlash(rel)] {
			differ = append(differ, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(differ)
	return differ, nil
}
