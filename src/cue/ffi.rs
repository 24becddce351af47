//! The only unsafe code in opm: one call into go-shim and the matching free.

#[allow(non_camel_case_types, non_upper_case_globals, non_snake_case, dead_code, clippy::all)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/shim_bindings.rs"));
}

use std::ffi::{CStr, CString};

/// Calls operation `op` with a JSON request and returns the JSON response.
pub(super) fn call(op: &str, request: &[u8]) -> Vec<u8> {
    let op = CString::new(op).expect("shim operation names contain no NUL");
    // SAFETY: go-shim copies both inputs before returning and never keeps
    // them. It returns a NUL-terminated string allocated with malloc (JSON
    // escapes NUL, so the text has no interior NUL), which we copy and hand
    // back to opm_free exactly once.
    unsafe {
        let response = bindings::opm_call(op.as_ptr().cast_mut(), request.as_ptr().cast::<std::ffi::c_char>().cast_mut(), request.len());
        assert!(!response.is_null(), "go-shim returned no response");
        let bytes = CStr::from_ptr(response).to_bytes().to_vec();
        bindings::opm_free(response);
        bytes
    }
}
