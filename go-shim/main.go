// Package main is opm's bridge to cuelang.org/go, built as a C archive.
//
// The whole boundary is two functions: opm_call takes an operation name and a
// JSON request and returns a malloc'd JSON response, which the caller releases
// with opm_free. Responses are {"ok": result} or {"error": {...}}. Panics
// are recovered and returned as errors; no Go pointer ever crosses over.
// The shim opens no sockets: modules are read from the CUE cache only.
package main

/*
#include <stdlib.h>
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"unsafe"
)

// handler decodes its own request and returns a JSON-encodable result.
type handler func(req []byte) (any, error)

var handlers = map[string]handler{
	"version":          opVersion,
	"vet":              opVet,
	"modfile.init":     opModfileInit,
	"module.check":     opModuleCheck,
	"modfile.load":     opModfileLoad,
	"zip.unzip":        opZipUnzip,
	"zip.compare":      opZipCompare,
	"render":           opRender,
	"package.lookup":   opPackageLookup,
	"package.export":   opPackageExport,
	"registry.resolve": opRegistryResolve,
	"module.pack":      opModulePack,
	"modfile.parse":    opModfileParse,
	"memo.configure":   opMemoConfigure,
	"modfile.update":   opModfileUpdate,
	"modfile.views":    opTidyViews,
	"modfile.local":    opFormatLocal,
	"imports.main":     opImportsMain,
	"imports.package":  opImportsPackage,
	"imports.specs":    opImportSpecs,
	"selftest.panic":   func([]byte) (any, error) { panic("selftest: deliberate panic") },
}

type response struct {
	Ok    any        `json:"ok,omitempty"`
	Error *callError `json:"error,omitempty"`
}

//export opm_call
func opm_call(op *C.char, req *C.char, reqLen C.size_t) *C.char {
	name := C.GoString(op)
	if reqLen > math.MaxInt32 {
		return C.CString(string(encode(response{Error: &callError{Kind: kindInternal, Message: "shim request too large"}})))
	}
	body := C.GoBytes(unsafe.Pointer(req), C.int(reqLen))
	return C.CString(string(dispatch(name, body)))
}

//export opm_free
func opm_free(p *C.char) {
	C.free(unsafe.Pointer(p))
}

func dispatch(name string, body []byte) (out []byte) {
	defer func() {
		if r := recover(); r != nil {
			out = encode(response{Error: &callError{
				Kind:    kindInternal,
				Message: fmt.Sprintf("internal error in CUE shim (%s): %v", name, r),
			}})
		}
	}()
	h, ok := handlers[name]
	if !ok {
		return encode(response{Error: &callError{Kind: kindInternal, Message: "unknown shim operation " + name}})
	}
	result, err := h(body)
	if err != nil {
		return encode(response{Error: toCallError(err)})
	}
	return encode(response{Ok: result})
}

func encode(r response) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(response{Error: &callError{Kind: kindInternal, Message: "encoding response: " + err.Error()}})
	}
	return b
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return &callError{Kind: kindInternal, Message: "malformed shim request: " + err.Error()}
	}
	return nil
}

type versionInfo struct {
	CueVersion      string `json:"cue_version"`
	GoVersion       string `json:"go_version"`
	LanguageVersion string `json:"language_version"`
}

func opVersion([]byte) (any, error) {
	info := versionInfo{CueVersion: "unknown", LanguageVersion: languageVersion()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		info.GoVersion = bi.GoVersion
		for _, dep := range bi.Deps {
			if dep.Path == "cuelang.org/go" {
				info.CueVersion = dep.Version
			}
		}
	}
	return info, nil
}

func main() {}

// opm is a short-lived process that evaluates once: trade some memory for
// fewer garbage collections, unless the user set GOGC.
func init() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
}
