#!/usr/bin/env bash
# Builds pr-helper as one static musl binary: the artifact that goes into images.
#
#   packaging/build-static.sh [--release | --unit-tests] [TARGET...]
#
# TARGET is x86_64-unknown-linux-musl (the default), aarch64-unknown-linux-musl,
# powerpc64le-unknown-linux-musl, s390x-unknown-linux-musl, or `all` for the four. Each binary
# lands at target/TARGET/release/pr-helper. With --release, it also writes
# target/dist/pr-helper-VERSION-ARCH.tar.gz for each target (the binary, install.sh, man
# pages, units, OpenRC, dracut and initramfs-tools files, README.md) and target/dist/SHA256SUMS.
# The last line for each target is `build-static: TARGET BYTES PATH`. With --unit-tests it
# builds the library's unit tests for each target instead (panic=abort, for qemu-user: run
# them with RUSTC_BOOTSTRAP=1 and `-Z unstable-options --force-run-in-process`).
#
# Two routes, chosen per target:
#   - rustup with that target's std installed (`rustup target add TARGET`): plain cargo.
#   - otherwise Debian 12's Rust 1.96 (rustc-web, cargo-web, rust-web-src from
#     bookworm-security) builds std for musl from its source with -Zbuild-std, and links
#     against Debian's musl (musl-dev; for a foreign architecture its musl-dev unpacked, not
#     installed) with gcc (for a foreign architecture Debian's cross gcc). The script installs
#     what is missing with apt-get (run it as root the first time) and refuses to go on when
#     rustc-web and rust-web-src are not the same version.
# See docs/static-builds.md for the route's details, sizes and what musl changes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "build-static: $*" >&2; }
die() {
    say "$*"
    exit 1
}
usage() {
    echo "usage: $0 [--release] [TARGET...|all]" >&2
    exit 2
}

release=0
unit_tests=0
targets=()
for a in "$@"; do
    case "$a" in
    --release) release=1 ;;
    --unit-tests) unit_tests=1 ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    all) targets+=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl
        powerpc64le-unknown-linux-musl s390x-unknown-linux-musl) ;;
    *-unknown-linux-musl) targets+=("$a") ;;
    *) usage ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-musl)

host_arch=$(uname -m)
cache=${PR_HELPER_BUILD_CACHE:-$root/target/static-build}
mkdir -p "$cache"
# One build at a time per cache: the link directories are rebuilt in place, and tests, the lab
# and the test command may call the script at once (cargo itself waits on its own lock).
exec 9>"$cache/.lock"
flock 9

apt_updated=0
apt_install() {
    [ "$(id -u)" = 0 ] || die "missing packages: $*; install them (apt-get install $*) or run as root"
    export DEBIAN_FRONTEND=noninteractive
    [ $apt_updated = 1 ] || { apt-get -o DPkg::Lock::Timeout=600 update -qq; apt_updated=1; }
    say "installing $*"
    apt-get install -o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends "$@" >/dev/null ||
        die "apt-get install $* failed"
}
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'; }
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }

# The Debian toolchain, checked and installed once.
debian_toolchain_ready=0
debian_toolchain() {
    [ $debian_toolchain_ready = 1 ] && return
    local missing=()
    for p in rustc-web cargo-web rust-web-src; do installed "$p" || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        for p in rustc cargo; do
            installed "$p" && die "Debian's $p package is installed and conflicts with rustc-web/cargo-web (remove it, or use rustup with: rustup target add ${targets[*]})"
        done
        apt_install "${missing[@]}"
    fi
    local rv sv cv
    rv=$(pkg_version rustc-web)
    sv=$(pkg_version rust-web-src)
    cv=$(pkg_version cargo-web)
    [ "$rv" = "$sv" ] || die "rustc-web is $rv but rust-web-src is $sv: std must be built from the compiler's own source; install the same version of both (apt-get install rustc-web=$sv or rust-web-src=$rv)"
    [ "$rv" = "$cv" ] || die "rustc-web is $rv but cargo-web is $cv: install the same version of both"
    dpkg --compare-versions "$rv" ge 1.85 || die "rustc-web $rv is older than 1.85 (edition 2024): install the bookworm-security version"
    [ -d /usr/lib/rustlib/src/rust/library/std ] || die "no std source at /usr/lib/rustlib/src/rust/library (rust-web-src $sv)"
    debian_toolchain_ready=1
}

# rustup's toolchain, when it has the target's std.
rustup_has() {
    command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$1"
}

