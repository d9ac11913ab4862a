# lab-timeout: 3600
# lab-weight: 210
# libvirt end to end (issue 18), in one domain's life (one nested boot): libvirtd from the
# guest's Debian (trixie-backports' libvirt 12, QEMU 11, TCG, no systemd) runs a domain that
# boots scenario 21's small nested guest and gets a <disk type='block' device='lun'> on the
# LUN's path A five times, one "round" each; in every round the guest runs the same PR
# commands with pr-client --direct through virtio-scsi (register, reserve, a conflict,
# capabilities, release, unregister), and the rounds' answers must be the same:
# 1. coldplug-managed: <reservations managed='yes'/> in the domain at `virsh start`, with
#    qemu.conf's pr_helper set to our binary's qemu-pr-helper link. Checked: libvirt started
#    our helper (argv, cgroup, mount namespace); nexus B sees the guest's key and reservation;
#    SIGKILL of our helper is repaired by libvirt before the guest's next PR command succeeds;
#    `virsh detach-disk` of the last managed disk stops the helper (nothing answers on its socket).
# 2. hotplug-unmanaged: `virsh attach-device` of the disk with <reservations managed='no'> on
#    our qemu-pr-helper-activated under systemd-socket-activate --accept (as the socket unit
#    runs it). libvirt starts no helper; SIGKILL of the instance is repaired by QEMU's
#    reconnection; detaching ends the instance and keeps the listening socket.
# 3. hotplug-managed: attaching the managed disk starts our helper at that moment; detaching
#    stops it.
# 4. hotplug-managed-c: libvirtd restarted with pr_helper set to the C helper (QEMU 11's,
#    from the same root) while the domain runs; the same attach, commands, kill and detach.
# 5. hotplug-unmanaged-c: the C helper started by hand on a fixed path, the disk attached
#    with managed='no' on it; SIGKILL and a new C helper on the path while the domain runs.
# `virsh destroy` then leaves no helper and no socket. Step times, libvirt's events and its
# log lines about the pr-helper are printed.
. "$LAB_TESTS/lib.sh"

# Limits as in 21-qemu-client (nested TCG is slow and machines differ by 3x): the nested boot
# up to 1,200 s, each wait for the guest's next line 300 s, libvirtd's start and `virsh start`
# 300 s each. lab-timeout bounds the whole at 60 min. Measured on 2026-12-07 (beside a second
# lab VM, docs/lab.md): the whole scenario 207 s, the nested boot (the lab's own kernel) 33 s;
# with Debian's kernel 622 s, the nested boot 200-270 s, on a machine whose TCG was about
# twice as slow.
# lab-weight is the 207 s run.
BOOT_LIMIT=1200 PHASE_LIMIT=300 START_LIMIT=300

# Commands in the guest's Debian with a Debian PATH (libvirtd runs QEMU and the helpers from it).
LVR="env SYSTEMD_IGNORE_CHROOT=1 chroot /deb /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root"
vsh() { $LVR virsh -c qemu:///system "$@"; }
LVLOG=/deb/var/log/libvirt/libvirtd.log
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
    echo "-- nested guest's lines:"
    tr -d '\r' </deb/tmp/inner.console 2>/dev/null | grep -o '@@.*' | tail -n 40 || true
    [ -z "$SOFT" ] || echo "-- checks failed before:$SOFT"
    die "$*"
}

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
    [ -n "${LVPID:-}" ] && vsh destroy lab >/dev/null 2>&1
    [ -n "${EVPID:-}" ] && kill "$EVPID" 2>/dev/null
    [ -n "${SAPID:-}" ] && kill "$SAPID" 2>/dev/null
    [ -n "${CPID:-}" ] && kill "$CPID" 2>/dev/null
    [ -n "${LVPID:-}" ] && kill "$LVPID" 2>/dev/null && sleep 1 && kill -9 "$LVPID" 2>/dev/null
    for m in $MOUNTED; do umount "$m" 2>/dev/null || umount -l "$m"; done
    return 0
}
trap cleanup EXIT
trap 'exit 143' TERM INT
# Writable places libvirt needs in the read-only root: copies of the package's directories
# in tmpfs, mounted over them; undone when the scenario ends.
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

