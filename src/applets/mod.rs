//! Multicall dispatch: the applet is the longest applet name argv[0]'s basename ends with;
//! run as `pr-helper` (or any other name), argv[1] names it, busybox style.

pub mod pr_client;
pub mod qemu_pr_helper;

use argh::{EarlyExit, FromArgs};
use std::path::Path;
use std::process::ExitCode;

/// An applet's entry point: argv[0] as typed, and the arguments after it.
pub type AppletMain = fn(argv0: &str, args: &[String]) -> ExitCode;

/// Every applet this binary provides, by the name it answers to.
pub const APPLETS: &[(&str, AppletMain)] = &[
    ("qemu-pr-helper", qemu_pr_helper::main),
    ("qemu-pr-helper-activated", qemu_pr_helper::main_activated),
    ("pr-client", pr_client::main),
];

/// The multicall name.
pub const MULTICALL: &str = "pr-helper";

fn find(name: &str) -> Option<(&'static str, AppletMain)> {
    APPLETS
        .iter()
        .filter(|(applet, _)| name.ends_with(applet))
        .max_by_key(|(applet, _)| applet.len())
        .copied()
}

/// Runs the applet `argv` asks for.
pub fn dispatch(argv: Vec<String>) -> ExitCode {
    let argv0 = argv
        .first()
        .cloned()
        .unwrap_or_else(|| MULTICALL.to_owned());
    let base = Path::new(&argv0)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    if base != MULTICALL {
        if let Some((_, main)) = find(&base) {
            return main(&argv0, &argv[1..]);
        }
    }
    multicall(&argv[1..])
}

/// The multicall's own options, read by argh alone: when the first argument is not an
/// option it names the applet, whose arguments that applet reads itself.
#[derive(FromArgs)]
#[argh(
    description = "Runs APPLET, as if this binary had been started under that name (a symlink does it too).",
    example = "{command_name} qemu-pr-helper -k /run/pr.sock\n{command_name} --install /usr/local/bin",
    note = "Usage as an applet: {command_name} APPLET [ARGS]...\nApplets: qemu-pr-helper, qemu-pr-helper-activated, pr-client",
    help_triggers("-h", "--help")
)]
struct MulticallOptions {
    /// print the applet names, one a line
    #[argh(switch)]
    list: bool,
    /// make in DIR a symlink per applet, pointing to this binary
    #[argh(switch)]
    install: bool,
    /// with --install: replace files of the applets' names
    #[argh(switch)]
    force: bool,
    /// print the version
    #[argh(switch, short = 'V')]
    version: bool,
    /// with --install: the directory
    #[argh(positional, arg_name = "DIR")]
    dir: Option<String>,
}

fn multicall(args: &[String]) -> ExitCode {
    match args.first() {
        None => {
            eprint!("{}", usage());
            return ExitCode::from(1);
        }
        Some(name) if !name.starts_with('-') => {
            return match APPLETS.iter().find(|(applet, _)| applet == name) {
                Some((applet, main)) => main(applet, &args[1..]),
                None => {
                    let names: Vec<&str> = APPLETS.iter().map(|(applet, _)| *applet).collect();
                    mistake(&format!(
                        "unknown applet '{name}' (applets: {})",
                        names.join(", ")
                    ))
                }
            };
        }
        Some(_) => {}
    }
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let options = match MulticallOptions::from_args(&[MULTICALL], &strs) {
        Ok(options) => options,
        Err(EarlyExit { output, status }) => {
            return match status {
                Ok(()) => {
                    print!("{output}");
                    ExitCode::SUCCESS
                }
                Err(()) => mistake(output.trim_end()),
            };
        }
    };
    let MulticallOptions {
        list,
        install,
        force,
        version,
        dir,
    } = options;
    match (list, version, install, dir) {
        (true, false, false, None) if !force => {
            for (name, _) in APPLETS {
                println!("{name}");
            }
            ExitCode::SUCCESS
        }
        (false, true, false, None) if !force => {
            println!("{MULTICALL} {}", crate::VERSION);
            ExitCode::SUCCESS
        }
        (false, false, true, Some(dir)) => install_links(&dir, force),
        (_, _, true, None) => mistake("--install needs a directory"),
        _ => mistake("give one of --list, --install DIR, --version or an applet"),
    }
}

/// A command line the multicall cannot take: what is wrong, and where the usage is.
fn mistake(what: &str) -> ExitCode {
    eprintln!("{MULTICALL}: {what}\nTry '{MULTICALL} --help' for more information.");
    ExitCode::from(1)
}

/// argh's help text, which is also the usage printed after a mistake.
fn usage() -> String {
    match MulticallOptions::from_args(&[MULTICALL], &["--help"]) {
        Err(EarlyExit { output, .. }) => output,
        Ok(_) => String::new(),
    }
}

/// `--install [--force] DIR`: a symlink per applet in DIR, pointing to this binary.
fn install_links(dir: &str, force: bool) -> ExitCode {
    let target = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!(
                "{MULTICALL}: cannot find this binary's path: {}",
                crate::errors::strerror(&e)
            );
            return ExitCode::from(1);
        }
    };
    let mut status = ExitCode::SUCCESS;
    for (name, _) in APPLETS {
        let link = Path::new(dir).join(name);
        if force && link.symlink_metadata().is_ok() {
            if let Err(e) = std::fs::remove_file(&link) {
                eprintln!(
                    "{MULTICALL}: cannot replace {}: {}",
                    link.display(),
                    crate::errors::strerror(&e)
                );
                status = ExitCode::from(1);
                continue;
            }
        }
        if let Err(e) = std::os::unix::fs::symlink(&target, &link) {
            eprintln!(
                "{MULTICALL}: cannot create {}: {}",
                link.display(),
                crate::errors::strerror(&e)
            );
            status = ExitCode::from(1);
        }
    }
    status
}
