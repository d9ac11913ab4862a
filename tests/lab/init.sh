#!/bin/sh
# /init of the PR lab's initramfs (copied there by tests/lab/setup.sh; runs under busybox).
#
# Loads the modules listed in /mods/order, mounts the host root read-only at /host (9p tag
# "host") and, when present, a writable results directory at /out (9p tag "out"). Then, for
# each scenario, builds a fresh LIO LUN (fileio on tmpfs) seen through lab.nexus tcm_loop
# initiator nexuses (default 2) and optionally a second LUN (lab.luns=2), runs the scenario
# with /bin/sh and tears the LUN down again, so every scenario starts from an unregistered LUN.
#
# Kernel command line:
#   lab.script=/host/ABS/a.sh[,/host/ABS/b.sh...]  scenarios to run (or lab.plan=FILE, one a line)
#   lab.env=/host/ABS/FILE   sourced before each scenario (run.sh passes the binary paths there)
#   lab.nexus=N lab.luns=1..4 lab.timeout=SECS (per scenario, default 120); a scenario's own
#   "# lab-topology: nexus=N luns=M" line overrides nexus and luns for it, and may add
#   nvme=1 (an nvmet loop namespace with reservations, seen by two hosts: $NVA $NVB),
#   hostenv=1 (udevd running in the guest's Debian, the chroot at /deb: $CH runs a command
#   there) and mpath=1 (hostenv, plus multipathd and a dm-multipath map over the LUN's first
#   two nexuses: $MP, its paths $A $B).
# Output: per scenario /out/NAME.log, /out/NAME.secs (its time, LUN set-up included) and
#   /out/NAME.rc, and on the console @@LAB-BEGIN NAME / (the log) / @@LAB-END NAME rc=N secs=S,
#   then @@LAB-DONE.
export PATH=/bin:/sbin
# setup.sh links only /bin/sh: a foreign architecture's busybox cannot list its applets there.
/bin/busybox --install -s /bin
mount -t proc none /proc
mount -t sysfs none /sys
mount -t devtmpfs none /dev 2>/dev/null
mount -t tmpfs none /tmp
mount -t tmpfs none /run
# LIO rewrites its APTPL file (db_root/pr/aptpl_WWN) on every PR OUT: without the directory
# REGISTER takes effect but answers NOT READY (08/00). db_root is /etc/target if it exists.
mkdir -p /etc/target/pr /var/target/pr

fail() {
    echo "@@LAB-FATAL $*"
    poweroff -f
    exit 1
}

# busybox insmod does not read module parameters from the kernel command line as modprobe
# does: pass "MODULE.PARAM=VALUE" arguments (nvme_core.multipath=N) on by hand.
while read -r m; do
    mname=${m%.ko}
    mname=$(echo "$mname" | tr - _)
    params=$(tr ' ' '\n' </proc/cmdline | sed -n "s/^$mname\.//p" | tr '\n' ' ')
    # shellcheck disable=SC2086 # one word per parameter
    insmod "/mods/$m" $params 2>/tmp/insmod.err || {
        grep -q 'File exists' /tmp/insmod.err || echo "lab-init: insmod $m: $(cat /tmp/insmod.err)"
    }
done </mods/order
mount -t configfs none /sys/kernel/config 2>/dev/null
echo 15 >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null

# has_tag NAME: QEMU offers a 9p share with that mount tag.
has_tag() {
    cat /sys/bus/virtio/drivers/9pnet_virtio/virtio*/mount_tag 2>/dev/null | tr '\0' '\n' | grep -q "^$1\$"
}
mount -t 9p -o trans=virtio,version=9p2000.L,ro host /host || fail "cannot mount the host root over 9p"
# The guest's Debian (trixie, QEMU 11; setup.sh builds it) as a chroot at /deb: read-only over
# 9p, with the kernel's file systems and writable /run, /tmp and /etc/multipath on top. A
# foreign architecture's lab has none (no "root" share): scenarios that use it fail there.
if has_tag root; then
    mkdir -p /deb
    mount -t 9p -o trans=virtio,version=9p2000.L,ro root /deb || fail "cannot mount the guest root over 9p"
    mount -t devtmpfs none /deb/dev
    mount -t proc none /deb/proc
    mount -t sysfs none /deb/sys
    mount -t tmpfs none /deb/run
    mount -t tmpfs none /deb/tmp
    mount -t tmpfs none /deb/etc/multipath || fail "no /etc/multipath in the guest root"
    # Our helper runs in this busybox root; on a host it shares /etc with multipathd, which
    # reads multipath.conf, conf.d and prkeys from /etc/multipath.
    mkdir -p /etc && ln -sfn /deb/etc/multipath /etc/multipath
