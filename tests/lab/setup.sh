#!/usr/bin/env bash
# PR lab set-up (see docs/lab.md): installs the host packages,
# unpacks a Debian 12 kernel without installing it and builds a busybox initramfs that loads
# LIO tcm_loop and 9p, then runs the scenario named on the kernel command line. For the amd64
# lab it also builds the nested guests' kernel (nested_kernel below).
#
# Unattended on a fresh Debian 12 machine, run as root, idempotent. Everything lands in
# $LAB_CACHE (default /var/cache/pr-helper-lab)/<key>, where <key> is made of the versions of
# the kernel, busybox and this script's inputs; a second run finds it and does nothing.
# Prints the cache directory (the one with vmlinuz and lab.cpio.gz) as its last line.
#
# LAB_ARCH=arm64|s390x|ppc64el builds the lab of a foreign architecture instead (run.sh boots
# it under that architecture's qemu-system-*): Debian 12's kernel and busybox-static of that
# architecture, from apt lists of the lab's own (the machine's dpkg architectures and sources
# untouched), without the guest's Debian root (its scenarios run our static binary only).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${LAB_CACHE:-/var/cache/pr-helper-lab}
log() { echo "lab-setup: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "run as root (apt-get, and the lab's files under $cache)"
    exit 1
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one set-up at a time (concurrent test runs)

arch=${LAB_ARCH:-amd64}
# The bookworm package with that architecture's qemu-system-*; the kernel's meta package.
case "$arch" in
amd64) qpkg=qemu-system-x86 kmeta=linux-image-amd64 ;;
arm64) qpkg=qemu-system-arm kmeta=linux-image-arm64 ;;
s390x) qpkg=qemu-system-misc kmeta=linux-image-s390x ;;
ppc64el) qpkg=qemu-system-ppc kmeta=linux-image-powerpc64le ;;
*) log "LAB_ARCH=$arch: amd64, arm64, s390x or ppc64el"; exit 1 ;;
esac

export DEBIAN_FRONTEND=noninteractive
# qemu-system-x86 is the bookworm name (it provides qemu-system-x86_64); qemu-system-common
# brings the C qemu-pr-helper, sg3-utils sg_persist/sg_raw, both used inside the guest.
pkgs=("$qpkg" qemu-system-common busybox-static cpio kmod sg3-utils xz-utils zstd
    debootstrap)
# What building the nested guests' kernel takes (nested_kernel below).
[ "$arch" = amd64 ] && pkgs+=(make gcc libc6-dev flex bison bc libelf-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
updated=0
apt_update() { [ $updated = 1 ] || { apt-get -o DPkg::Lock::Timeout=600 update -qq; updated=1; }; }
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_update
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The kernel: the one linux-image-amd64 depends on. LAB_KERNEL=trixie-backports (default: 7.x,
# split into linux-binary-V and linux-modules-V, from an apt source list and lists of the lab's
# own under $cache/apt-*, never touching the machine's sources; it has nvmet reservations and
# IOC_PR_READ_KEYS) or bookworm (Debian 12's 6.1.0-N from the machine's own sources: boots in
# 6 s instead of 20, without the NVMe scenarios).
# A foreign architecture has bookworm only, from lists of its own (flavour ARCH-bookworm).
flavour=${LAB_KERNEL:-trixie-backports}
[ "$arch" = amd64 ] || flavour=$arch-bookworm
apt_opts=()
# own_lists NAME SUITE...: apt options for a source list, lists and cache of the lab's own
# under $cache/apt-NAME (on top of the architecture options already in apt_opts), updated
# once a day.
own_lists() {
    local ad="$cache/apt-$1" s
    shift
    mkdir -p "$ad/lists/partial" "$ad/cache/archives/partial"
    for s in "$@"; do
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/$s main"
    done >"$ad/sources.list"
    apt_opts+=(-o "Dir::Etc::SourceList=$ad/sources.list" -o Dir::Etc::SourceParts=/nonexistent
        -o "Dir::State::Lists=$ad/lists" -o Dir::State::status=/dev/null -o "Dir::Cache=$ad/cache")
    # once more after a failure: a mirror in the middle of a sync answers with the wrong size
    if [ -z "$(find "$ad/lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null)" ]; then
        apt-get "${apt_opts[@]}" update -qq || { sleep 10; apt-get "${apt_opts[@]}" update -qq; }
    fi
}
case "$flavour" in
bookworm) ;;
trixie-backports) own_lists "$flavour" "debian trixie-backports" ;;
"$arch-bookworm")
    apt_opts=(-o "APT::Architecture=$arch" -o "APT::Architectures::=$arch")
    own_lists "$arch" "debian bookworm" "debian bookworm-updates" "debian-security bookworm-security"
    ;;
