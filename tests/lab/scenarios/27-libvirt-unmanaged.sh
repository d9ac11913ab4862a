# lab-timeout: 3300
# lab-weight: 240
# libvirt end to end, unmanaged reservations (issue 18): our socket-activated helper
# (qemu-pr-helper-activated under systemd-socket-activate --accept, as
# qemu-pr-helper-activated.socket runs it) listens on a fixed path, and a libvirt domain's
# <disk type='block' device='lun'> has <reservations managed='no'> with that socket as its
# client source. The same libvirtd set-up and nested guest as 26-libvirt-managed: the guest
# registers and reserves; nexus B sees it; libvirt starts no helper of its own; our instance
# killed with SIGKILL while the domain runs is replaced by a new one on QEMU's reconnection
# and the guest's next PR command succeeds; `virsh destroy` ends the instance and leaves the
# listening socket.
. "$LAB_TESTS/lib.sh"
[ -f "$LAB_IMAGE/vmlinuz" ] || die "no kernel in LAB_IMAGE=$LAB_IMAGE"

# Limits as in 21-qemu-client (nested TCG is slow and machines differ by 3x): the nested boot
# up to 1,800 s, each phase 300 s, libvirtd's start and `virsh start` 300 s each; lab-timeout
# is their sum plus 300 s.
BOOT_LIMIT=1800 PHASE_LIMIT=300 START_LIMIT=300

