package main

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"cuelang.org/go/mod/modfile"
	"cuelang.org/go/mod/modregistry"
	"cuelang.org/go/mod/module"
	"cuelang.org/go/mod/modzip"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The media types of CUE's module artifact (cuelang.org/go/mod/modregistry).
const (
	moduleArtifactType  = "application/vnd.cue.module.v1+json"
	moduleFileMediaType = "application/vnd.cue.modulefile.v1"
)

type packRequest struct {
	Module  string `json:"module"` // with major version
	Version string `json:"version"`
	Zip     string `json:"zip"` // where to write the zip
	// The files to publish, in order: the module's files as opm walks
	// them (modzip.CreateFromDir's rules), or a VCS source's tracked
	// files and its commit, as `cue mod publish` takes them from git.
	Files []packFile `json:"files"`
	VCS   *struct {
		Type       string `json:"type"`
		Commit     string `json:"commit"`
		CommitTime int64  `json:"commit_time"` // Unix seconds
	} `json:"vcs,omitempty"`
}

type packFile struct {
	Path string `json:"path"` // in the zip, slash separated
	Abs  string `json:"abs"`  // on disk
}

type blob struct {
	MediaType string `json:"media_type"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type packResult struct {
	Config         blob   `json:"config"`
	Zip            blob   `json:"zip"`
	ModuleFile     blob   `json:"module_file"`
	ModuleFileData string `json:"module_file_data"`
	Manifest       string `json:"manifest"` // the exact bytes cue pushes
	ManifestDigest string `json:"manifest_digest"`
	Files          int    `json:"files"`
}

// opModulePack builds a module's zip and OCI manifest exactly as
// `cue mod publish` does: the same zip rules and checks, the same
// manifest bytes (so the same digest), VCS annotations for git sources.
func opModulePack(body []byte) (any, error) {
	var req packRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	mv, err := module.NewVersion(req.Module, req.Version)
	if err != nil {
		return nil, &callError{Kind: kindUsage, Message: message(err)}
	}
	f, err := os.Create(req.Zip)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := modzip.Create(f, mv, req.Files, packFileIO{}); err != nil {
		return nil, &callError{Kind: kindUsage, Message: message(err)}
	}
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}

	// The checks modregistry makes before it uploads.
	_, modf, files, err := modzip.CheckZip(mv, f, info.Size())
	if err != nil {
		return nil, &callError{Kind: kindUsage, Message: "module zip check failed: " + err.Error()}
	}
	modData, err := readZipFile(modf)
	if err != nil {
		return nil, err
	}
	mf, err := modfile.Parse(modData, "cue.mod/module.cue")
	if err != nil {
		return nil, &callError{Kind: kindInvalid, Message: "module.cue file check failed: " + err.Error()}
	}
	if mf.QualifiedModule() != mv.Path() {
		return nil, &callError{Kind: kindInvalid, Message: fmt.Sprintf(
			"module path %q in cue.mod/module.cue does not match module path being published %q", mf.QualifiedModule(), mv.Path())}
	}
	for p, dep := range mf.Deps {
		if _, err := module.NewVersion(p, dep.Version); err != nil {
			return nil, &callError{Kind: kindInvalid, Message: fmt.Sprintf("invalid dependency: %v @ %v", p, dep.Version)}
		}
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	zipDigest, err := digest.FromReader(f)
	if err != nil {
		return nil, err
	}
	config := []byte("{}")
	manifest := &ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{
			Digest: digest.FromBytes(config), MediaType: moduleArtifactType, Size: int64(len(config)),
		},
		Layers: []ocispec.Descriptor{
			{Digest: zipDigest, MediaType: "application/zip", Size: info.Size()},
			{Digest: digest.FromBytes(modData), MediaType: moduleFileMediaType, Size: int64(len(modData))},
		},
	}
	if req.VCS != nil {
		manifest.Annotations, err = vcsAnnotations(modregistry.Metadata{
			VCSType: req.VCS.Type, VCSCommit: req.VCS.Commit, VCSCommitTime: time.Unix(req.VCS.CommitTime, 0),
		})
		if err != nil {
			return nil, err
		}
	}
	data, err := json.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	desc := func(d ocispec.Descriptor) blob {
		return blob{MediaType: d.MediaType, Digest: d.Digest.String(), Size: d.Size}
	}
	return packResult{
		Config:         desc(manifest.Config),
		Zip:            desc(manifest.Layers[0]),
		ModuleFile:     desc(manifest.Layers[1]),
		ModuleFileData: string(modData),
		Manifest:       string(data),
		ManifestDigest: digest.FromBytes(data).String(),
		Files:          len(files.Valid),
	}, nil
}

// vcsAnnotations is modregistry's metadata encoding (a JSON round trip).
func vcsAnnotations(m modregistry.Metadata) (map[string]string, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out map[string]string
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	for k, v := range out {
		if v == "" {
			return nil, &callError{Kind: kindUsage, Message: fmt.Sprintf("empty VCS metadata value for %q", k)}
		}
	}
	return out, nil
}

func readZipFile(f *zip.File) ([]byte, error) {
	r, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// packFileIO implements modzip.FileIO for an explicit file list.
type packFileIO struct{}

func (packFileIO) Path(f packFile) string                 { return filepath.ToSlash(f.Path) }
func (packFileIO) Lstat(f packFile) (fs.FileInfo, error)  { return os.Lstat(f.Abs) }
func (packFileIO) Open(f packFile) (io.ReadCloser, error) { return os.Open(f.Abs) }
