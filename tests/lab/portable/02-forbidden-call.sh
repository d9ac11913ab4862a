# Any architecture (LAB_ARCH): the seccomp filter kills a forbidden system call under this
# kernel, and a panic under it still ends with SIGABRT. The daemon has no way to be made to misbehave, so the crate's own unit test
# (sys::seccomp::tests::a_forbidden_call_kills_the_process: install the filter, make allowed
# calls, get EACCES from a writable open, then getppid, which must end in SIGSYS) runs here,
# built for this architecture ($LAB_SECCOMP_TEST, see run.sh); the kernel's audit line for
# the kill names the architecture and the call.
. "$LAB_TESTS/lib.sh"
[ -n "${LAB_SECCOMP_TEST:-}" ] || die "no LAB_SECCOMP_TEST: run.sh builds the unit tests for LAB_ARCH"
dmesg -c >/dev/null
# Both seccomp tests that need a kernel: the forbidden call (SIGSYS) and a panic under the
# filter (SIGABRT, which needs tkill for musl's abort()).
ok "$LAB_SECCOMP_TEST" sys::seccomp::tests::a_ --test-threads=1
expect_in "2 passed" "the unit tests passed"
# type=1326 (AUDIT_SECCOMP), sig=31 (SIGSYS), code=0x80000000 (SECCOMP_RET_KILL_PROCESS): one
# for each of the test's two children. The kernel writes it only with audit on (run.sh boots a
# foreign architecture with audit=1).
grep -qw audit=1 /proc/cmdline || { say "no audit=1 on the kernel command line: no audit line to check"; exit 0; }
OUT=$(dmesg | grep 'type=1326' || true)
echo "$OUT"
expect_in "sig=31 arch=$(audit_arch) syscall=$(getppid_nr)" "the kernel killed getppid ($(uname -m))"
expect_in "code=0x80000000" "with SECCOMP_RET_KILL_PROCESS"