# Per target: Debian architecture, GNU triple of the cross gcc, and musl's library directory.
target_facts() {
    case "$1" in
    x86_64-unknown-linux-musl) debarch=amd64 gnu=x86_64-linux-gnu ;;
    aarch64-unknown-linux-musl) debarch=arm64 gnu=aarch64-linux-gnu ;;
    powerpc64le-unknown-linux-musl) debarch=ppc64el gnu=powerpc64le-linux-gnu ;;
    s390x-unknown-linux-musl) debarch=s390x gnu=s390x-linux-gnu ;;
    *) die "unknown target $1" ;;
    esac
    arch=${1%%-*}
    muslarch=${gnu%%-*}
    native=0
    [ "$arch" = "$host_arch" ] && native=1
    if [ $native = 1 ]; then cc=gcc; else cc=$gnu-gcc; fi
}

# musl's crt objects and libc.a for the target: the installed musl-dev natively, else the
# foreign architecture's musl-dev unpacked under the cache (apt lists of its own, the
# machine's sources, nothing installed and dpkg's architectures untouched). Sets musl_lib (a
# global, not printed: die must end the script, not a command substitution's subshell).
musl_libdir() {
    if [ $native = 1 ]; then
        installed musl-dev || apt_install musl-dev
        musl_lib=/usr/lib/$muslarch-linux-musl
        return
    fi
    local dir=$cache/musl-$debarch
    if [ ! -f "$dir/usr/lib/$muslarch-linux-musl/libc.a" ]; then
        [ "$(id -u)" = 0 ] || die "fetching musl-dev:$debarch needs root (apt-get download)"
        local opts=(-o "Dir::State::Lists=$cache/apt-$debarch/lists" -o Dir::State::status=/dev/null
            -o "Dir::Cache=$cache/apt-$debarch/cache" -o "APT::Architecture=$debarch"
            -o "APT::Architectures::=$debarch")
        mkdir -p "$cache/apt-$debarch/lists/partial" "$cache/apt-$debarch/cache/archives/partial" "$dir.debs"
        say "fetching musl-dev:$debarch"
        # One index out of step on a mirror fails the whole update but leaves the others' lists
        # (musl-dev is in main): try once more, then go on to the download, which says whether
        # what is needed is there.
        apt-get "${opts[@]}" update -qq >/dev/null 2>&1 ||
            apt-get "${opts[@]}" update -qq >/dev/null 2>&1 ||
            say "apt-get update for $debarch failed; trying the download with the lists it got"
        (cd "$dir.debs" && apt-get "${opts[@]}" download -qq "musl-dev:$debarch" 2>/dev/null) ||
            die "apt-get download musl-dev:$debarch failed (apt-get update for $debarch: see above)"
        rm -rf "$dir"
        dpkg-deb -x "$dir.debs"/musl-dev_*_"$debarch".deb "$dir"
        rm -rf "$dir.debs"
    fi
    musl_lib=$dir/usr/lib/$muslarch-linux-musl
}

# The directory rustc's self-contained link reads (-L native=): musl's crt objects and libc.a,
# gcc's crtbegin/crtend, and libunwind.a. With panic=abort and std built without its
# backtrace feature nothing unwinds, so libunwind.a holds only stubs: on powerpc64le std's
# personality routine still names two unwinder functions after LTO (they abort, never
# reached), and the unit tests' libtest prints backtraces through two more (no frames).
# The linker takes a stub only where something names it. Sets link (a global, as musl_libdir).
link_dir() {
    local t=$1 libdir dir
    musl_libdir
    libdir=$musl_lib
    command -v "$cc" >/dev/null || apt_install "gcc-$gnu"
    dir=$cache/link-$t
    rm -rf "$dir"
    mkdir -p "$dir"
    for f in crt1.o Scrt1.o rcrt1.o crti.o crtn.o libc.a; do
        [ -f "$libdir/$f" ] || die "$libdir/$f missing (musl-dev:$debarch)"
        cp "$libdir/$f" "$dir/"
    done
    for f in crtbegin.o crtend.o crtbeginS.o crtendS.o crtbeginT.o; do
        local p
        p=$("$cc" -print-file-name="$f")
        [ -f "$p" ] && cp "$p" "$dir/"
    done
    printf '%s\n' 'void abort(void);' \
        'unsigned long _Unwind_GetTextRelBase(void *c) { (void)c; abort(); }' \
        'unsigned long _Unwind_GetDataRelBase(void *c) { (void)c; abort(); }' \
        'int _Unwind_Backtrace(void *trace, void *arg) { (void)trace; (void)arg; return 5; /* _URC_END_OF_STACK */ }' \
        'unsigned long _Unwind_GetIP(void *c) { (void)c; return 0; }' >"$dir/unwind-stubs.c"
    "$cc" -O2 -fPIC -ffunction-sections -c -o "$dir/unwind-stubs.o" "$dir/unwind-stubs.c"
    ar rcs "$dir/libunwind.a" "$dir/unwind-stubs.o"
    link=$dir
}

