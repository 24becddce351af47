package main

import (
	"strings"

	"cuelang.org/go/mod/modconfig"
)

type resolveRequest struct {
	// Registry is a CUE_REGISTRY value; empty means cue's default.
	Registry string `json:"registry"`
	Modules  []struct {
		Module  string `json:"module"`  // e.g. example.com/x@v0, or a path without major for listing
		Version string `json:"version"` // empty to resolve the repository only
	} `json:"modules"`
}

type location struct {
	// None: the configuration routes the module to no registry (`none`);
	// it has no versions and cannot be fetched.
	None       bool   `json:"none,omitempty"`
	Host       string `json:"host,omitempty"`
	Repository string `json:"repository,omitempty"`
	Tag        string `json:"tag,omitempty"`
	Insecure   bool   `json:"insecure,omitempty"`
}

// opRegistryResolve routes module versions to registry locations with
// CUE's own resolver, so opm finds modules exactly where cue does. It only
// computes names; it never connects.
func opRegistryResolve(body []byte) (any, error) {
	var req resolveRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	resolver, err := modconfig.NewResolver(&modconfig.Config{
		CUERegistry: req.Registry,
		Env:         []string{}, // the request says everything
	})
	if err != nil {
		return nil, &callError{Kind: kindUsage, Message: message(err)}
	}
	out := make([]location, 0, len(req.Modules))
	for _, m := range req.Modules {
		// Routing is by the path without its major version, as in modregistry.
		path, _, _ := strings.Cut(m.Module, "@")
		loc, ok := resolver.ResolveToLocation(path, m.Version)
		if !ok {
			out = append(out, location{None: true})
			continue
		}
		out = append(out, location{Host: loc.Host, Repository: loc.Repository, Tag: loc.Tag, Insecure: loc.Insecure})
	}
	return out, nil
}
