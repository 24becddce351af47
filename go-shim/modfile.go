package main

import (
	"cuelang.org/go/cue"
	"cuelang.org/go/mod/modfile"
	"cuelang.org/go/mod/module"
)

func languageVersion() string { return cue.LanguageVersion() }

type modfileInitRequest struct {
	Module     string `json:"module"`
	SourceKind string `json:"source_kind"`
}

type modfileInitResult struct {
	Content string `json:"content"`
}

// opModfileInit returns the module.cue that `cue mod init --source KIND PATH`
// writes: the checked path, the current language version, the source kind.
func opModfileInit(body []byte) (any, error) {
	var req modfileInitRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := module.CheckPath(req.Module); err != nil {
		return nil, &callError{Kind: kindUsage, Message: err.Error()}
	}
	mf := &modfile.File{
		Module:   req.Module,
		Language: &modfile.Language{Version: languageVersion()},
	}
	if req.SourceKind != "" {
		mf.Source = &modfile.Source{Kind: req.SourceKind}
		if err := mf.Source.Validate(); err != nil {
			return nil, &callError{Kind: kindUsage, Message: err.Error()}
		}
	}
	data, err := modfile.Format(mf)
	if err != nil {
		return nil, err
	}
	return modfileInitResult{Content: string(data)}, nil
}
