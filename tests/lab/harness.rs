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
        "PR lab: {} scenario(s) failed: {failed:?} (run.sh: {}); why:\n{}\nthe guest logs are above",
        failed.len(),
        run.status,
        failure_reasons(&out)
    );
    for s in &scenarios {
        assert!(
            passed.contains(&s.as_str()),
            "scenario {s} did not report PASS"
        );
    }
}

/// What each failed scenario's log says of why: its `ASSERTION FAILED` line and what follows
/// it (the helpers' last words), or its last lines when it has none (a scenario that ran out
/// of time), so that a run whose output is cut to its end still names the reason.
fn failure_reasons(out: &str) -> String {
    let mut reasons = String::new();
    let mut lines = out.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(fail) = line.strip_prefix("FAIL ") else {
            continue;
        };
        let mut log = Vec::new();
        while let Some(l) = lines.peek().and_then(|l| l.strip_prefix("    | ")) {
            log.push(l);
            lines.next();
        }
        let why: Vec<&str> = match log.iter().position(|l| l.starts_with("ASSERTION FAILED")) {
            Some(i) => log[i..].iter().take(12).copied().collect(),
            None => log[log.len().saturating_sub(5)..].to_vec(),
        };
        reasons.push_str(&format!("  {fail}:\n"));
        for l in why {
            reasons.push_str(&format!("    {l}\n"));
        }
    }
    reasons
}

#[test]
fn failure_reasons_name_the_assertion_or_the_last_lines() {
    let out = "PASS 01-fresh 1.0s\nFAIL 28-migration rc=1 167.9s\n    | round 1\n    | ASSERTION FAILED: no QMP answer\n    | -- /tmp/console.a1\nFAIL 27-mpath-faults rc=did-not-run ?s\nlab: 1 passed, 2 failed\n";
    assert_eq!(
        failure_reasons(out),
        "  28-migration rc=1 167.9s:\n    ASSERTION FAILED: no QMP answer\n    -- /tmp/console.a1\n  27-mpath-faults rc=did-not-run ?s:\n"
    );
}