*) log "LAB_KERNEL=$flavour: bookworm or trixie-backports"; exit 1 ;;
esac
kpkg=${LAB_KERNEL_PKG:-}
if [ -z "$kpkg" ]; then
    kpkg=$(apt-cache "${apt_opts[@]}" depends "$kmeta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    if [ -z "$kpkg" ] && [ $flavour = bookworm ]; then
        apt_update
        kpkg=$(apt-cache depends "$kmeta" | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    fi
fi
[ -n "$kpkg" ] || { log "cannot find the kernel package (apt-cache depends "$kmeta")"; exit 1; }
kver_pkg=$(apt-cache "${apt_opts[@]}" policy "$kpkg" | awk '/Candidate:/ { print $2 }')
# The packages that hold vmlinuz and the modules: the image itself on 6.1, binary + modules on 7.x.
kdeps=$(apt-cache "${apt_opts[@]}" depends "$kpkg" 2>/dev/null || true)
if [[ $kdeps == *"Depends: linux-binary-"* ]]; then
    kv=${kpkg#linux-image-}
    kdebs=("linux-binary-$kv" "linux-modules-$kv")
else
    kdebs=("$kpkg")
fi
# busybox-static: the machine's own, or the foreign architecture's (downloaded with the kernel).
if [ "$arch" = amd64 ]; then
    bb_ver=$(dpkg-query -W -f='${Version}' busybox-static)
else
    bb_ver=$(apt-cache "${apt_opts[@]}" policy busybox-static | awk '/Candidate:/ { print $2 }')
    kdebs+=(busybox-static)
fi
inputs_sum=$( (cat "$0" "$here/init.sh") | sha256sum | cut -c1-12)
key="${flavour}_${kpkg}_${kver_pkg}_bb${bb_ver}_${inputs_sum}"
key=${key//[^A-Za-z0-9._+-]/_}
dir="$cache/$key"

# root_apt_install DIR LOG PKGS...: trixie-backports' PKGS into the Debian root DIR with its
# apt-get, the output in $cache/LOG (its last lines shown when it fails, and the setup stops).
root_apt_install() {
    local dir=$1 out=$cache/$2 rc=0
    shift 2
    mount --bind /proc "$dir/proc"
    (chroot "$dir" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y -qq --no-install-recommends \
            -t trixie-backports "$@" &&
        chroot "$dir" apt-get clean) >"$out" 2>&1 || rc=$?
    umount "$dir/proc"
    if [ $rc != 0 ]; then
        tail -n 20 "$out" >&2
        log "installing $* in the guest root $dir failed (log: $out)"
        exit 1
    fi
}
# The guest's Debian: trixie made with debootstrap, plus trixie-backports' QEMU 11 (the newest
# C qemu-pr-helper, and the QEMU of the nested-guest scenario), multipath-tools, udev, nvme-cli
# and sg3-utils. The guest mounts it read-only over 9p at /deb and chroots into it (init.sh).
# Rebuilt when this list changes; `rm -rf $cache/root-trixie` refreshes it.
root_pkgs="qemu-system-x86 qemu-system-common sg3-utils multipath-tools udev nvme-cli kmod coreutils"
root_sig="trixie trixie-backports: $root_pkgs"
rootdir="$cache/root-trixie"
if [ "$arch" = amd64 ] && [ "$(cat "$rootdir/.ready" 2>/dev/null)" != "$root_sig" ]; then
    log "building the guest root $rootdir (debootstrap trixie; $root_pkgs)"
    rm -rf "$rootdir" "$rootdir.new"
    debootstrap --variant=minbase trixie "$rootdir.new" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
        { tail -n 20 "$cache/debootstrap.log" >&2; log "debootstrap failed (log: $cache/debootstrap.log)"; exit 1; }
    echo "deb http://deb.debian.org/debian trixie-backports main" >"$rootdir.new/etc/apt/sources.list.d/backports.list"
    # shellcheck disable=SC2086 # the list is words
    root_apt_install "$rootdir.new" root-packages.log $root_pkgs
    # Mount points for the guest's writable tmpfs.
    mkdir -p "$rootdir.new/etc/multipath"
    echo "$root_sig" >"$rootdir.new/.ready"
    mv "$rootdir.new" "$rootdir"
    log "guest root ready: $(chroot "$rootdir" dpkg-query -W -f='${Package} ${Version}\n' qemu-system-x86 multipath-tools | tr '\n' ' ')"
fi
# Packages added to the guest root after root_pkgs: installed on top of it with apt-get (no
# new debootstrap) and recorded in .extras, not in .ready, so that a root made from the list
# above keeps serving checkouts that do not list them. libvirt (trixie-backports' 12.x):
# libvirtd (Debian ships no virtqemud), its QEMU driver and virsh, for the libvirt scenarios.
root_extra="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients"
if [ "$arch" = amd64 ] && [ "$(cat "$rootdir/.extras" 2>/dev/null)" != "$root_extra" ]; then
    log "adding $root_extra to the guest root $rootdir"
    # shellcheck disable=SC2086 # the list is words
    root_apt_install "$rootdir" root-extras.log $root_extra
    # The lab's systemd VM (tests/lab/systemd) boots this root: libvirt's units, which the
    # packages enable, stay off there (the libvirt scenarios start libvirtd by hand).
    find "$rootdir/etc/systemd/system" -type l \( -name 'libvirt*' -o -name 'virtlog*' \) -delete
    echo "$root_extra" >"$rootdir/.extras"
    log "guest root: $(chroot "$rootdir" dpkg-query -W -f='${Package} ${Version}\n' libvirt-daemon-driver-qemu | tr '\n' ' ')"
fi

# The nested guests' kernel (scenarios 21, 26 and 28 boot it under QEMU in the lab VM):
# Debian 12's linux-source-6.1 with nested-kernel.config merged over `make tinyconfig`, built
# once per source version and fragment into $cache/nested-kernel/<key>/bzImage (about 2.5
# minutes on 2 cores) and copied into the image directory as nested-vmlinuz. Under nested TCG
# it boots in 33-78 s where Debian's kernel took 107-272 s (docs/lab.md, "The nested boot").
nested_kernel() {
    local v sum nk deb t missing
    v=$(apt-cache policy linux-source-6.1 | awk '/Candidate:/ { print $2 }')
    if [ -z "$v" ] || [ "$v" = "(none)" ]; then
        apt_update
        v=$(apt-cache policy linux-source-6.1 | awk '/Candidate:/ { print $2 }')
    fi
    [ -n "$v" ] && [ "$v" != "(none)" ] || { log "no linux-source-6.1 in the machine's apt sources"; exit 1; }
    sum=$(sha256sum <"$here/nested-kernel.config" | cut -c1-12)
    nk="$cache/nested-kernel/${v//[^A-Za-z0-9._+-]/_}_$sum"
    if [ ! -f "$nk/bzImage" ]; then
        log "building the nested guests' kernel $nk (linux-source-6.1 $v, tinyconfig + nested-kernel.config)"
        mkdir -p "$cache/debs" "$cache/nested-kernel"
        deb="$cache/debs/linux-source-6.1_${v//:/%3a}_all.deb"
        if [ ! -f "$deb" ] && ! (cd "$cache/debs" && apt-get download -qq "linux-source-6.1=$v" >/dev/null 2>&1); then
            # Lists older than the archive (a security update superseded $v): once more after
            # an update, with the version it names.
            if [ $updated = 0 ]; then
                apt_update
                nested_kernel
                return
            fi
            log "apt-get download linux-source-6.1=$v failed"
            exit 1
        fi
        t=$(mktemp -d "$cache/nested-kernel/.build.XXXXXX")
        if ! (dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/src/linux-source-6.1.tar.xz | tar -xJ -C "$t" &&
            cd "$t/linux-source-6.1" && make -s tinyconfig &&
            scripts/kconfig/merge_config.sh -m .config "$here/nested-kernel.config" &&
            make -s olddefconfig && make -s -j"$(nproc)" bzImage) >"$cache/nested-kernel.log" 2>&1; then
            tail -n 20 "$cache/nested-kernel.log" >&2
            rm -rf "$t"
            log "building the nested guests' kernel failed (log: $cache/nested-kernel.log)"
            exit 1
        fi
        # A line the kernel's Kconfig dropped (a dependency missing in this version) fails here,
        # not as a guest that cannot find its disk.
        missing=$(grep '^CONFIG_' "$here/nested-kernel.config" | grep -vxF -f "$t/linux-source-6.1/.config" || true)
        if [ -n "$missing" ]; then
            rm -rf "$t"
            log "the nested guests' kernel lacks: $(echo $missing)"
            exit 1
        fi
        rm -rf "$nk"
        mkdir -p "$nk"
        cp "$t/linux-source-6.1/arch/x86/boot/bzImage" "$t/linux-source-6.1/.config" "$nk/"
        rm -rf "$t"
        log "nested guests' kernel ready: $nk ($(stat -c %s "$nk/bzImage") bytes)"
    fi
    # The older builds go.
    find "$cache/nested-kernel" -mindepth 1 -maxdepth 1 -type d ! -path "$nk" -exec rm -rf {} +
    nested_bzimage=$nk/bzImage
}
nested_bzimage=
[ "$arch" = amd64 ] && nested_kernel

if [ -f "$dir/ready" ]; then
    if [ -n "$nested_bzimage" ] && ! cmp -s "$nested_bzimage" "$dir/nested-vmlinuz"; then
        cp "$nested_bzimage" "$dir/nested-vmlinuz"
    fi
    log "cached: $dir"
    echo "$dir"
    exit 0
fi

log "building $dir (kernel ${kdebs[*]} $kver_pkg)"
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Download into a cache of .debs shared between keys.
debs="$cache/debs"
mkdir -p "$debs"
for p in "${kdebs[@]}"; do
    v=$(apt-cache "${apt_opts[@]}" policy "$p" | awk '/Candidate:/ { print $2 }')
    deb="$debs/${p}_${v//:/%3a}_$arch.deb"
    if [ ! -f "$deb" ]; then
        if ! (cd "$debs" && apt-get "${apt_opts[@]}" download -qq "$p=$v" >/dev/null 2>&1); then
            [ $flavour = bookworm ] && apt_update
            (cd "$debs" && apt-get "${apt_opts[@]}" download -qq "$p=$v")
        fi
    fi
    log "unpacking $deb"
    dpkg-deb -x "$deb" "$tmp/k"
done
# Modules under lib/modules (6.1) or usr/lib/modules (merged /usr, 7.x).
kroot="$tmp/k"
[ -d "$kroot/lib/modules" ] || kroot="$tmp/k/usr"
kver=$(ls "$kroot/lib/modules" | head -1)
depmod -b "$kroot" "$kver"
# (ppc64el's is an ELF vmlinux, which QEMU's pseries loads as it is)
vmlinuz=$(ls "$tmp/k/boot/vmlinuz-$kver" "$tmp/k/boot/vmlinux-$kver" "$kroot/lib/modules/$kver/vmlinuz" 2>/dev/null | head -1 || true)
[ -n "$vmlinuz" ] || { log "no vmlinuz in ${kdebs[*]}"; exit 1; }

# Modules in load order: each wanted module after its dependencies (modinfo depends=).
# virtio_ccw: the 9p transport of s390x; other architectures' kernels lack it.
want=(configfs scsi_mod sd_mod sg crct10dif_generic crc64_rocksoft_generic target_core_mod
    target_core_file target_core_iblock tcm_loop virtio_ring virtio virtio_pci_modern_dev
    virtio_pci_legacy_dev virtio_pci virtio_ccw netfs fscache 9pnet 9pnet_virtio 9p
    dm_mod dm_multipath dm_round_robin dm_service_time dm_queue_length scsi_dh_alua
    nvme_core nvme_fabrics nvme_loop nvmet)
declare -A seen=()
order=()
add_mod() {
    local m=$1 f deps d
    m=${m//-/_}
    [ -z "${seen[$m]:-}" ] || return 0
    seen[$m]=1
    f=$(modinfo -b "$kroot" -k "$kver" -n "$m" 2>/dev/null) || return 0 # built in or absent
    case "$f" in /*) ;; *) return 0 ;; esac
    deps=$(modinfo -b "$kroot" -k "$kver" -F depends "$m" 2>/dev/null || true)
    for d in ${deps//,/ }; do add_mod "$d"; done
    order+=("$f")
}
for m in "${want[@]}"; do add_mod "$m"; done
# Copied but not loaded at boot: scsi_debug (a scenario loads it with the delay it wants; at
# boot it would take /dev/sda) and virtio_scsi (for the nested guest of the QEMU scenario).
n_boot=${#order[@]}
for m in scsi_debug virtio_scsi; do add_mod "$m"; done

root="$tmp/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,host,out,mods,etc/target,var/target/pr,run}
# Only the shell's link: /init makes the others (busybox --install), as a foreign
# architecture's busybox cannot list its applets here.
if [ "$arch" = amd64 ]; then cp /bin/busybox "$root/bin/busybox"; else cp "$tmp/k/bin/busybox" "$root/bin/busybox"; fi
ln -s busybox "$root/bin/sh"
: > "$root/mods/order"
: > "$root/mods/on-demand"
i=0
for f in "${order[@]}"; do
    b=$(basename "$f")
    case "$b" in # busybox insmod wants plain .ko
    *.ko.xz) xz -dc "$f" >"$root/mods/${b%.xz}"; b=${b%.xz} ;;
    *.ko.zst) zstd -qdc "$f" >"$root/mods/${b%.zst}"; b=${b%.zst} ;;
    *.ko.gz) gzip -dc "$f" >"$root/mods/${b%.gz}"; b=${b%.gz} ;;
    *) cp "$f" "$root/mods/" ;;
    esac
    if [ $i -lt "$n_boot" ]; then echo "$b" >>"$root/mods/order"; else echo "$b" >>"$root/mods/on-demand"; fi
    i=$((i + 1))
done
cp "$here/init.sh" "$root/init"
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$tmp/lab.cpio.gz"

mkdir -p "$dir"
cp "$vmlinuz" "$dir/vmlinuz"
[ -z "$nested_bzimage" ] || cp "$nested_bzimage" "$dir/nested-vmlinuz"
mv "$tmp/lab.cpio.gz" "$dir/lab.cpio.gz"
printf '%s\n' "$kver" > "$dir/kver"
cp "$root/mods/order" "$dir/modules"
touch "$dir/ready"
# Older images (other package versions or lab inputs) go; the downloaded .debs stay.
for o in "$cache/${flavour}"_*/; do
    o=${o%/}
    [ "$o" = "$dir" ] || rm -rf "$o"
done
log "ready: $dir ($(wc -l < "$dir/modules") modules)"
echo "$dir"
