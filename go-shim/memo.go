package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"

	"cuelang.org/go/mod/modfile"
)

// CUE's parse of a dependency's module file, remembered in opm's cache by
// the digest of opm's binary and of the file's bytes: a cached version
// never changes, and the parse (CUE's module-file schema) costs about half
// a millisecond a file, paid for every dependency by every get, tidy, vet
// and build. opm sets the directory before its first request.
var memo struct {
	dir  string
	salt []byte
}

type memoRequest struct {
	Dir  string `json:"dir"`
	Salt string `json:"salt"`
}

func opMemoConfigure(body []byte) (any, error) {
	var req memoRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	memo.dir, memo.salt = req.Dir, []byte(req.Salt)
	return struct{}{}, nil
}

// parseDependency is modfile.Parse of the module file of module (path
// with its major version), remembered. A remembered parse is decoded and
// initialised as Parse initialises it, and believed only when it declares
// module; otherwise, and when nothing is remembered, the file is parsed.
func parseDependency(data []byte, filename, module string) (*modfile.File, error) {
	if memo.dir == "" {
		return modfile.Parse(data, filename)
	}
	sum := sha256.New()
	sum.Write(memo.salt)
	sum.Write(data)
	path := filepath.Join(memo.dir, hex.EncodeToString(sum.Sum(nil)))
	if kept, err := os.ReadFile(path); err == nil {
		var f modfile.File
		if json.Unmarshal(kept, &f) == nil && f.Init() == nil && f.QualifiedModule() == module {
			return &f, nil
		}
	}
	f, err := modfile.Parse(data, filename)
	if err != nil {
		return nil, err
	}
	// Only an optimisation: what cannot be written is parsed again.
	if kept, err := json.Marshal(f); err == nil && os.MkdirAll(memo.dir, 0o755) == nil {
		if tmp, err := os.CreateTemp(memo.dir, ".tmp-*"); err == nil {
			_, werr := tmp.Write(kept)
			if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), path) != nil {
				os.Remove(tmp.Name())
			}
		}
	}
	return f, nil
}
