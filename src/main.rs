//! `pr-helper`: one binary, several programs, chosen by the name it is run as.

use std::process::ExitCode;

fn main() -> ExitCode {
    pr_helper::applets::dispatch(
        std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    )
}
