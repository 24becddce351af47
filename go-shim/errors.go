package main

import (
	goerrors "errors"
	"path/filepath"
	"strings"

	"cuelang.org/go/cue/errors"
)

// Kinds let Rust pick the exit code without parsing messages.
const (
	kindInvalid  = "invalid"  // CUE says the input is wrong: syntax, conflicts, imports
	kindUsage    = "usage"    // the request cannot apply here: bad module path, no module
	kindIO       = "io"       // a file could not be read or written
	kindInternal = "internal" // a bug: panic, malformed request
)

type position struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

type diagnostic struct {
	Message   string     `json:"message"`
	Positions []position `json:"positions"`
}

type callError struct {
	Kind    string       `json:"kind"`
	Message string       `json:"message"`
	Errors  []diagnostic `json:"errors,omitempty"`
}

func (e *callError) Error() string { return e.Message }

// message is err's text with every error of a CUE error list (whose own
// Error() shows the first and "(and N more errors)").
func message(err error) string {
	var cueErr errors.Error
	if !goerrors.As(err, &cueErr) {
		return err.Error()
	}
	list := errors.Errors(cueErr)
	if len(list) <= 1 {
		return err.Error()
	}
	parts := make([]string, len(list))
	for i, e := range list {
		parts[i] = strings.TrimSuffix(errors.String(e), ":")
	}
	return strings.Join(parts, "; ")
}

// toCallError classifies err; CUE errors keep every diagnostic.
func toCallError(err error) *callError {
	var ce *callError
	if goerrors.As(err, &ce) {
		return ce
	}
	// Only CUE's own errors mean the input is invalid; anything else is
	// the file system or a bug.
	var cueErr errors.Error
	if !goerrors.As(err, &cueErr) {
		return &callError{Kind: kindIO, Message: message(err)}
	}
	return &callError{Kind: kindInvalid, Message: err.Error(), Errors: diagnostics(err, "", "")}
}

// diagnostics flattens a CUE error into messages with positions: the same
// list (sanitized, deduplicated) and text that `cue` prints when run in cwd.
// Position file names are made relative to root when they lie below it.
func diagnostics(err error, root, cwd string) []diagnostic {
	var cueErr errors.Error
	if !goerrors.As(err, &cueErr) {
		return []diagnostic{{Message: message(err), Positions: []position{}}}
	}
	var out []diagnostic
	cfg := &errors.Config{Cwd: cwd}
	for _, e := range errors.Errors(errors.Sanitize(cueErr)) {
		d := diagnostic{Message: errors.StringWithConfig(e, cfg), Positions: []position{}}
		for _, p := range errors.Positions(e) {
			pos := p.Position()
			file := pos.Filename
			if root != "" && file != "" {
				if rel, rerr := filepath.Rel(root, file); rerr == nil && filepath.IsLocal(rel) {
					file = filepath.ToSlash(rel)
				}
			}
			d.Positions = append(d.Positions, position{File: file, Line: pos.Line, Column: pos.Column})
		}
		out = append(out, d)
	}
	return out
}
