use std::process::ExitCode;

fn main() -> ExitCode {
    match opm::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(failure) = err.downcast_ref::<opm::error::Failure>() {
                let cwd = std::env::current_dir().unwrap_or_default();
                opm::ui::print_diagnostics(&failure.diagnostics, std::path::Path::new("/"), &cwd);
            }
            opm::ui::print_error(&format!("{err:#}"));
            ExitCode::from(opm::error::exit_of(&err).code() as u8)
        }
    }
}
