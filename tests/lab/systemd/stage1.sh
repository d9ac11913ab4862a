#!/bin/sh
# /init of the systemd flavour of the PR lab (tests/lab/systemd/run.sh appends it, with
# overlay.ko, to the lab's initramfs; runs under busybox).
#
# Loads the lab's modules (LIO tcm_loop, 9p, dm-multipath...) and overlayfs, makes the guest's
# Debian trixie root writable (the read-only 9p share "root" under a tmpfs overlay), mounts the
# host root at /host and the results share at /lab-out inside it, installs our binary and
# units there with packaging/install.sh as an administrator would (PREFIX /usr, the applet
# links in /usr/libexec/pr-helper beside Debian's C helper), adds the lab's driver unit
# (lab-checks.service, which runs tests/lab/systemd/checks.sh and powers off) and hands over
# to systemd as PID 1 with switch_root.
#
# Kernel command line: lab.env=/host/ABS/FILE (LAB_BIN, LAB_TESTS, LAB_SECCOMP_TEST, LAB_REPO).
export PATH=/bin:/sbin
/bin/busybox --install -s /bin
mount -t proc none /proc
mount -t sysfs none /sys
mount -t devtmpfs none /dev 2>/dev/null

fail() {
    echo "@@LAB-FATAL $*"
    poweroff -f
    exit 1
}

while read -r m; do
    insmod "/mods/$m" 2>/tmp/insmod.err || {
        grep -q 'File exists' /tmp/insmod.err || echo "lab-stage1: insmod $m: $(cat /tmp/insmod.err)"
    }
done </mods/order
insmod /mods/overlay.ko || fail "cannot load overlay.ko"

mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro root /lower || fail "cannot mount the guest root over 9p"
mount -t tmpfs -o mode=0755 none /rw
mkdir -p /rw/upper /rw/work
# The 9p lower layer has no file handles for overlayfs' index: keep the features that need
# them off.
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work,index=off,metacopy=off,redirect_dir=off,xino=off \
    overlay /newroot || fail "cannot mount the overlay root"
mkdir -p /newroot/host /newroot/lab-out
mount -t 9p -o trans=virtio,version=9p2000.L,ro host /newroot/host || fail "cannot mount the host root over 9p"
mount -t 9p -o trans=virtio,version=9p2000.L,rw out /newroot/lab-out || fail "cannot mount the results share"

envf=""
for a in $(cat /proc/cmdline); do
    case "$a" in lab.env=*) envf=${a#lab.env=} ;; esac
done
[ -n "$envf" ] || fail "no lab.env= on the kernel command line"
. "/newroot$envf"

R=/newroot
# Our binary, applet links, units, man pages: packaging/install.sh in the new root (its
# coreutils; busybox here has no install(1)).
mount -t proc none $R/proc
PR_HELPER_LINKDIR=/usr/libexec/pr-helper chroot $R /bin/sh "$LAB_REPO/packaging/install.sh" / /usr "$LAB_BIN" ||
    fail "packaging/install.sh failed"
umount $R/proc

# A quick boot under TCG: a machine-id (an empty one makes a first boot: presets and
# firstboot), and none of the units that rebuild caches (hwdb, ldconfig, the journal's
# catalog: /etc looks newer than /usr on the overlay), log in, or need hardware the VM lacks.
echo lab >$R/etc/hostname
echo 6c616270722d68656c7065722d6c6162 >$R/etc/machine-id
for u in serial-getty@ttyS0.service getty@tty1.service getty.target systemd-logind.service \
    systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer fstrim.timer ldconfig.service systemd-hwdb-update.service \
    systemd-journal-catalog-update.service systemd-update-done.service systemd-firstboot.service \
    systemd-pstore.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
    nvmf-autoconnect.service nvmefc-boot-connections.service uuidd.socket \
    systemd-random-seed.service systemd-ask-password-wall.path systemd-ask-password-console.path \
    systemd-tpm2-setup-early.service systemd-tpm2-setup.service systemd-pcrmachine.service \
    systemd-pcrphase-sysinit.service systemd-pcrphase.service remote-fs.target \
    systemd-sysusers.service systemd-remount-fs.service systemd-modules-load.service \
    systemd-udev-load-credentials.service dev-hugepages.mount; do
    ln -sf /dev/null "$R/etc/systemd/system/$u"
done
# The kernel's audit records in the journal (the seccomp step looks for the kill's): journald
# reads them from this socket, which must be up before it starts; without a reader the kernel
# prints them rate-limited, behind the many that systemd's BPF programs cause.
mkdir -p $R/etc/systemd/system/sockets.target.wants
ln -sf /usr/lib/systemd/system/systemd-journald-audit.socket $R/etc/systemd/system/sockets.target.wants/
# The root is an overlay over 9p: nothing to remount or check.
: >$R/etc/fstab

# The driver: after multi-user.target, runs the checks, then powers the VM off.
cat >$R/etc/systemd/system/lab-checks.service <<UNIT
[Unit]
Description=PR lab: our units under systemd
After=multi-user.target

[Service]
Type=oneshot
Environment=LAB_ENV=$envf
ExecStart=/bin/sh $LAB_TESTS/systemd/checks.sh
ExecStopPost=/usr/bin/systemctl --no-block poweroff
StandardOutput=journal+console
StandardError=inherit
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p $R/etc/systemd/system/multi-user.target.wants
ln -sf ../lab-checks.service $R/etc/systemd/system/multi-user.target.wants/lab-checks.service

echo "@@LAB-STAGE1 uptime=$(cut -d' ' -f1 /proc/uptime)"
umount /sys /proc
mount --move /dev $R/dev 2>/dev/null || umount /dev
exec switch_root $R /lib/systemd/systemd