# Our binary in the guest's Debian as packaging/install.sh lays it out: the applet link
# qemu-pr-helper beside pr-helper (argv[0] picks the applet).
mkdir -p /deb/run/pr-helper
cp "$LAB_BIN" /deb/run/pr-helper/pr-helper
ln -sf pr-helper /deb/run/pr-helper/qemu-pr-helper
OURS=/run/pr-helper/qemu-pr-helper
C_HELPER=/usr/bin/qemu-pr-helper

# What differs from Debian's defaults, and why:
# - pr_helper: our binary (round 4: the C helper).
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
pr_helper = "$OURS"
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

# The nested guest (lib.sh's, as scenario 21's). For each round it waits for a disk, runs the
# round's commands (in the rounds that kill a helper it prints @@KILL-NOW and waits 20 s, then
# retries its next command up to 4 times, 15 s apart, each attempt recorded), prints
# @@ROUND-DONE and waits for the disk to go. Every command's exit status and output are
# printed (generations filtered).
nested_begin
cat >>$NESTED/init <<'INIT'
disk() { for d in /dev/sd[a-z]; do [ -b "$d" ] && echo "$d" && return 0; done; return 1; }
step() { # NAME ARGS...: one command on the round's disk, its exit status and output
    n=$1
    shift
    $P "$@" "$D" >/tmp/o 2>&1
    rc=$?
    echo "@@STEP $round $n rc=$rc"
    sed -e 's/PR generation=0x[0-9a-f]*/PR generation=N/' -e "s/^/@@OUT $round $n /" /tmp/o
    return $rc
}
for round in coldplug-managed hotplug-unmanaged hotplug-managed hotplug-managed-c hotplug-unmanaged-c; do
    i=0
    until D=$(disk); do
        i=$((i + 1))
        [ $i -lt 18000 ] || break
        sleep 0.1
    done
    echo "@@READY $round $D uptime=$(cat /proc/uptime)"
    # The LUN's unit attentions for this nexus (power on, registrations changed) go first.
    for _u in 1 2 3; do
        $P -k "$D" >/tmp/o 2>&1 && break
        echo "@@DRAIN $round rc=$? $(cat /tmp/o)"
    done
    step register -o -I -S 0x1234
    step read-keys -k
    step reserve -o -R -K 0x1234 -T 1
    step read-reservation -r
    case $round in coldplug-managed | hotplug-unmanaged | hotplug-managed-c | hotplug-unmanaged-c)
        echo "@@KILL-NOW $round"
        sleep 20
        for a in 1 2 3 4; do
            step "after-kill-$a" -k && break
            sleep 15
        done
        ;;
    esac
    step reserve-other-type -o -R -K 0x1234 -T 3
    step capabilities -c
    step release -o -L -K 0x1234 -T 1
    step unregister -o -G -K 0x1234 -S 0
    step read-keys-after -k
    echo "@@ROUND-DONE $round"
    while [ -b "$D" ]; do sleep 0.2; done
    echo "@@GONE $round"
done
echo "@@INNER-DONE"
while :; do sleep 60; done
INIT
nested_pack

# The disk of every round (the first is in the domain, the others are attached to it).
disk_xml() { # RESERVATIONS-ELEMENT
    cat <<XML
    <disk type='block' device='lun'>
      <driver name='qemu' type='raw'/>
      <source dev='$A'>
        $1
      </source>
      <target dev='sda' bus='scsi'/>
    </disk>
XML
}
MANAGED="<reservations managed='yes'/>"
USOCK=/run/pr-unmanaged.sock
UNMANAGED="<reservations managed='no'><source type='unix' path='$USOCK' mode='client'/></reservations>"
disk_xml "$MANAGED" >/deb/tmp/disk-managed.xml
disk_xml "$UNMANAGED" >/deb/tmp/disk-unmanaged.xml
CSOCK=/run/pr-c.sock
disk_xml "<reservations managed='no'><source type='unix' path='$CSOCK' mode='client'/></reservations>" >/deb/tmp/disk-unmanaged-c.xml

