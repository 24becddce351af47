use std::process::ExitCode;

fn main() -> ExitCode {
    match opm::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            opm::ui::print_error(&format!("{err:#}"));
            ExitCode::from(opm::error::exit_of(&err).code() as u8)
        }
    }
}
