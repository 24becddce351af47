use opm::cli::{Exit, Reported};
use opm::error::Failure;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Err(err) = opm::cli::run() else { return ExitCode::SUCCESS };
    let exit = opm::cli::exit_code(&err);
    let reported = err.chain().any(|e| e.is::<Reported>() || e.is::<opm::ui::ReaderGone>());
    // With --json the failure is JSON too, on stdout where the result would be.
    if !reported && std::env::args().any(|a| a == "--json") {
        let diagnostics = err.chain().find_map(|e| e.downcast_ref::<Failure>()).map(|f| f.diagnostics.clone()).unwrap_or_default();
        let error = serde_json::json!({ "error": {
            "exit": exit.code(),
            "kind": exit.kind(),
            "message": format!("{err:#}"),
            "diagnostics": diagnostics,
        }});
        let _ = opm::ui::print_json(&error);
        return ExitCode::from(exit.code());
    }
    if !reported {
        if let Some(failure) = err.chain().find_map(|e| e.downcast_ref::<Failure>()) {
            let cwd = std::env::current_dir().unwrap_or_default();
            opm::ui::print_diagnostics(&failure.diagnostics, std::path::Path::new("/"), &cwd);
        }
        if exit == Exit::Outdated {
            // A --check finding is a result, not a failure of opm.
            opm::ui::print_status(&format!("{err:#}"));
        } else {
            opm::ui::print_error(&format!("{err:#}"));
        }
    }
    ExitCode::from(exit.code())
}
