//! The shipped artifact, the static musl binary (`packaging/build-static.sh`):
//! - `tests/static-build.sh` builds it for x86_64, checks that file(1) and ldd(1) call it
//!   static, runs `qemu-pr-helper --version` and the daemon (sandbox on) in an empty chroot,
//!   probes the daemon from outside with `pr-client probe`, stops it with SIGTERM (exit 0), and
//!   enforces the size budget;
//! - `tests/foreign-arch.sh` builds it for aarch64 and s390x, runs each under qemu-user serving
//!   the native pr-client (the answers must equal the native daemon's), and runs the library's
//!   unit tests there (s390x is big-endian).
//!
//! See docs/static-builds.md. Heavy tier: `#[ignore]`d, run by tests/run-all.sh; they need root
//! (chroot, apt-get on a fresh machine) and fail saying so otherwise.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs a check script under timeout(1) and requires exit 0 and `passed` to hold for its stdout.
fn run_script(script: &str, args: &[&str], env: &[(&str, &str)], passed: impl Fn(&str) -> bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::require_root(&format!(
        "{script} needs root (chroot, apt-get): run the suite as root"
    ));
    let t0 = Instant::now();
    // Cold builds of std for a target take one to five minutes on two cores.
    let run = Command::new("timeout")
        .args(["--kill-after=10", "1800", "bash"])
        .arg(root.join(script))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script} under timeout(1): {e}"));
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    eprint!("{out}{err}");
    eprintln!("{script}: {:.1}s", t0.elapsed().as_secs_f64());
    assert!(
        run.status.success(),
        "{script} failed ({}):\n--- stdout\n{out}--- stderr\n{err}",
        run.status
    );
    assert!(
        passed(&out),
        "{script} exited 0 without reporting every check passed:\n{out}"
    );
}

#[test]
#[ignore = "heavy tier: the static musl build and a chroot (root, minutes); tests/run-all.sh runs it"]
fn static_release_binary_runs_in_an_empty_chroot() {
    run_script("tests/static-build.sh", &[], &[], |out| {
        out.lines().any(|l| l == "static-build: PASS")
    });
}

#[test]
#[ignore = "heavy tier: musl builds for aarch64 and s390x run under qemu-user (root, minutes); tests/run-all.sh runs it"]
fn foreign_architectures_serve_the_native_client_under_qemu_user() {
    let targets = ["aarch64-unknown-linux-musl", "s390x-unknown-linux-musl"];
    run_script(
        "tests/foreign-arch.sh",
        &targets,
        &[("PR_HELPER_FOREIGN_UNIT_TESTS", "1")],
        |out| {
            // Each target: serving the native client, and the unit tests.
            targets.iter().all(|t| {
                let passes = out
                    .lines()
                    .filter(|l| l.starts_with(&format!("foreign-arch: PASS {t} ")))
                    .count();
                passes == 2
            })
        },
    );
}

/// The release tarball, as a person installs it: `packaging/build-static.sh --release` writes
/// it with a SHA256SUMS that verifies; unpacked, its `install.sh` installs into an empty root,
/// and the daemon runs there, under the applet link install.sh made, and serves a client.
#[test]
#[ignore = "heavy tier: a static release build and a chroot (root, minutes); tests/run-all.sh runs it"]
fn release_tarball_installs_into_an_empty_root_and_serves() {
    common::require_root("installing into an empty root and chrooting there needs root");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = "x86_64-unknown-linux-musl";
    let build = Command::new(repo.join("packaging/build-static.sh"))
        .args(["--release", target])
        .stdin(Stdio::null())
        .output()
        .expect("cannot run packaging/build-static.sh");
    let out = String::from_utf8_lossy(&build.stdout);
    assert!(
        build.status.success(),
        "packaging/build-static.sh --release failed ({}):\n{out}{}",
        build.status,
        String::from_utf8_lossy(&build.stderr)
    );
    let tarball = out
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("build-static: {target} ")))
        .find(|rest| rest.ends_with(".tar.gz"))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no tarball named in:\n{out}"));
    let dist = tarball.parent().unwrap();
    let sums = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(dist)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "SHA256SUMS does not verify:\n{}",
        String::from_utf8_lossy(&sums.stdout)
    );

    // Short names: the socket path must fit sun_path.
    let scratch = common::Scratch::new("rel");
    let unpacked = scratch.path("u");
    let root = scratch.path("r");
    std::fs::create_dir_all(&unpacked).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(tar.success(), "cannot unpack {}", tarball.display());
    let dir = std::fs::read_dir(&unpacked)
        .unwrap()
        .next()
        .expect("the tarball holds one directory")
        .unwrap()
        .path();
    for file in [
        "pr-helper",
        "install.sh",
        "README.md",
        "man/qemu-pr-helper.8",
    ] {
        assert!(dir.join(file).exists(), "the tarball has no {file}");
    }
    let install = Command::new("sh")
        .arg("./install.sh")
        .arg(&root)
        .arg("/usr")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "./install.sh ROOT /usr failed: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    assert!(
        root.join("usr/lib/systemd/system/qemu-pr-helper.socket")
            .exists()
    );

    // Nothing in the root but what install.sh put there: the binary is all it needs.
    let mut daemon = common::Guard::spawn(
        Command::new("chroot")
            .arg(&root)
            .args(["/usr/bin/qemu-pr-helper", "-k", "/s.sock"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped()),
    );
    common::wait_for_socket(&root.join("s.sock"), std::time::Duration::from_secs(10));
    let probe = Command::new(dir.join("pr-helper"))
        .args(["pr-client", "probe", "--timeout=10"])
        .arg(format!("--socket={}", root.join("s.sock").display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success()
            && text
                .lines()
                .any(|l| l.starts_with("result:") && l.ends_with(" ok")),
        "probe of the daemon installed from the tarball: {text}"
    );
    assert_eq!(daemon.terminate().code(), Some(0));
    assert!(!root.join("s.sock").exists(), "socket left after SIGTERM");
}
