#!/usr/bin/env bash
# Runs PR lab scenarios in a VM: tests/lab/run.sh [SCENARIO...] (names such as 01-fresh, or
# paths; default: every tests/lab/scenarios/*.sh). Needs root and tests/lab/setup.sh (run
# here unless LAB_IMAGE names its output directory).
#
# Environment:
#   LAB_BIN=PATH     the static pr-helper to test (default: the shipped artifact, the static
#                    musl binary that packaging/build-static.sh builds into
#                    target/x86_64-unknown-linux-musl/release/, or LAB_ARCH's target)
#   LAB_SECCOMP_TEST=PATH  the crate's unit-test binary for LAB_ARCH (portable/02-forbidden-call;
#                    default with LAB_BIN unset: build-static.sh --unit-tests builds it)
#   LAB_JOBS=N       VMs run in parallel, scenarios split between them (default: 2 if nproc>=2)
#   LAB_TIMEOUT=S    per scenario inside the guest (default 240; a scenario's "# lab-timeout:"
#                    line overrides it)
#   LAB_ACCEL=tcg    QEMU accelerator (KVM was seen to hang on these machines)
#   LAB_KERNEL=bookworm  Debian 12's 6.1 kernel instead of trixie-backports' 7.x (passed to setup.sh)
#   LAB_ARCH=arm64|s390x|ppc64el  a foreign architecture's lab (setup.sh builds it): Debian 12's
#                    kernel of that architecture under its qemu-system-* (TCG), the static
#                    binary of that architecture, one VM, and by default the scenarios of
#                    tests/lab/portable/ (ours and SG_IO only: no x86 tools, no guest Debian)
#   LAB_KEEP=1       keep the results directory (printed)
#   LAB_APPEND=...   extra kernel arguments (e.g. loglevel=7 lab.nexus=3 lab.luns=2)
# Prints "PASS name SECS" / "FAIL name rc=N SECS" (the scenario's time in the guest, its LUN
# set-up included) with the guest's log for each failure, and a last line
# "lab: P passed, F failed (...)"; exits 1 if anything failed or did not run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { echo "lab: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "run as root"; exit 1; }

# Per architecture: QEMU, its machine, the serial console, the musl target, the VMs in
# parallel (a foreign one runs its few scenarios in one) and the seconds a boot may take.
# pseries boots through x-vof (QEMU's small Open Firmware): SLOF adds ~50 s under TCG; arm64
# runs a cortex-a57: -cpu max emulates pointer authentication, which made the boot ~9x slower.
arch=${LAB_ARCH:-amd64}
case "$arch" in
amd64) qbin=qemu-system-x86_64 machine=() console=ttyS0 target=x86_64-unknown-linux-musl vms=2 boot_s=180 ;;
arm64) qbin=qemu-system-aarch64 machine=(-M virt -cpu cortex-a57) console=ttyAMA0 target=aarch64-unknown-linux-musl ;;
s390x) qbin=qemu-system-s390x machine=(-M s390-ccw-virtio) console=ttysclp0 target=s390x-unknown-linux-musl ;;
ppc64el) qbin=qemu-system-ppc64 machine=(-M pseries,x-vof=on) console=hvc0 target=powerpc64le-unknown-linux-musl ;;
*) log "LAB_ARCH=$arch: amd64, arm64, s390x or ppc64el"; exit 1 ;;
esac
# audit=1: the kernel logs a seccomp kill (portable/02-forbidden-call.sh checks its line).
[ "$arch" = amd64 ] || vms=1 boot_s=180 kargs=audit=1

image=${LAB_IMAGE:-}
if [ -z "$image" ]; then
    image=$(bash "$here/setup.sh" | tail -1)
fi
[ -f "$image/ready" ] || { log "no lab image in '$image' (tests/lab/setup.sh failed?)"; exit 1; }
# The guest's Debian (x86_64) only for the amd64 lab.
rootshare=()
if [ "$arch" = amd64 ]; then
    rootdir=$(dirname "$image")/root-trixie
    [ -f "$rootdir/.ready" ] || { log "no guest root in '$rootdir' (tests/lab/setup.sh failed?)"; exit 1; }
    rootshare=(-virtfs "local,path=$rootdir,mount_tag=root,security_model=none,readonly=on")
fi