# qboot as the firmware and lib.sh's kernel arguments, as 21 boots it (<loader type='rom'>
# is QEMU's -bios). No <features><acpi/></features>: libvirt then runs the machine with
# acpi=off, which booted the nested kernel (then with SeaBIOS) in 975 s under load where the
# same with ACPI had not booted after 1,260 s.
cat >/deb/tmp/lab.xml <<XML
<domain type='qemu'>
  <name>lab</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <loader type='rom'>$NESTED_BIOS</loader>
    <kernel>/tmp/vmlinuz</kernel>
    <initrd>/tmp/inner.cpio</initrd>
    <cmdline>$NESTED_APPEND</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <controller type='scsi' index='0' model='virtio-scsi'/>
$(cat /deb/tmp/disk-managed.xml)
    <serial type='file'>
      <source path='/tmp/inner.console'/>
      <target port='0'/>
    </serial>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
XML

libvirtd_start() {
    $LVR /usr/sbin/libvirtd >>/tmp/libvirtd.out 2>&1 &
    LVPID=$!
    _t=$(date +%s)
    until vsh version >/tmp/virsh.version 2>&1; do
        kill -0 $LVPID 2>/dev/null || lv_fail "libvirtd exited"
        [ $(($(date +%s) - _t)) -lt $START_LIMIT ] || lv_fail "libvirtd does not answer after $START_LIMIT s: $(cat /tmp/virsh.version)"
        sleep 1
    done
    stamp "libvirtd answers after $(($(date +%s) - _t)) s: $(tr '\n' ' ' </tmp/virsh.version)"
    $LVR virsh -c qemu:///system event --all --loop --timestamp >>/tmp/virsh.events 2>&1 &
    EVPID=$!
}
libvirtd_stop() {
    kill "$EVPID" 2>/dev/null || true
    kill "$LVPID"
    _t=$(date +%s)
    while kill -0 "$LVPID" 2>/dev/null; do
        [ $(($(date +%s) - _t)) -lt 60 ] || lv_fail "libvirtd still runs 60 s after SIGTERM"
        sleep 1
    done
    LVPID="" EVPID=""
}