fi
have_out=0
if has_tag out; then
    mount -t 9p -o trans=virtio,version=9p2000.L,rw out /out && have_out=1
fi

script="" plan="" envf="" nexus=2 luns=1 tmo=120
for a in $(cat /proc/cmdline); do
    case "$a" in
    lab.script=*) script=${a#lab.script=} ;;
    lab.plan=*) plan=${a#lab.plan=} ;;
    lab.env=*) envf=${a#lab.env=} ;;
    lab.nexus=*) nexus=${a#lab.nexus=} ;;
    lab.luns=*) luns=${a#lab.luns=} ;;
    lab.timeout=*) tmo=${a#lab.timeout=} ;;
    esac
done

T=/sys/kernel/config/target
[ -d $T ] || mkdir -p $T 2>/dev/null
[ -d $T/core ] || fail "no LIO in configfs ($T)"

# Builds the LUN(s) and the nexuses; writes /tmp/devs.sh with LAB_DEV_<nexus>_<lun> and
# LAB_SG_<nexus>_<lun>: tcm_loop SCSI hosts are numbered in nexus creation order.
lun_up() {
    _i=0
    mkdir -p $T/core/fileio_0 || return 1
    while [ $_i -lt "$luns" ]; do
        _d=$T/core/fileio_0/disk$_i
        mkdir $_d || return 1
        echo "fd_dev_name=/tmp/disk$_i.img,fd_dev_size=67108864" >$_d/control
        echo 1 >$_d/attrib/emulate_3pc 2>/dev/null
        echo 1 >$_d/enable || return 1
        _i=$((_i + 1))
    done
    _n=1
    while [ $_n -le "$nexus" ]; do
        _L=$T/loopback/naa.500140500000000$_n/tpgt_1
        mkdir -p $_L || return 1
        _i=0
        while [ $_i -lt "$luns" ]; do
            mkdir -p $_L/lun/lun_$_i || return 1
            _i=$((_i + 1))
        done
        echo naa.5001405aaaaaaa0$_n >$_L/nexus || return 1
        _i=0
        while [ $_i -lt "$luns" ]; do
            ln -s $T/core/fileio_0/disk$_i $_L/lun/lun_$_i/disk$_i || return 1
            _i=$((_i + 1))
        done
        _n=$((_n + 1))
    done
    # Wait for every sd and sg node: nexus * luns of them.
    _want=$((nexus * luns)) _t=0
    while :; do
        _got=0
        for _s in /sys/block/sd*; do [ -e "$_s" ] && _got=$((_got + 1)); done
        [ $_got -ge $_want ] && break
        _t=$((_t + 1))
        [ $_t -gt 100 ] && return 1
        sleep 0.1
    done
    # LAB_DEV_<nexus>_<lun>=/dev/sdX and LAB_SG_<nexus>_<lun>=/dev/sgN; A/B shorthands.
    : >/tmp/devs
    for _s in /sys/block/sd*; do
        _name=${_s##*/}
        _hctl=$(ls $_s/device/scsi_device 2>/dev/null)
        _host=${_hctl%%:*}
        _lun=${_hctl##*:}
        _sg=$(ls $_s/device/scsi_generic 2>/dev/null)
        echo "$_host $_lun $_name $_sg" >>/tmp/devs
    done
    # hosts in creation order = nexus order
    _k=0
    for _h in $(cut -d' ' -f1 /tmp/devs | sort -n | uniq); do
        _k=$((_k + 1))
        grep "^$_h " /tmp/devs | while read -r _ _lun _name _sg; do
            echo "export LAB_DEV_${_k}_$_lun=/dev/$_name LAB_SG_${_k}_$_lun=/dev/$_sg"
        done
    done >/tmp/devs.sh
    cat /tmp/devs.sh
    return 0
}

lun_down() {
    _n=1
    while [ $_n -le "$nexus" ]; do
        _W=$T/loopback/naa.500140500000000$_n
        _L=$_W/tpgt_1
        if [ -d $_L ]; then
            for _l in $_L/lun/lun_*; do
                [ -d "$_l" ] || continue
                for _x in "$_l"/disk*; do [ -L "$_x" ] && rm "$_x"; done
                rmdir "$_l"
            done
            echo NULL >$_L/nexus
            rmdir $_L
        fi
        [ -d $_W ] && rmdir $_W
        _n=$((_n + 1))
    done
    for _d in $T/core/fileio_0/disk*; do [ -d "$_d" ] && rmdir "$_d"; done
    [ -d $T/core/fileio_0 ] && rmdir $T/core/fileio_0
    rm -f /tmp/disk*.img
    rm -rf /var/target/pr/* /etc/target/pr/* 2>/dev/null
    # wait until the sd nodes are gone
    _t=0
    while ls /sys/block/sd* >/dev/null 2>&1; do
        _t=$((_t + 1))
        [ $_t -gt 50 ] && break
        sleep 0.1
    done
    return 0
}

# The NVMe target: one file-backed namespace with reservations, two hosts (host IDs ...01 and
# ...02) connected over the loop transport. nvme_core.multipath=N on the kernel command line
# gives each host its own namespace device: NVA for host 1, NVB for host 2.
NVMET=/sys/kernel/config/nvmet
nvme_up() {
    [ -d $NVMET ] || { echo "lab-init: no nvmet in configfs"; return 1; }
    _S=$NVMET/subsystems/labnqn
    mkdir $_S || return 1
    echo 1 >$_S/attr_allow_any_host
    mkdir $_S/namespaces/1 || return 1
    truncate -s 64M /tmp/nvme0.img
    echo /tmp/nvme0.img >$_S/namespaces/1/device_path || return 1
    echo 1 >$_S/namespaces/1/resv_enable || { echo "lab-init: nvmet without resv_enable (kernel < 6.13?)"; return 1; }
    echo 1 >$_S/namespaces/1/enable || return 1
    mkdir $NVMET/ports/1 || return 1
    echo loop >$NVMET/ports/1/addr_trtype
    ln -s $_S $NVMET/ports/1/subsystems/labnqn || return 1
    for _h in 1 2; do
        _id=00000000-0000-4000-8000-00000000000$_h
        echo "transport=loop,nqn=labnqn,hostnqn=nqn.2014-08.org.nvmexpress:uuid:$_id,hostid=$_id" >/dev/nvme-fabrics || return 1
    done
    _t=0
    while [ "$(ls -d /sys/block/nvme*n1 2>/dev/null | wc -l)" -lt 2 ]; do
        _t=$((_t + 1))
        [ $_t -gt 100 ] && { echo "lab-init: NVMe namespaces did not appear"; return 1; }
        sleep 0.1
    done
    for _c in /sys/class/nvme/nvme*; do
        case "$(cat $_c/hostid)" in
        *01) echo "export NVA=/dev/${_c##*/}n1" ;;
        *02) echo "export NVB=/dev/${_c##*/}n1" ;;
        esac
    done >>/tmp/devs.sh
    cat /tmp/devs.sh
}
nvme_down() {
    for _c in /sys/class/nvme/nvme*; do [ -e $_c/delete_controller ] && echo 1 >$_c/delete_controller; done
    _S=$NVMET/subsystems/labnqn
    rm -f $NVMET/ports/1/subsystems/labnqn
    [ -d $NVMET/ports/1 ] && rmdir $NVMET/ports/1
    [ -e $_S/namespaces/1/enable ] && echo 0 >$_S/namespaces/1/enable
    [ -d $_S/namespaces/1 ] && rmdir $_S/namespaces/1
    [ -d $_S ] && rmdir $_S
    rm -f /tmp/nvme0.img
    return 0
}

# udevd in the guest's Debian (multipathd reads path identities from the udev database).
# udevadm and udevd refuse to run in a chroot unless told it is fine.
CH="env SYSTEMD_IGNORE_CHROOT=1 chroot /deb"
hostenv_up() {
    mkdir -p /deb/run/udev /deb/etc/multipath/conf.d
    $CH /usr/lib/systemd/systemd-udevd --daemon --resolve-names=never >/dev/null 2>&1 || { echo "lab-init: udevd did not start"; return 1; }
    $CH udevadm trigger --action=add >/dev/null 2>&1
    # Generous: under load (two lab VMs on two busy cores) udevd took over 30 s to answer.
    $CH udevadm settle --timeout=180
}
hostenv_down() {
    $CH udevadm control --exit 2>/dev/null
    return 0
}

# multipathd with the prkeys file (reservation_key file), checking paths every second, and the
# map it makes over the LUN's nexuses: MP=/dev/dm-N (its node), MPNAME, MPDM (dm-N).
mpath_up() {
    mkdir -p /deb/etc/multipath/conf.d
    cat >/deb/etc/multipath/conf.d/lab.conf <<'CONF'
defaults {
    find_multipaths no
    user_friendly_names yes
    polling_interval 1
    max_polling_interval 2
    reservation_key file
    no_path_retry fail
}
# tcm_loop LUNs announce ALUA but scsi_dh_alua does not attach to them: without a hardware
# handler and with both paths in one group (multibus), the map loads.
devices {
    device {
        vendor "LIO-ORG"
        product ".*"
        hardware_handler "0"
        path_grouping_policy multibus
        detect_prio no
        prio const
        # TEST UNIT READY, as for PR-managed storage: the default directio checker reads,
        # and a read under another host's EXCLUSIVE ACCESS fails every path.
        path_checker tur
        no_path_retry fail
    }
}
CONF
    # The map is made of the first two nexuses, by the names this boot's kernel gave them (a
    # scenario that deletes and rescans a path shifts them for the next: sdb and sdc, not sda
    # and sdb); a third nexus stays outside as another host.
    _a=$(. /tmp/devs.sh && echo "${LAB_DEV_1_0#/dev/}")
    _b=$(. /tmp/devs.sh && echo "${LAB_DEV_2_0#/dev/}")
    cat >>/deb/etc/multipath/conf.d/lab.conf <<CONF
blacklist {
    devnode "^nvme"
    devnode "^sd"
}
blacklist_exceptions {
    devnode "^$_a\$"
    devnode "^$_b\$"
}
CONF
    # The map is made first, by multipath(8) as an initramfs does, with every path it finds:
    # multipathd alone makes it from the first path whose uevent it sees, then holds the
    # second until udev has seen the map, which in this VM sometimes takes longer than the
    # lab waits.
    $CH multipath -v2 >/tmp/multipath-create.log 2>&1 || cat /tmp/multipath-create.log
    $CH multipathd -d -s -v3 >/tmp/multipathd.log 2>&1 &
    sleep 1
    pidof multipathd >/dev/null || { echo "lab-init: multipathd did not start"; cat /tmp/multipathd.log; return 1; }
    _t=0
    while :; do
        for _d in /sys/block/dm-*; do
            [ -e $_d/dm/uuid ] || continue
            case "$(cat $_d/dm/uuid)" in mpath-*) _mp=${_d##*/} ;; esac
        done
        [ -n "${_mp:-}" ] && [ "$(ls /sys/block/$_mp/slaves 2>/dev/null | wc -l)" -ge 2 ] && break
        _t=$((_t + 1))
        # Still one path after 10 s: a reload puts every path in.
        [ $_t = 100 ] && $CH multipath -r -v2
        [ $_t -gt 300 ] && {
            echo "lab-init: multipathd made no map"
            $CH multipathd show paths
            tail -n 60 /tmp/multipathd.log
            $CH multipath -v3 2>&1 | tail -n 40
            return 1
        }
        sleep 0.1
    done
    # Its socket comes up after the map is seen: scenarios talk to it at once.
    _t=0
    until $CH multipathd show daemon >/dev/null 2>&1; do
        _t=$((_t + 1))
        [ $_t -gt 100 ] && { echo "lab-init: multipathd does not answer"; tail -n 20 /tmp/multipathd.log; return 1; }
        sleep 0.1
    done
    _name=$(cat /sys/block/$_mp/dm/name)
    [ -e /dev/mapper/$_name ] || { mkdir -p /dev/mapper; mknod /dev/mapper/$_name b $(tr ':' ' ' </sys/block/$_mp/dev); }
    # The scenarios open the map by its kernel node, which lives as long as the map: the
    # /dev/mapper link is udevd's, and once vanished in the middle of scenario 19 (pr-client:
    # "cannot open /dev/mapper/mpatha: No such file or directory", 2026-12-07).
    echo "export MP=/dev/$_mp MPNAME=$_name MPDM=$_mp" >>/tmp/devs.sh
    $CH multipathd show topology
}
mpath_down() {
    $CH multipathd shutdown >/dev/null 2>&1
    _t=0
    while pidof multipathd >/dev/null 2>&1 && [ $_t -lt 50 ]; do sleep 0.1; _t=$((_t + 1)); done
    $CH multipath -F >/dev/null 2>&1
    $CH dmsetup remove_all >/dev/null 2>&1
    return 0
}

list=""
if [ -n "$plan" ]; then
    list=$(cat "$plan")
elif [ -n "$script" ]; then
    list=$(echo "$script" | tr ',' '\n')
fi
[ -n "$list" ] || fail "no lab.script= or lab.plan= on the kernel command line"

# Seconds since the kernel started (to 1/100 s): the boot's and each scenario's time.
uptime_s() { cut -d' ' -f1 /proc/uptime; }
echo "@@LAB-READY kernel=$(uname -r) nexus=$nexus luns=$luns uptime=$(uptime_s)"
def_nexus=$nexus def_luns=$luns
for s in $list; do
    name=$(basename "$s" .sh)
    log=/tmp/$name.log
    # A scenario may ask for its own topology: a line "# lab-topology: nexus=3 luns=2".
    nexus=$def_nexus luns=$def_luns nvme=0 hostenv=0 mpath=0
    # "# lab-timeout: SECS" gives a slow scenario (the nested QEMU) more than lab.timeout.
    stmo=$(sed -n 's/^# lab-timeout: *\([0-9]*\).*/\1/p' "$s" 2>/dev/null | head -1)
    stmo=${stmo:-$tmo}
    for kv in $(sed -n 's/^# lab-topology://p' "$s" 2>/dev/null); do
        case "$kv" in
        nexus=[1-9]) nexus=${kv#nexus=} ;;
        luns=[1-4]) luns=${kv#luns=} ;;
        nvme=1) nvme=1 ;;
        hostenv=1) hostenv=1 ;;
        mpath=1) mpath=1 hostenv=1 ;;
        esac
    done
    t0=$(uptime_s)
    up=ok
    if ! lun_up >"$log" 2>&1; then
        echo "lab-init: cannot build the LIO LUN" >>"$log"
        up=""
    elif [ $nvme = 1 ] && ! nvme_up >>"$log" 2>&1; then
        echo "lab-init: cannot build the NVMe target" >>"$log"
        up=""
    elif [ $hostenv = 1 ] && ! hostenv_up >>"$log" 2>&1; then
        echo "lab-init: cannot set up the host environment" >>"$log"
        up=""
    elif [ $mpath = 1 ] && ! mpath_up >>"$log" 2>&1; then
        echo "lab-init: cannot start multipathd and its map" >>"$log"
        up=""
    fi
    if [ -z "$up" ]; then
        rc=90
    else
        (
            [ -n "$envf" ] && . "$envf"
            . /tmp/devs.sh
            export LAB_NEXUS=$nexus LAB_LUNS=$luns CH
            export A=$LAB_DEV_1_0 B=${LAB_DEV_2_0:-} SGA=$LAB_SG_1_0 SGB=${LAB_SG_2_0:-}
            export LAB_SCENARIO=$name LAB_WORK=/tmp/work.$name
            mkdir -p "$LAB_WORK"
            cd "$LAB_WORK" || exit 91
            exec timeout "$stmo" sh -e "$s"
        ) >>"$log" 2>&1 </dev/null
        rc=$?
    fi
    # the scenario's time, its LUN set-up included: run.sh prints it in the summary
    secs=$(awk "BEGIN { printf \"%.1f\", $(uptime_s) - $t0 }")
    # helpers a scenario left behind must not outlive it (they hold the LUN open)
    for p in $(pidof pr-helper qemu-pr-helper qemu-system-x86_64 ld-linux-x86-64.so.2 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    sleep 0.1
    [ $mpath = 1 ] && mpath_down >>"$log" 2>&1
    [ $hostenv = 1 ] && hostenv_down >>"$log" 2>&1
    [ $nvme = 1 ] && nvme_down >>"$log" 2>&1
    rm -rf /run/* /tmp/work.* /deb/run/* /deb/tmp/* /deb/etc/multipath/*
    if [ $have_out = 1 ]; then
        cp "$log" "/out/$name.log"
        echo "$rc" >"/out/$name.rc"
        echo "$secs" >"/out/$name.secs"
        sync
    fi
    echo "@@LAB-BEGIN $name"
    cat "$log"
    echo "@@LAB-END $name rc=$rc secs=$secs"
    # A LUN whose LIO device deadlocked (PREEMPT AND ABORT on 6.1: core_tmr_lun_reset flushes
    # the submission work it runs in) cannot be torn down: give it 10 s, then reboot at once
    # (sysrq b: poweroff would hang syncing the disk; -no-reboot ends QEMU); run.sh boots a new
    # VM for the scenarios still to run.
    rm -f /tmp/down.ok
    (lun_down >/tmp/down.log 2>&1 && : >/tmp/down.ok) &
    w=0
    while [ ! -e /tmp/down.ok ] && [ $w -lt 100 ]; do sleep 0.1; w=$((w + 1)); done
    if [ ! -e /tmp/down.ok ]; then
        echo "@@LAB-TEARDOWN-HUNG after $name"
        cat /tmp/down.log
        dmesg | tail -n 30
        [ $have_out = 1 ] && { dmesg >"/out/teardown-hung.$name.dmesg"; umount /out; }
        echo b >/proc/sysrq-trigger
        poweroff -f
    fi
done
echo "@@LAB-DONE"
sync
[ $have_out = 1 ] && umount /out
poweroff -f
