#!/usr/bin/env bash
# The systemd flavour of the PR lab: tests/lab/systemd/run.sh (as root). Boots the guest's
# Debian trixie root with systemd as PID 1 (a tmpfs overlay over the read-only 9p root, made
# by stage1.sh in the lab's initramfs), our binary and units installed by
# packaging/install.sh, and runs checks.sh there as a oneshot unit, which powers off.
# See docs/lab.md ("systemd as PID 1").
#
# Environment: LAB_BIN and LAB_SECCOMP_TEST as for tests/lab/run.sh (default: built with
# packaging/build-static.sh), LAB_IMAGE (tests/lab/setup.sh's output directory), LAB_KEEP=1,
# LAB_APPEND (extra kernel arguments), LAB_ACCEL (default tcg), LAB_TIMEOUT (the whole VM,
# default 1500 s).
# Prints "PASS step SECS" / "FAIL step SECS" (with the step's log) for each check, then
# "lab-systemd: P passed, F failed (TOTAL s, boot B s)"; exits 1 unless every step passed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lab=$(cd "$here/.." && pwd)
repo=$(cd "$here/../../.." && pwd)
log() { echo "lab-systemd: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "run as root"; exit 1; }
target=x86_64-unknown-linux-musl

image=${LAB_IMAGE:-}
[ -n "$image" ] || image=$(bash "$lab/setup.sh" | tail -1)
[ -f "$image/ready" ] || { log "no lab image in '$image' (tests/lab/setup.sh failed?)"; exit 1; }
cache=$(dirname "$image")
rootdir=$cache/root-trixie
[ -f "$rootdir/.ready" ] || { log "no guest root in '$rootdir' (tests/lab/setup.sh failed?)"; exit 1; }
kver=$(cat "$image/kver")

bin=${LAB_BIN:-}
if [ -z "$bin" ]; then
    log "building the static musl pr-helper (packaging/build-static.sh $target)"
    built=$("$repo/packaging/build-static.sh" "$target") || { log "packaging/build-static.sh failed"; exit 1; }
    bin=$(awk -v t="$target" '$2 == t { print $4 }' <<<"$built")
fi
# The crate's unit tests: the seccomp kill (step 5) runs one of them as the service.
utest=${LAB_SECCOMP_TEST:-}
if [ -z "$utest" ]; then
    log "building the unit tests (packaging/build-static.sh --unit-tests $target)"
    built=$("$repo/packaging/build-static.sh" --unit-tests "$target") ||
        { log "packaging/build-static.sh --unit-tests failed"; exit 1; }
    utest=$(awk -v t="$target-unit-tests" '$2 == t { print $4 }' <<<"$built")
fi
bin=$(readlink -f "$bin")
utest=$(readlink -f "$utest")
[ -x "$bin" ] && [ -x "$utest" ] || { log "no binary at $bin or $utest"; exit 1; }

out=$(mktemp -d /tmp/pr-lab-systemd.XXXXXX)
chmod 755 "$out"
qpid=""
cleanup() {
    [ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
    if [ "${LAB_KEEP:-0}" = 1 ]; then log "results in $out"; else rm -rf "$out"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The initramfs: the lab's own, and a second archive after it (the kernel unpacks both, the
# later file wins) with stage1.sh as /init and overlayfs from the kernel's modules package.
mdeb=$(ls "$cache"/debs/linux-modules-"$kver"_*.deb "$cache"/debs/linux-image-"$kver"_*.deb 2>/dev/null | head -1 || true)
[ -n "$mdeb" ] || { log "no modules package for $kver in $cache/debs"; exit 1; }
mkdir -p "$out/x/mods" "$out/deb"
dpkg-deb --fsys-tarfile "$mdeb" | tar -x -C "$out/deb" --wildcards '*/fs/overlayfs/overlay.ko*'
ko=$(find "$out/deb" -name 'overlay.ko*' | head -1)
[ -n "$ko" ] || { log "no overlay.ko in $mdeb"; exit 1; }
case "$ko" in
*.xz) xz -dc "$ko" >"$out/x/mods/overlay.ko" ;;
*.zst) zstd -qdc "$ko" >"$out/x/mods/overlay.ko" ;;
*) cp "$ko" "$out/x/mods/overlay.ko" ;;
esac
install -m 0755 "$here/stage1.sh" "$out/x/init"
(cd "$out/x" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/extra.cpio.gz"
cat "$image/lab.cpio.gz" "$out/extra.cpio.gz" >"$out/initrd.gz"
rm -rf "$out/deb" "$out/x"

# The guest reads its scripts from a copy: a shell reads its script as it goes, and an edit
# under a running check would make it jump.
mkdir -p "$out/res/lab"
cp -r "$lab/lib.sh" "$here" "$out/res/lab/"
{
    echo "export LAB_BIN=/host$bin"
    echo "export LAB_SECCOMP_TEST=/host$utest"
    echo "export LAB_TESTS=/lab-out/lab"
    echo "export LAB_REPO=/host$repo"
    echo "export LAB_OUT=/lab-out"
} >"$out/res/env"

accel=${LAB_ACCEL:-tcg}
limit=${LAB_TIMEOUT:-1500}
start=$(date +%s)
rc=0
# audit=1: the kernel logs the seccomp kill of step 5 (type=1326), which the journal shows.
timeout -k 5 "$limit" qemu-system-x86_64 -accel "$accel" -m 1024 -nographic -no-reboot \
    -kernel "$image/vmlinuz" -initrd "$out/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 audit=1 systemd.show_status=0 lab.env=/lab-out/env ${LAB_APPEND:-}" \
    -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on \
    -virtfs "local,path=$rootdir,mount_tag=root,security_model=none,readonly=on" \
    -virtfs "local,path=$out/res,mount_tag=out,security_model=none" \
    </dev/null >"$out/console" 2>&1 &
qpid=$!
wait $qpid || rc=$?
qpid=""
elapsed=$(($(date +%s) - start))
[ $rc = 0 ] || log "qemu exited with $rc (124: timed out after ${limit}s)"

# The checks write res/STEP.rc, .secs and .log; res/boot has systemd's boot time.
pass=0 fail=0
steps=$(cat "$out/res/steps" 2>/dev/null || sed -n 's/^steps="\(.*\)"$/\1/p' "$here/checks.sh")
for s in $steps; do
    secs="$(cat "$out/res/$s.secs" 2>/dev/null || echo "?")s"
    if [ "$(cat "$out/res/$s.rc" 2>/dev/null)" = 0 ]; then
        echo "PASS $s $secs"
        pass=$((pass + 1))
    else
        echo "FAIL $s rc=$(cat "$out/res/$s.rc" 2>/dev/null || echo did-not-run) $secs"
        [ -f "$out/res/$s.log" ] && sed 's/^/    | /' "$out/res/$s.log"
        fail=$((fail + 1))
    fi
done
if [ $fail != 0 ] || ! grep -q '@@LAB-DONE' "$out/console"; then
    log "console (last 80 lines):"
    tr -d '\r' <"$out/console" | tail -n 80 >&2
fi
[ -f "$out/res/security.txt" ] && sed 's/^/    security| /' "$out/res/security.txt"
boot=$(cat "$out/res/boot" 2>/dev/null || echo "?")
echo "lab-systemd: $pass passed, $fail failed (${elapsed}s VM start to power-off, kernel $kver, boot: $boot)"
[ $fail = 0 ] && [ $pass -gt 0 ] && [ $rc = 0 ]