wait_console() { nested_wait /deb/tmp/inner.console "$1" "$2" lv_fail; } # MARKER SECS
# The managed helper's pid (libvirt's, by its program name), or "".
managed() { pidof qemu-pr-helper || true; }
wait_until() { # SECS WHAT COMMAND...: poll COMMAND each second until it succeeds
    _s=$1 _what=$2
    shift 2
    _t=$(date +%s)
    until "$@"; do
        [ $(($(date +%s) - _t)) -lt "$_s" ] || lv_fail "$_what: not within $_s s"
        sleep 1
    done
}
no_managed() { [ -z "$(managed)" ]; }
# The managed helper libvirt started: its argv, cgroup and namespace as libvirt placed them.
check_managed() { # PROGRAM
    HPID=$(managed)
    HSOCK=$(tr '\0' ' ' </proc/$HPID/cmdline | sed -n 's/.* -k \([^ ]*\).*/\1/p')
    echo "  the helper as libvirt started it:"
    echo "    argv: $(tr '\0' ' ' </proc/$HPID/cmdline)"
    echo "    exe: $(readlink /proc/$HPID/exe), PPid: $(status_of $HPID PPid), Uid: $(status_of $HPID Uid)"
    echo "    cgroup: $(cat /proc/$HPID/cgroup | tr '\n' ' ') (QEMU's: $(cat /proc/$QPID/cgroup | tr '\n' ' '))"
    echo "    mount namespace: $(readlink /proc/$HPID/ns/mnt) (QEMU's: $(readlink /proc/$QPID/ns/mnt))"
    echo "    socket: $HSOCK ($(ls -l /deb$HSOCK 2>&1))"
    soft_eq "$(tr '\0' ' ' </proc/$HPID/cmdline | cut -d' ' -f1-2)" "$1 -k" "libvirt runs pr_helper with -k SOCKET"
    [ -S "/deb$HSOCK" ] || lv_fail "no socket at $HSOCK"
    soft_eq "$(readlink /proc/$HPID/ns/mnt)" "$(readlink /proc/$QPID/ns/mnt)" "the helper is in QEMU's mount namespace"
    soft_eq "$(cat /proc/$HPID/cgroup)" "$(cat /proc/$QPID/cgroup | sed 's,/emulator$,,')" "the helper is in the domain's cgroup"
}
# At @@KILL-NOW: the guest's key and reservation as nexus B sees them.
check_nexus_b() {
    soft_eq "$(keys_of "$B")" "0x1234 " "$1: the guest's key, seen from nexus B"
    soft_eq "$(resv_of "$B")" "0x1234 Write Exclusive" "$1: the guest's reservation, seen from nexus B"
}
detach() { # ROUND
    _t=$(date +%s)
    vsh detach-disk lab sda --live || lv_fail "$1: virsh detach-disk failed"
    stamp "$1: virsh detach-disk took $(($(date +%s) - _t)) s"
}
attach() { # ROUND XML
    _t=$(date +%s)
    vsh attach-device lab "$2" --live || lv_fail "$1: virsh attach-device failed"
    stamp "$1: virsh attach-device took $(($(date +%s) - _t)) s"
}
# After a detach the socket's file may stay: the helper (ours as C's) keeps only
# CAP_SYS_RAWIO and cannot unlink in libvirt's domain directory, which belongs to the QEMU
# user; both print "Failed to unlink socket ...: Permission denied" to libvirt's /dev/null, and
# libvirt unlinks the path before it starts the next helper. Nobody may answer on it.
socket_dead() { ! "$LAB_BIN" pr-client probe --socket="/deb$HSOCK" --timeout=5 >/dev/null 2>&1; }

