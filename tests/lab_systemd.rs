//! The PR lab with systemd as PID 1: the guest's Debian trixie booted by systemd (a tmpfs
//! overlay over the read-only 9p root), our binary and units installed by
//! packaging/install.sh, LIO tcm_loop exporting one LUN through two nexuses, multipathd under
//! its own unit. tests/lab/systemd/checks.sh runs the steps of issue 19 there: socket
//! activation with Type=notify, the Accept=yes instances, a multipath REGISTER that multipathd
//! learns from the sandboxed service, a SIGKILL restarted by systemd, a forbidden call killed
//! by our seccomp filter inside the unit's sandbox, `systemd-analyze security` on the
//! booted system, and `--audit=journal` to the real journald (`journalctl PR_VM=NAME` with the
//! machine scope's name, a record too large for a datagram in a sealed memfd). See docs/lab.md.
//!
//! Heavy tier: `#[ignore]`d, run by tests/run-all.sh (`cargo test -- --ignored`); needs root
//! and fails saying so otherwise.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[test]
#[ignore = "heavy tier: boots a QEMU VM with systemd as PID 1 (root; about 5 min under TCG, docs/testing.md); tests/run-all.sh runs it"]
fn units_under_systemd_as_pid1() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/lab/systemd");
    common::require_root(
        "the systemd lab needs root (apt-get, QEMU, /var/cache/pr-helper-lab): run the suite as root",
    );
    // The steps checks.sh runs: its line steps="a b c".
    let checks =
        std::fs::read_to_string(dir.join("checks.sh")).expect("tests/lab/systemd/checks.sh");
    let steps: Vec<&str> = checks
        .lines()
        .find_map(|l| l.strip_prefix("steps=\""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("no steps=\"...\" line in checks.sh")
        .split_whitespace()
        .collect();

    let t0 = Instant::now();
    let run = Command::new("bash")
        .arg(dir.join("run.sh"))
        .output()
        .expect("cannot run tests/lab/systemd/run.sh");
    let out = String::from_utf8_lossy(&run.stdout);
    eprint!("{}", String::from_utf8_lossy(&run.stderr));
    eprint!("{out}");
    eprintln!("lab-systemd: total {:.1}s", t0.elapsed().as_secs_f64());

    let passed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("PASS ")?.split_whitespace().next())
        .collect();
    for s in &steps {
        assert!(
            passed.contains(s),
            "step {s} did not pass under systemd (its log is above)"
        );
    }
    assert!(
        run.status.success(),
        "tests/lab/systemd/run.sh failed ({}): see its output above",
        run.status
    );
}