bin=${LAB_BIN:-}
if [ -z "$bin" ]; then
    log "building the static musl pr-helper (packaging/build-static.sh $target)"
    built=$("$repo/packaging/build-static.sh" "$target") ||
        { log "packaging/build-static.sh failed"; exit 1; }
    bin=$(awk -v t="$target" '$2 == t { print $4 }' <<<"$built")
fi
# A foreign architecture's lab also runs the crate's seccomp unit tests (LAB_SECCOMP_TEST).
if [ "$arch" != amd64 ] && [ -z "${LAB_SECCOMP_TEST:-}" ]; then
    log "building the unit tests for $target (packaging/build-static.sh --unit-tests $target)"
    built=$("$repo/packaging/build-static.sh" --unit-tests "$target") ||
        { log "packaging/build-static.sh --unit-tests failed"; exit 1; }
    LAB_SECCOMP_TEST=$(awk -v t="$target-unit-tests" '$2 == t { print $4 }' <<<"$built")
fi
bin=$(readlink -f "$bin")
[ -x "$bin" ] || { log "no binary at $bin"; exit 1; }
if ldd "$bin" 2>&1 | grep -q "=>"; then
    log "$bin is dynamically linked: the busybox guest needs a static binary"
    exit 1
fi

scen=()
sdir=$here/scenarios
[ "$arch" = amd64 ] || sdir=$here/portable
if [ $# -eq 0 ]; then
    for f in "$sdir"/*.sh; do scen+=("$f"); done
else
    for a in "$@"; do
        if [ -f "$a" ]; then scen+=("$(readlink -f "$a")")
        elif [ -f "$sdir/$a" ]; then scen+=("$sdir/$a")
        elif [ -f "$sdir/$a.sh" ]; then scen+=("$sdir/$a.sh")
        else log "no scenario '$a' in $sdir"; exit 1; fi
    done
fi
[ ${#scen[@]} -gt 0 ] || { log "no scenarios"; exit 1; }

jobs=${LAB_JOBS:-}
if [ -z "$jobs" ]; then
    jobs=1
    [ "$(nproc)" -ge 2 ] && jobs=$vms
fi
[ "$jobs" -le ${#scen[@]} ] || jobs=${#scen[@]}
tmo=${LAB_TIMEOUT:-240}
accel=${LAB_ACCEL:-tcg}
qemu=$(command -v $qbin || true)
[ -n "$qemu" ] || { log "$qbin is missing (tests/lab/setup.sh installs it)"; exit 1; }

out=$(mktemp -d /tmp/pr-lab.XXXXXX)
chmod 755 "$out"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "$out"/vm*/timeout.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
    if [ "${LAB_KEEP:-0}" = 1 ]; then log "results in $out"; else rm -rf "$out"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One VM per job, each with its own writable results share and plan.
# vm_job J: boots VM J for the scenarios of its plan that have no result yet; boots again
# (at most 3 times in all) if the guest stopped early (a LUN tear-down that hung in the kernel).
vm_job() {
    local j=$1 d="$out/vm$1" boot rest n limit s name rc=0
    for boot in 1 2 3; do
        rest=()
        while read -r s; do
            name=$(basename "$s" .sh)
            [ -f "$d/$name.rc" ] || rest+=("$s")
        done <"$d/plan"
        [ ${#rest[@]} -gt 0 ] || return 0
        [ $boot = 1 ] || log "VM $j: boot $boot for ${#rest[@]} scenario(s) left"
        printf '%s\n' "${rest[@]}" >"$d/plan.now"
        # Boot (~20 s for amd64 on a quiet machine; $boot_s allows for a loaded one), plus each
        # scenario's limit ("# lab-timeout:" or LAB_TIMEOUT), plus 60 for its LUN set-up and
        # tear-down: generous, as the guest's own limits should fire first and say what they
        # waited for.
        limit=$boot_s
        for s in "${rest[@]}"; do
            st=$(sed -n 's/^# lab-timeout: *\([0-9]*\).*/\1/p' "${s#/host}" | head -1)
            limit=$((limit + ${st:-$tmo} + 60))
        done
        rc=0
        timeout -k 5 "$limit" "$qemu" "${machine[@]}" -accel "$accel" -m 1024 -nographic -no-reboot \
            -kernel "$image/vmlinuz" -initrd "$image/lab.cpio.gz" \
            -append "console=$console quiet panic=-1 nvme_core.multipath=N lab.plan=/out/plan.now lab.env=/out/env lab.timeout=$tmo ${kargs:-} ${LAB_APPEND:-}" \
            -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on \
            "${rootshare[@]}" \
            -virtfs "local,path=$d,mount_tag=out,security_model=none" \
            </dev/null >>"$d/console" 2>&1 &
        echo $! >"$d/timeout.pid"
        wait $! || rc=$?
        if [ $rc != 0 ]; then
            log "VM $j: qemu exited with $rc (124: timed out after ${limit}s)"
            return 1
        fi
        grep -q '@@LAB-FATAL' "$d/console" && return 1
    done
    return 0
}

# Longest first, each to the VM with the least work so far: a scenario's weight is its
# "# lab-weight:" line (seconds on a quiet machine; the nested QEMU one has it), else 15.
load=()
for ((j = 0; j < jobs; j++)); do
    mkdir -p "$out/vm$j"
    : >"$out/vm$j/plan"
    load[j]=0
done
while read -r w f; do
    best=0
    for ((j = 1; j < jobs; j++)); do [ "${load[j]}" -lt "${load[best]}" ] && best=$j; done
    echo "/host$f" >>"$out/vm$best/plan"
    load[best]=$((load[best] + w))
done < <(for f in "${scen[@]}"; do
    w=$(sed -n 's/^# lab-weight: *\([0-9]*\).*/\1/p' "$f" | head -1)
    echo "${w:-15} $f"
done | sort -s -k1,1nr)

start=$(date +%s)
for ((j = 0; j < jobs; j++)); do
    d="$out/vm$j"
    {
        echo "export LAB_BIN=/host$bin"
        echo "export LAB_TESTS=/host$here"
        echo "export LAB_OUT=/out"
        echo "export LAB_IMAGE=/host$image"
        [ -z "${LAB_SECCOMP_TEST:-}" ] || echo "export LAB_SECCOMP_TEST=/host$(readlink -f "$LAB_SECCOMP_TEST")"
    } >"$d/env"
    vm_job "$j" &
    pids+=($!)
done
vmfail=0
for ((j = 0; j < jobs; j++)); do
    rc=0
    wait "${pids[$j]}" || rc=$?
    [ $rc = 0 ] || vmfail=1
done
pids=()
elapsed=$(($(date +%s) - start))

pass=0 fail=0
for ((j = 0; j < jobs; j++)); do
    d="$out/vm$j"
    if grep -q '@@LAB-TEARDOWN-HUNG' "$d/console"; then
        log "VM $j: a LUN tear-down hung (rebooted): $(grep -a '@@LAB-TEARDOWN-HUNG' "$d/console" | tr -d '\r' | tr '\n' ' ')"
    fi
    if grep -q '@@LAB-FATAL' "$d/console" || ! grep -q '@@LAB-DONE' "$d/console"; then
        log "VM $j did not finish its plan; console:"
        tr -d '\r' <"$d/console" | tail -n 80 >&2
    fi
    while read -r s; do
        name=$(basename "$s" .sh)
        secs="$(cat "$d/$name.secs" 2>/dev/null || echo "?")s"
        if [ -f "$d/$name.rc" ] && [ "$(cat "$d/$name.rc")" = 0 ]; then
            echo "PASS $name $secs"
            pass=$((pass + 1))
        else
            rc=$(cat "$d/$name.rc" 2>/dev/null || echo "did-not-run")
            echo "FAIL $name rc=$rc $secs"
            if [ -f "$d/$name.log" ]; then
                sed 's/^/    | /' "$d/$name.log"
            fi
            fail=$((fail + 1))
        fi
    done <"$d/plan"
done
# Boot: the kernel's uptime when /init reached the scenarios (the first VM's first boot).
booted=$(sed -n 's/.*@@LAB-READY.* uptime=\([0-9.]*\).*/\1/p' "$out/vm0/console" | head -1)
echo "lab: $pass passed, $fail failed (${elapsed}s in $jobs VM(s), kernel $(cat "$image/kver") $arch, boot ${booted:-?}s)"
[ $fail = 0 ] && [ $vmfail = 0 ]