say "libvirtd starts (libvirt $($LVR dpkg-query -W -f='${Version}' libvirt-daemon), QEMU $($LVR dpkg-query -W -f='${Version}' qemu-system-x86))"
libvirtd_start
vsh define /tmp/lab.xml >/dev/null || lv_fail "virsh define failed"
t=$(date +%s)
set +e
out=$(timeout $START_LIMIT $LVR virsh -c qemu:///system start lab 2>&1)
rc=$?
set -e
echo "$out"
[ $rc = 0 ] || lv_fail "virsh start lab exited $rc"
stamp "virsh start took $(($(date +%s) - t)) s (QEMU's capabilities probe, the helper, QEMU)"
QPID=$(pidof qemu-system-x86_64 || true)
[ -n "$QPID" ] || lv_fail "no QEMU process after virsh start"
soft_eq "$(tr '\0' ' ' </proc/$QPID/cmdline | grep -o -- "-bios [^ ]*")" "-bios $NESTED_BIOS" "libvirt runs QEMU with the <loader> (qboot) as its firmware"
echo "  QEMU $QPID: $(tr '\0' ' ' </proc/$QPID/cmdline | grep -o '{"qom-type":"pr-manager-helper"[^ ]*\|-blockdev [^ ]*pr-manager[^ ]*' | tr '\n' ' ')"

say "round 1, coldplug-managed: our helper, started by libvirt with the domain"
[ -n "$(managed)" ] || lv_fail "no qemu-pr-helper process after virsh start"
check_managed "$OURS"
vsh domstats lab --state --block 2>&1 | sed 's/^/    /' || true
wait_console "@@READY coldplug-managed" $BOOT_LIMIT
wait_console "@@KILL-NOW coldplug-managed" $PHASE_LIMIT
check_nexus_b coldplug-managed
say "SIGKILL to our helper ($HPID) while the domain runs"
kill -9 "$HPID"
tk=$(date +%s)
restarted() { NPID=$(managed) && [ -n "$NPID" ] && [ "$NPID" != "$HPID" ] && [ -S "/deb$HSOCK" ]; }
wait_until $((PHASE_LIMIT + 60)) "libvirt starts the helper again after the kill" restarted
stamp "libvirt started our helper again $(($(date +%s) - tk)) s after the kill: pid $NPID, argv $(tr '\0' ' ' </proc/$NPID/cmdline), cgroup $(cat /proc/$NPID/cgroup)"
soft_eq "$(readlink /proc/$NPID/ns/mnt)" "$(readlink /proc/$QPID/ns/mnt)" "the restarted helper is in QEMU's mount namespace"
wait_console "@@ROUND-DONE coldplug-managed" $PHASE_LIMIT
detach coldplug-managed
wait_until 60 "detaching the last managed disk stops the helper" no_managed
wait_until 10 "nothing answers on the helper's socket $HSOCK after the detach" socket_dead
echo "  ok: no helper after the detach, nothing answers on its socket ($(ls /deb$HSOCK 2>&1))"
wait_console "@@GONE coldplug-managed" $PHASE_LIMIT

say "round 2, hotplug-unmanaged: our qemu-pr-helper-activated under systemd-socket-activate"
# One instance per connection, as the qemu-pr-helper-activated socket unit runs it; QEMU (user
# libvirt-qemu) reaches the socket through its group, as a host's SocketGroup= drop-in gives it.
$LVR systemd-socket-activate --accept -l "$USOCK" /run/pr-helper/pr-helper qemu-pr-helper-activated >/tmp/activate.out 2>&1 &
SAPID=$!
wait_sock "/deb$USOCK"
$LVR chgrp libvirt-qemu "$USOCK"
chmod 660 "/deb$USOCK"
echo "  systemd-socket-activate $SAPID listens on $USOCK ($(ls -l /deb$USOCK))"
# instance: the pid of the helper instance (a child of systemd-socket-activate), or "".
instance() {
    for _s in /proc/[0-9]*/stat; do
        awk -v pp="$SAPID" '$4 == pp && $3 != "Z" { print $1 }' "$_s" 2>/dev/null
    done | tr '\n' ' ' | sed 's/ $//'
}
attach hotplug-unmanaged /tmp/disk-unmanaged.xml
has_instance() { IPID=$(instance) && [ -n "$IPID" ]; }
wait_until 60 "QEMU connects to $USOCK (a helper instance)" has_instance
echo "  our instance for QEMU's connection: pid $IPID, argv $(tr '\0' ' ' </proc/$IPID/cmdline), Uid $(status_of $IPID Uid)"
soft_eq "$(managed)" "" "libvirt started no helper of its own"
wait_console "@@KILL-NOW hotplug-unmanaged" $PHASE_LIMIT
check_nexus_b hotplug-unmanaged
say "SIGKILL to our instance ($IPID) while the domain runs"
kill -9 "$IPID"
tk=$(date +%s)
reconnected() { NPID=$(instance) && [ -n "$NPID" ] && [ "$NPID" != "$IPID" ]; }
wait_until $((PHASE_LIMIT + 60)) "QEMU reconnects (a new instance) after the kill" reconnected
stamp "QEMU reconnected $(($(date +%s) - tk)) s after the kill: instance $NPID"
soft_eq "$(managed)" "" "libvirt started no helper of its own after the kill"
wait_console "@@ROUND-DONE hotplug-unmanaged" $PHASE_LIMIT
detach hotplug-unmanaged
no_instance() { [ -z "$(instance)" ]; }
wait_until 30 "detaching the disk ends our instance (QEMU's connection)" no_instance
[ -S "/deb$USOCK" ] || lv_fail "the listening socket $USOCK is gone after the detach"
echo "  ok: the instance ended with QEMU's connection, the listening socket stays"
wait_console "@@GONE hotplug-unmanaged" $PHASE_LIMIT
kill "$SAPID" 2>/dev/null || true
SAPID=""

say "round 3, hotplug-managed: attaching the disk starts our helper"
soft_eq "$(managed)" "" "no helper before the attach"
attach hotplug-managed /tmp/disk-managed.xml
has_managed() { [ -n "$(managed)" ]; }
wait_until 30 "attaching a managed disk starts the helper" has_managed
check_managed "$OURS"
wait_console "@@ROUND-DONE hotplug-managed" $PHASE_LIMIT
detach hotplug-managed
wait_until 60 "detaching the last managed disk stops the helper" no_managed
wait_until 10 "nothing answers on the helper's socket $HSOCK after the detach" socket_dead
echo "  ok: no helper after the detach, nothing answers on its socket ($(ls /deb$HSOCK 2>&1))"
wait_console "@@GONE hotplug-managed" $PHASE_LIMIT

say "round 4, hotplug-managed-c: libvirtd restarted with pr_helper = the C helper, the domain running"
libvirtd_stop
sed -i "s|^pr_helper = .*|pr_helper = \"$C_HELPER\"|" /deb/etc/libvirt/qemu.conf
libvirtd_start
soft_eq "$(vsh domstate lab 2>&1 | grep .)" "running" "the domain runs on after libvirtd's restart"
attach hotplug-managed-c /tmp/disk-managed.xml
wait_until 30 "attaching a managed disk starts the C helper" has_managed
check_managed "$C_HELPER"
wait_console "@@KILL-NOW hotplug-managed-c" $PHASE_LIMIT
check_nexus_b hotplug-managed-c
say "SIGKILL to the C helper ($HPID) while the domain runs"
kill -9 "$HPID"
tk=$(date +%s)
wait_until $((PHASE_LIMIT + 60)) "libvirt starts the C helper again after the kill" restarted
stamp "libvirt started the C helper again $(($(date +%s) - tk)) s after the kill: pid $NPID, argv $(tr '\0' ' ' </proc/$NPID/cmdline)"
wait_console "@@ROUND-DONE hotplug-managed-c" $PHASE_LIMIT
detach hotplug-managed-c
wait_until 60 "detaching the last managed disk stops the C helper" no_managed
wait_until 10 "nothing answers on the C helper's socket $HSOCK after the detach" socket_dead
echo "  ok: no helper after the detach, nothing answers on its socket ($(ls /deb$HSOCK 2>&1))"
wait_console "@@GONE hotplug-managed-c" $PHASE_LIMIT

say "round 5, hotplug-unmanaged-c: the C helper started by hand on a fixed path, restarted while the domain runs"
# As an admin runs it (or its systemd unit): -k PATH, root, the socket's group and mode for
# QEMU's user. A helper restarted on the same path (the C helper unlinks it first) is what
# QEMU reconnects to.
c_unmanaged() {
    $LVR /usr/bin/qemu-pr-helper -k "$CSOCK" >>/tmp/c-unmanaged.err 2>&1 &
    CPID=$!
    wait_until 30 "the C helper listens on $CSOCK" c_listens
    $LVR chgrp libvirt-qemu "$CSOCK"
    chmod 660 "/deb$CSOCK"
}
c_listens() { "$LAB_BIN" pr-client probe --socket="/deb$CSOCK" --timeout=5 >/dev/null 2>&1; }
c_unmanaged
echo "  the C helper $CPID listens on $CSOCK ($(ls -l /deb$CSOCK))"
attach hotplug-unmanaged-c /tmp/disk-unmanaged-c.xml
soft_eq "$(managed | tr ' ' '\n' | grep -vx "$CPID" | tr -d '\n')" "" "libvirt started no helper of its own"
wait_console "@@KILL-NOW hotplug-unmanaged-c" $PHASE_LIMIT
check_nexus_b hotplug-unmanaged-c
say "SIGKILL to the C helper ($CPID) and a new one on the same path, the domain running"
kill -9 "$CPID"
wait "$CPID" 2>/dev/null || true
c_unmanaged
stamp "the C helper restarted: pid $CPID"
wait_console "@@ROUND-DONE hotplug-unmanaged-c" $PHASE_LIMIT
detach hotplug-unmanaged-c
kill "$CPID" 2>/dev/null || true
wait_console "@@INNER-DONE" $PHASE_LIMIT

say "the guest's answers, round by round"
tr -d '\r' </deb/tmp/inner.console | grep -o '@@.*' >/tmp/inner.steps
cat /tmp/inner.steps
for round in coldplug-managed hotplug-unmanaged hotplug-managed hotplug-managed-c hotplug-unmanaged-c; do
    for want in register=0 read-keys=0 reserve=0 read-reservation=0 reserve-other-type=24 \
        capabilities=0 release=0 unregister=0 read-keys-after=0; do
        grep -q "^@@STEP $round ${want%=*} rc=${want#*=}\$" /tmp/inner.steps ||
            soft_fail "$round: ${want%=*} did not exit ${want#*=}"
    done
    grep -q "^@@OUT $round read-keys *0x1234" /tmp/inner.steps || soft_fail "$round: the guest did not read its key back"
    grep -q "^@@OUT $round read-reservation .*Key=0x1234" /tmp/inner.steps || soft_fail "$round: the reservation is not the guest's"
    # The same commands answer the same in every round (the kill's retries aside).
    grep -E "^@@(STEP|OUT) $round " /tmp/inner.steps | grep -v " after-kill-" |
        sed "s/^\(@@[A-Z]*\) $round /\1 /" >"/tmp/answers.$round"
done
for round in coldplug-managed hotplug-unmanaged hotplug-managed-c hotplug-unmanaged-c; do
    grep -q "^@@STEP $round after-kill-1 rc=0\$" /tmp/inner.steps ||
        soft_fail "$round: the guest's first PR command after the kill failed: $(grep "^@@[A-Z]* $round after-kill" /tmp/inner.steps | tr '\n' ' ')"
done
for round in hotplug-unmanaged hotplug-managed hotplug-managed-c hotplug-unmanaged-c; do
    if cmp -s /tmp/answers.coldplug-managed "/tmp/answers.$round"; then
        echo "  ok: $round's answers are coldplug-managed's ($(wc -l <"/tmp/answers.$round") lines)"
    else
        diff /tmp/answers.coldplug-managed "/tmp/answers.$round" || true
        soft_fail "$round's answers differ from coldplug-managed's"
    fi
done

say "virsh destroy"
t=$(date +%s)
vsh destroy lab || lv_fail "virsh destroy failed"
stamp "virsh destroy took $(($(date +%s) - t)) s"
sleep 1
left=$(managed)
[ -z "$left" ] || lv_fail "a helper is left after virsh destroy: $left ($(tr '\0' ' ' </proc/$left/cmdline))"
socks=$(find /deb/var/lib/libvirt /deb/run -type s -name 'pr-helper*' 2>/dev/null || true)
[ -z "$socks" ] || lv_fail "pr-helper sockets left after virsh destroy: $socks"
echo "  ok: no helper and no socket left"

say "libvirt's view: events and its log lines about the pr-helper"
kill "$EVPID" 2>/dev/null || true
EVPID=""
cat /tmp/virsh.events
lv_pr_lines 80
[ -z "$SOFT" ] || die "checks failed:$SOFT"
