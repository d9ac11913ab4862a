//! Multicall dispatch: the applet is the longest applet name argv[0]'s basename ends with;
//! run as `pr-helper` (or any other name), argv[1] names it, busybox style.

pub mod pr_client;
pub mod qemu_pr_helper;

use std::io::Write as _;
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

fn multicall(args: &[String]) -> ExitCode {
    let Some(first) = args.first() else {
        print_usage(&mut std::io::stderr());
        return ExitCode::from(1);
    };
    match first.as_str() {
        "--list" => {
            let mut out = std::io::stdout();
            for (name, _) in APPLETS {
                let _ = writeln!(out, "{name}");
            }
            ExitCode::SUCCESS
        }
        "--help" | "-h" => {
            print_usage(&mut std::io::stdout());
            ExitCode::SUCCESS
        }
        "--version" | "-V" => {
            println!("{MULTICALL} {}", crate::VERSION);
            ExitCode::SUCCESS
        }
        "--install" => install(&args[1..]),
        name => match APPLETS.iter().find(|(applet, _)| *applet == name) {
            Some((applet, main)) => main(applet, &args[1..]),
            None => {
                let mut err = std::io::stderr();
                let _ = writeln!(err, "{MULTICALL}: unknown applet '{name}'");
                print_usage(&mut err);
                ExitCode::from(1)
            }
        },
    }
}

fn print_usage(out: &mut dyn std::io::Write) {
    let _ = writeln!(
        out,
        "Usage: {MULTICALL} APPLET [ARGS]...\n       {MULTICALL} --list\n       {MULTICALL} --install [--force] DIR\n\n\
         Runs APPLET, as if this binary had been started under that name (a symlink does it too).\n\n\
         Applets:"
    );
    for (name, _) in APPLETS {
        let _ = writeln!(out, "  {name}");
    }
}

/// `--install [--force] DIR`: a symlink per applet in DIR, pointing to this binary.
fn install(args: &[String]) -> ExitCode {
    let (force, dir) = match args {
        [flag, dir] if flag == "--force" => (true, dir),
        [dir, flag] if flag == "--force" => (true, dir),
        [dir] if !dir.starts_with('-') => (false, dir),
        _ => {
            eprintln!("{MULTICALL}: usage: {MULTICALL} --install [--force] DIR");
            return ExitCode::from(1);
        }
    };
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
