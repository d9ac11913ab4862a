//! The PR lab's driver, shared by tests/lab.rs (the x86_64 lab) and tests/lab_foreign.rs (a
//! foreign architecture's): runs `tests/lab/setup.sh` then `tests/lab/run.sh` with the given
//! environment, prints what they say, and fails unless every scenario reported PASS.
//! `LAB_SCENARIOS="a b"` runs a subset of the scenarios in `dir`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Runs the scenarios of tests/lab/`dir`/ with `env` set for setup.sh and run.sh.
pub fn run_lab(dir: &str, env: &[(&str, &str)]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lab = root.join("tests/lab");
    crate::common::require_root(
        "the PR lab needs root (apt-get, QEMU, /var/cache/pr-helper-lab): run the suite as root",
    );

    let t0 = Instant::now();
    let setup = Command::new("bash")
        .arg(lab.join("setup.sh"))
        .envs(env.iter().copied())
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

    let mut scenarios: Vec<String> = std::fs::read_dir(lab.join(dir))
        .unwrap_or_else(|e| panic!("no tests/lab/{dir}: {e}"))
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
        .envs(env.iter().copied())
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

    // "PASS name 12.3s", "FAIL name rc=N 12.3s"
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
