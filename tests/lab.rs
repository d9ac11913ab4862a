//! The PR lab: real persistent reservations in a VM (QEMU TCG, Debian trixie-backports kernel,
//! LIO tcm_loop exporting one LUN through two initiator nexuses, dm-multipath with multipathd,
//! an nvmet namespace), driven through our helper with `pr-client` and compared with the C
//! helper, direct SG_IO, mpathpersist and nvme-cli. See docs/lab.md.
//!
//! Runs `tests/lab/setup.sh` (installs packages, builds the cached kernel + initramfs under
//! /var/cache/pr-helper-lab) and `tests/lab/run.sh` (every scenario under
//! tests/lab/scenarios/), and fails unless every scenario passed. Heavy tier: `#[ignore]`d, run by
//! tests/run-all.sh (`cargo test -- --ignored`); it needs root and fails saying so otherwise. The guest's log of each failing scenario is printed.
//! `LAB_SCENARIOS="01-fresh 02-register"` runs a subset.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[test]
#[ignore = "heavy tier: boots QEMU VMs (apt-get, debootstrap, root, 10-20 min); tests/run-all.sh runs it"]
fn pr_lab() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lab = root.join("tests/lab");
    common::require_root(
        "the PR lab needs root (apt-get, QEMU, /var/cache/pr-helper-lab): run the suite as root",
    );

    let t0 = Instant::now();
    let setup = Command::new("bash")
        .arg(lab.join("setup.sh"))
        .output()
        .expect("cannot run tests/lab/setup.sh");
    eprint!("{}", String::from_utf8_lossy(&setup.stderr));
    assert!(
        setup.status.success(),
        "tests/lab/setup.sh failed ({}): the lab VM cannot be built",
        setup.status
    );
    let image = String::from_utf8_lossy(&setup.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_owned();
    assert!(
        Path::new(&image).join("ready").exists(),
        "tests/lab/setup.sh printed no ready image directory (got {image:?})"
    );
    eprintln!("lab: set-up {:.1}s", t0.elapsed().as_secs_f64());

    let mut scenarios: Vec<String> = std::fs::read_dir(lab.join("scenarios"))
        .expect("no tests/lab/scenarios")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".sh").map(str::to_owned)
        })
        .collect();
    scenarios.sort();
    if let Ok(only) = std::env::var("LAB_SCENARIOS") {
        scenarios = only.split_whitespace().map(str::to_owned).collect();
    }
    assert!(!scenarios.is_empty(), "no scenarios");

    let t1 = Instant::now();
    let run = Command::new("bash")
        .arg(lab.join("run.sh"))
        .args(&scenarios)
        .env("LAB_IMAGE", &image)
        .output()
        .expect("cannot run tests/lab/run.sh");
    let out = String::from_utf8_lossy(&run.stdout);
    eprint!("{}", String::from_utf8_lossy(&run.stderr));
    eprint!("{out}");
    eprintln!(
        "lab: scenarios {:.1}s, total {:.1}s",
        t1.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );

    // "PASS name 12s": the name is the first word.
    let passed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("PASS ")?.split_whitespace().next())
        .collect();
    let failed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .collect();
    assert!(
        failed.is_empty() && run.status.success(),
        "PR lab: {} scenario(s) failed: {failed:?} (run.sh: {}); the guest logs are above",
        failed.len(),
        run.status
    );
    for s in &scenarios {
        assert!(
            passed.contains(&s.as_str()),
            "scenario {s} did not report PASS"
        );
    }
}
