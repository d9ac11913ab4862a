//! `pr-helper`: one binary, several programs, chosen by the name it is run as.
//!
//! argv is bytes: each argument reaches the applets losslessly (`cli::argbytes`).

use std::process::ExitCode;

fn main() -> ExitCode {
    pr_helper::dispatch(
        std::env::args_os()
            .map(|a| pr_helper::encode_arg(&a))
            .collect(),
    )
}
