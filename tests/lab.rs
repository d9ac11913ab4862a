//! The PR lab: real persistent reservations in a VM (QEMU TCG, Debian trixie-backports kernel,
//! LIO tcm_loop exporting one LUN through two initiator nexuses, dm-multipath with multipathd,
//! an nvmet namespace), driven through our helper (the static musl binary) with `pr-client`
//! and compared with the C helper, direct SG_IO, mpathpersist and nvme-cli. See docs/lab.md.
//!
//! Runs `tests/lab/setup.sh` (installs packages, builds the cached kernel + initramfs under
//! /var/cache/pr-helper-lab) and `tests/lab/run.sh` (every scenario under
//! tests/lab/scenarios/), and fails unless every scenario passed. Heavy tier: `#[ignore]`d, run
//! by tests/run-all.sh; it needs root and fails saying so otherwise. The guest's log of each
//! failing scenario is printed. `LAB_SCENARIOS="01-fresh 02-register"` runs a subset.

mod common;
#[path = "lab/harness.rs"]
mod harness;

#[test]
#[ignore = "heavy tier: boots QEMU VMs (apt-get, debootstrap, root; its time: docs/testing.md); tests/run-all.sh runs it"]
fn pr_lab() {
    harness::run_lab("scenarios", &[]);
}