build_one() {
    local t=$1 upper flags=()
    target_facts "$t"
    upper=$(tr 'a-z-' 'A-Z_' <<<"$t")
    local verb=(build)
    # Each test in the same process: qemu-user cannot re-execute a foreign binary.
    [ $unit_tests = 1 ] && verb=(test --lib --no-run -Zpanic-abort-tests) && flags+=(-C panic=abort)
    # Rust flags from the environment would replace the target's own below.
    unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
    [ "$arch" = s390x ] && flags+=(-C target-feature=+crt-static) # tier 3: dynamic by default
    if rustup_has "$t"; then
        say "$t: rustup's std"
        [ $native = 1 ] || command -v "$cc" >/dev/null || apt_install "gcc-$gnu"
        [ $native = 1 ] || export "CARGO_TARGET_${upper}_LINKER=$cc"
        [ ${#flags[@]} -gt 0 ] && export "CARGO_TARGET_${upper}_RUSTFLAGS=${flags[*]}"
        (cd "$root" && RUSTC_BOOTSTRAP=$unit_tests cargo "${verb[@]}" --release --locked --target "$t") 2>&1 | tee "$cache/cargo-$t.log" >&2
        [ "${PIPESTATUS[0]}" = 0 ] || die "$t: cargo ${verb[*]} failed"
    else
        debian_toolchain
        local dir
        link_dir "$t"
        dir=$link
        say "$t: Debian's rustc $(pkg_version rustc-web), std built from source, linked by $cc"
        flags+=(-C link-self-contained=yes -L "native=$dir")
        export "CARGO_TARGET_${upper}_LINKER=$cc" "CARGO_TARGET_${upper}_RUSTFLAGS=${flags[*]}"
        # Debian's cargo and rustc by full path: rustup's shims come first on PATH.
        (cd "$root" && env -u RUSTUP_TOOLCHAIN RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
            /usr/bin/cargo "${verb[@]}" --release --locked --target "$t" \
            -Zbuild-std=std,panic_abort -Zbuild-std-features=${PR_HELPER_STD_FEATURES-optimize_for_size}) \
            2>&1 | tee "$cache/cargo-$t.log" >&2
        [ "${PIPESTATUS[0]}" = 0 ] || die "$t: cargo ${verb[*]} (-Zbuild-std) failed"
    fi
    local bin=$root/target/$t/release/pr-helper
    if [ $unit_tests = 1 ]; then
        bin=$(sed -n 's/^ *Executable unittests src\/lib.rs (\(.*\))$/\1/p' "$cache/cargo-$t.log" | tail -1)
        [ -n "$bin" ] || die "$t: cargo did not name the unit test binary"
        bin=$root/$bin
        echo "build-static: $t-unit-tests $(stat -c %s "$bin") $bin"
        return
    fi
    [ -x "$bin" ] || die "$t: no binary at $bin"
    if command -v file >/dev/null; then
        file -b "$bin" | grep -Eq 'static(-pie| ?ally) linked' || die "$t: $bin is not static: $(file -b "$bin")"
    fi
    echo "build-static: $t $(stat -c %s "$bin") $bin"
}

# A tarball a person installs from: unpack, then ./install.sh / /usr.
package_one() {
    local t=$1 version name stage
    target_facts "$t"
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)
    name=pr-helper-$version-$arch
    stage=$root/target/dist/stage/$name
    rm -rf "$stage"
    mkdir -p "$stage"
    cp "$root/target/$t/release/pr-helper" "$stage/pr-helper"
    cp "$root/packaging/install.sh" "$stage/install.sh"
    cp -r "$root/packaging/man" "$root/packaging/systemd" "$root/packaging/openrc" \
        "$root/packaging/dracut" "$root/packaging/initramfs-tools" "$stage/"
    cp "$root/README.md" "$stage/"
    # Same bytes for the same inputs: fixed owner, order and time.
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
        -C "$root/target/dist/stage" -czf "$root/target/dist/$name.tar.gz" "$name"
    rm -rf "$stage"
    echo "build-static: $t $root/target/dist/$name.tar.gz"
}

for t in "${targets[@]}"; do build_one "$t"; done
if [ $release = 1 ]; then
    mkdir -p "$root/target/dist"
    for t in "${targets[@]}"; do package_one "$t"; done
    rmdir "$root/target/dist/stage"
    (cd "$root/target/dist" && sha256sum pr-helper-*.tar.gz >SHA256SUMS)
    echo "build-static: $root/target/dist/SHA256SUMS"
fi