# Commands in the guest's Debian with a Debian PATH (libvirtd runs QEMU and our helper from it).
LVR="env SYSTEMD_IGNORE_CHROOT=1 chroot /deb /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root"
vsh() { $LVR virsh -c qemu:///system "$@"; }
LVLOG=/deb/var/log/libvirt/libvirtd.log
progress() {
    echo "$*"
    echo "lab $LAB_SCENARIO: $*" >/dev/console 2>/dev/null || true
}
T0=$(date +%s)
stamp() { progress "[$(($(date +%s) - T0)) s] $*"; }
# libvirt's lines about the pr-helper (what it ran, the events it got, what it killed).
lv_pr_lines() {
    grep -iE 'pr-helper|pr_helper|prhelper|PR_MANAGER|pr-manager|PRDaemon|PR daemon' "$LVLOG" 2>/dev/null |
        grep -v 'QEMU_MONITOR_IO_\(WRITE\|SEND\)' | cut -c1-400 | tail -n "${1:-40}" || true
}
lv_fail() {
    echo "-- libvirtd's stdout/stderr:"
    tail -n 30 /tmp/libvirtd.out 2>/dev/null || true
    echo "-- libvirtd.log (errors and warnings):"
    grep -E ' (error|warning) :' "$LVLOG" 2>/dev/null | tail -n 30 | cut -c1-400 || true
    echo "-- libvirtd.log about the pr-helper:"
    lv_pr_lines 30
    echo "-- domain log:"
    tail -n 30 /deb/var/log/libvirt/qemu/lab.log 2>/dev/null || true
    die "$*"
}

# Writable places libvirt needs in the read-only root: copies of the package's directories
# in tmpfs, mounted over them; undone when the scenario ends.
# Checks that do not stop the scenario (so that one slow run says everything): each failure is
# recorded and the scenario fails at its end with all of them.
SOFT=""
soft_eq() { # ACTUAL EXPECTED WHAT
    if [ "$1" = "$2" ]; then echo "  ok: $3 = '$2'"; else
        echo "  FAILED: $3: got '$1', expected '$2'"
        SOFT="$SOFT
$3: got '$1', expected '$2'"
    fi
}

soft_fail() {
    echo "  FAILED: $*"
    SOFT="$SOFT
$*"
}

RW=/tmp/lv-rw
MOUNTED=""
cleanup() {
    set +e
    [ -n "${SAPID:-}" ] && kill "$SAPID" 2>/dev/null
    [ -n "${LVPID:-}" ] && vsh destroy lab >/dev/null 2>&1
    [ -n "${EVPID:-}" ] && kill "$EVPID" 2>/dev/null
    [ -n "${LVPID:-}" ] && kill "$LVPID" 2>/dev/null && sleep 1 && kill -9 "$LVPID" 2>/dev/null
    for m in $MOUNTED; do umount "$m" 2>/dev/null || umount -l "$m"; done
    return 0
}
trap cleanup EXIT
trap 'exit 143' TERM INT
writable() { # DIR in the guest's Debian
    mkdir -p "$RW$1"
    cp -a "/deb$1/." "$RW$1/"
    mount --bind "$RW$1" "/deb$1"
    MOUNTED="/deb$1 $MOUNTED"
}
for d in /etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do writable $d; done
# cgroup v2 as a systemd host has it (libvirt makes the machine's cgroup itself: no machined).
if ! grep -q ' /deb/sys/fs/cgroup cgroup2 ' /proc/mounts; then
    mount -t cgroup2 none /deb/sys/fs/cgroup
    MOUNTED="/deb/sys/fs/cgroup $MOUNTED"
fi

# Our binary in the guest's Debian (the unit runs `pr-helper qemu-pr-helper-activated`).
mkdir -p /deb/run/pr-helper
cp "$LAB_BIN" /deb/run/pr-helper/pr-helper

# What differs from Debian's defaults, and why:
# - stdio_handler = "file": QEMU's stdout/stderr to the domain log file directly (the default
#   "logd" needs virtlogd running, which systemd socket-activates on a host).
# - security_driver = "none": the lab kernel runs no AppArmor policy (no securityfs mounted,
#   no apparmor_parser in the root); DAC (libvirt-qemu user) stays as on a host.
# - namespaces = [] (the default is ["mount"]): libvirtd runs chrooted in /deb here (the VM's
#   root is an initramfs, which cannot be pivot_root'ed away), and libvirt enters QEMU's mount
#   namespace with setns() to make its /dev nodes and to start the helper; setns() resets the
#   root to the namespace's real root, the lab's busybox root, where /dev/null, the console
#   file and the helper's program are not what libvirt made (QEMU: "Failed to open /dev/null
#   for OFD lock probing", "Could not open '/dev/sda'"; libvirt: "cannot execute binary
#   /run/pr-helper/qemu-pr-helper"). A host runs libvirtd in its real root and keeps it.
cat >>/deb/etc/libvirt/qemu.conf <<CONF
stdio_handler = "file"
security_driver = "none"
namespaces = []
CONF
# - no polkit (no D-Bus in the lab): root's client needs no authentication on the socket.
# - a log file with the QEMU driver's and the command runner's debug lines (libvirt's view).
cat >>/deb/etc/libvirt/libvirtd.conf <<'CONF'
auth_unix_ro = "none"
auth_unix_rw = "none"
log_filters = "1:qemu 1:security 1:util.command 1:util.process 1:util.cgroup 3:util.json 4:object 4:event 4:rpc 4:util.file"
log_outputs = "1:file:/var/log/libvirt/libvirtd.log"
CONF

# The nested guest (scenario 21's: busybox, the SCSI and virtio-scsi modules, our binary for
# pr-client --direct). Phase 1 registers and reserves, then prints @@KILL-NOW and waits 30 s,
# in which the helper is killed; phase 2's first command is the "next PR command" after the
# kill (retried up to 4 times, 15 s apart, each attempt recorded), then the rest; it prints
# @@INNER-DONE and idles until `virsh destroy`.
r=/tmp/inner
mkdir -p $r/bin $r/dev $r/proc $r/sys $r/mods $r/tmp
cp /bin/busybox $r/bin/busybox
for a in sh mount insmod sleep poweroff cat echo ls grep sed; do ln -sf busybox $r/bin/$a; done
cp "$LAB_BIN" $r/bin/pr-helper
: >$r/mods/order
for m in $(grep -E '^(scsi_common|scsi_mod|sd_mod|sg|crc.*)\.ko$' /mods/order) virtio_scsi.ko; do
    [ -f "/mods/$m" ] || continue
    cp "/mods/$m" $r/mods/ && echo "$m" >>$r/mods/order
done
cat >$r/init <<'INIT'
#!/bin/sh
mount -t proc none /proc
mount -t sysfs none /sys
mount -t devtmpfs none /dev
while read -r m; do insmod "/mods/$m" 2>/dev/null; done </mods/order
i=0
while [ ! -b /dev/sda ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
echo "@@INNER-READY $(ls /dev/sda 2>&1)"
P="/bin/pr-helper pr-client --direct --timeout=60"
step() { # NAME ARGS...: one command, its exit status and output (generations filtered)
    n=$1
    shift
    $P "$@" >/tmp/o 2>&1
    rc=$?
    echo "@@STEP $phase $n rc=$rc"
    sed -e 's/PR generation=0x[0-9a-f]*/PR generation=N/' -e "s/^/@@OUT $phase $n /" /tmp/o
    return $rc
}
for _u in 1 2 3; do
    $P -k /dev/sda >/tmp/o 2>&1 && break
    echo "@@DRAIN rc=$? $(cat /tmp/o)"
done
phase=1
step register-ignore -o -I -S 0x1234 /dev/sda
step read-keys -k /dev/sda
step reserve -o -R -K 0x1234 -T 1 /dev/sda
step read-reservation -r /dev/sda
echo "@@KILL-NOW"
sleep 30
phase=2
for a in 1 2 3 4; do
    step "after-kill-$a" -k /dev/sda && break
    sleep 15
done
step read-keys -k /dev/sda
step read-reservation -r /dev/sda
step reserve-other-type -o -R -K 0x1234 -T 3 /dev/sda
step capabilities -c /dev/sda
echo "@@INNER-DONE"
while :; do sleep 60; done
INIT
chmod 755 $r/init
(cd $r && find . | cpio -o -H newc 2>/dev/null | gzip -1) >/deb/tmp/inner.cpio.gz
cp "$LAB_IMAGE/vmlinuz" /deb/tmp/vmlinuz

# Our socket-activated helper on a fixed path, one instance per connection, as the
# qemu-pr-helper-activated socket unit runs it; QEMU (user libvirt-qemu) reaches the socket
# through its group, as a host's SocketGroup= drop-in gives it.
USOCK=/run/pr-unmanaged.sock
$LVR systemd-socket-activate --accept -l "$USOCK" /run/pr-helper/pr-helper qemu-pr-helper-activated >/tmp/activate.out 2>&1 &
SAPID=$!
wait_sock "/deb$USOCK"
$LVR chgrp libvirt-qemu "$USOCK"
chmod 660 "/deb$USOCK"
echo "  systemd-socket-activate $SAPID listens on $USOCK ($(ls -l /deb$USOCK))"
# instance: the pid of the one helper instance (a child of systemd-socket-activate), or "".
instance() {
    for _s in /proc/[0-9]*/stat; do
        awk -v pp="$SAPID" '$4 == pp && $3 != "Z" { print $1 }' "$_s" 2>/dev/null
    done | tr '\n' ' ' | sed 's/ $//'
}

# No <features><acpi/></features>, as in 26-libvirt-managed (libvirt's acpi=off).
cat >/deb/tmp/lab.xml <<XML
<domain type='qemu'>
  <name>lab</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>/tmp/vmlinuz</kernel>
    <initrd>/tmp/inner.cpio.gz</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <disk type='block' device='lun'>
      <driver name='qemu' type='raw'/>
      <source dev='$A'>
        <reservations managed='no'>
          <source type='unix' path='$USOCK' mode='client'/>
        </reservations>
      </source>
      <target dev='sda' bus='scsi'/>
    </disk>
    <serial type='file'>
      <source path='/tmp/inner.console'/>
      <target port='0'/>
    </serial>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
XML

say "libvirtd starts (libvirt $($LVR dpkg-query -W -f='${Version}' libvirt-daemon), QEMU $($LVR dpkg-query -W -f='${Version}' qemu-system-x86))"
$LVR /usr/sbin/libvirtd >/tmp/libvirtd.out 2>&1 &
LVPID=$!
t=$(date +%s)
until vsh version >/tmp/virsh.version 2>&1; do
    kill -0 $LVPID 2>/dev/null || lv_fail "libvirtd exited"
    [ $(($(date +%s) - t)) -lt $START_LIMIT ] || lv_fail "libvirtd does not answer after $START_LIMIT s: $(cat /tmp/virsh.version)"
    sleep 1
done
stamp "libvirtd answers after $(($(date +%s) - t)) s: $(tr '\n' ' ' </tmp/virsh.version)"
$LVR virsh -c qemu:///system event --all --loop --timestamp >/tmp/virsh.events 2>&1 &
EVPID=$!

vsh define /tmp/lab.xml >/dev/null || lv_fail "virsh define failed"
t=$(date +%s)
set +e
out=$(timeout $START_LIMIT $LVR virsh -c qemu:///system start lab 2>&1)
rc=$?
set -e
echo "$out"
[ $rc = 0 ] || lv_fail "virsh start lab exited $rc"
stamp "virsh start took $(($(date +%s) - t)) s (QEMU's capabilities probe, QEMU)"

QPID=$(pidof qemu-system-x86_64 || true)
[ -n "$QPID" ] || lv_fail "no QEMU process after virsh start"
echo "  QEMU $QPID: $(tr '\0' ' ' </proc/$QPID/cmdline | grep -o '{"qom-type":"pr-manager-helper"[^ ]*\|-blockdev [^ ]*pr-manager[^ ]*' | tr '\n' ' ')"
soft_eq "$(pidof qemu-pr-helper || true)" "" "libvirt started no helper of its own"
t=$(date +%s)
HPID=$(instance)
while [ -z "$HPID" ]; do
    [ $(($(date +%s) - t)) -lt 60 ] || lv_fail "QEMU did not connect to $USOCK within 60 s (no helper instance): $(cat /tmp/activate.out)"
    sleep 1
    HPID=$(instance)
done
echo "  our instance for QEMU's connection: pid $HPID, argv $(tr '\0' ' ' </proc/$HPID/cmdline), Uid $(status_of $HPID Uid), cgroup $(cat /proc/$HPID/cgroup)"
vsh domstats lab --state --block 2>&1 | sed 's/^/    /' || true

wait_console() { # MARKER SECS
    _t0=$(date +%s) _next=30
    while ! grep -q "$1" /deb/tmp/inner.console 2>/dev/null; do
        kill -0 "$QPID" 2>/dev/null || { cat /deb/tmp/inner.console; lv_fail "QEMU exited before '$1'"; }
        _el=$(($(date +%s) - _t0))
        [ $_el -ge "$2" ] && { cat /deb/tmp/inner.console; lv_fail "no '$1' from the nested guest after $2 s"; }
        if [ $_el -ge $_next ]; then
            progress "  ... ${_el} s of $2 waiting for '$1'; nested console: $(tr -d '\r' </deb/tmp/inner.console 2>/dev/null | grep . | tail -n 1 | cut -c1-100)"
            _next=$((_next + 30))
        fi
        sleep 1
    done
    stamp "  '$1' after $(($(date +%s) - _t0)) s"
}
wait_console "@@INNER-READY" $BOOT_LIMIT
wait_console "@@KILL-NOW" $PHASE_LIMIT
say "phase 1 done: SIGKILL to our instance ($HPID) while the domain runs"
kill -9 "$HPID"
tk=$(date +%s)
soft_eq "$(keys_of "$B")" "0x1234 " "the guest's key, seen from nexus B"
soft_eq "$(resv_of "$B")" "0x1234 Write Exclusive" "the guest's reservation, seen from nexus B"
NPID=""
while :; do
    NPID=$(instance)
    [ -n "$NPID" ] && [ "$NPID" != "$HPID" ] && break
    [ $(($(date +%s) - tk)) -lt $((PHASE_LIMIT + 60)) ] || lv_fail "no new instance within $((PHASE_LIMIT + 60)) s of the kill (QEMU did not reconnect)"
    kill -0 "$QPID" 2>/dev/null || lv_fail "QEMU exited after the helper's kill"
    sleep 1
done
stamp "QEMU reconnected $(($(date +%s) - tk)) s after the kill: instance $NPID"
soft_eq "$(pidof qemu-pr-helper || true)" "" "libvirt started no helper of its own after the kill"
wait_console "@@INNER-DONE" $PHASE_LIMIT
tr -d '\r' </deb/tmp/inner.console | grep -o '@@.*' >/tmp/inner.steps
cat /tmp/inner.steps
for want in register-ignore=0 read-keys=0 reserve=0 read-reservation=0; do
    grep -q "^@@STEP 1 ${want%=*} rc=${want#*=}\$" /tmp/inner.steps || soft_fail "phase 1: ${want%=*} did not exit ${want#*=}"
done
grep -q "^@@OUT 1 read-keys *0x1234" /tmp/inner.steps || soft_fail "the guest did not read its key back"
grep -q "^@@STEP 2 after-kill-1 rc=0\$" /tmp/inner.steps ||
    soft_fail "the guest's first PR command after the kill failed: $(grep '^@@[A-Z]* 2 after-kill' /tmp/inner.steps | tr '\n' ' ')"
for want in read-keys=0 read-reservation=0 reserve-other-type=24 capabilities=0; do
    grep -q "^@@STEP 2 ${want%=*} rc=${want#*=}\$" /tmp/inner.steps || soft_fail "phase 2: ${want%=*} did not exit ${want#*=}"
done
grep -q "^@@OUT 2 read-reservation .*Key=0x1234" /tmp/inner.steps || soft_fail "phase 2: the reservation is not the guest's"
echo "  (phase 2 checked: the guest's PR commands after QEMU reconnected to a new instance)"

say "virsh destroy"
t=$(date +%s)
vsh destroy lab || lv_fail "virsh destroy failed"
stamp "virsh destroy took $(($(date +%s) - t)) s"
sleep 1
t=$(date +%s)
while [ -n "$(instance)" ]; do
    [ $(($(date +%s) - t)) -lt 30 ] || lv_fail "our instance $(instance) is still running 30 s after virsh destroy"
    sleep 1
done
echo "  ok: the instance ended with QEMU's connection"
soft_eq "$(pidof qemu-pr-helper || true)" "" "no helper of libvirt's"
[ -S "/deb$USOCK" ] || lv_fail "the listening socket $USOCK is gone after virsh destroy"
echo "  ok: the listening socket stays ($USOCK)"

say "libvirt's view: events and its log lines about the pr-helper"
kill "$EVPID" 2>/dev/null || true
EVPID=""
cat /tmp/virsh.events
lv_pr_lines 60
[ -z "$SOFT" ] || die "checks failed:$SOFT"
