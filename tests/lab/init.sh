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
#   "# lab-topology: nexus=N luns=M" line overrides nexus and luns for it.
# Output: per scenario /out/NAME.log and /out/NAME.rc, and on the console
#   @@LAB-BEGIN NAME / (the log) / @@LAB-END NAME rc=N, then @@LAB-DONE.
export PATH=/bin:/sbin
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

while read -r m; do
    insmod "/mods/$m" 2>/tmp/insmod.err || {
        grep -q 'File exists' /tmp/insmod.err || echo "lab-init: insmod $m: $(cat /tmp/insmod.err)"
    }
done </mods/order
mount -t configfs none /sys/kernel/config 2>/dev/null
echo 15 >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null

mount -t 9p -o trans=virtio,version=9p2000.L,ro host /host || fail "cannot mount the host root over 9p"
have_out=0
if grep -q '^out$' /sys/bus/virtio/drivers/9pnet_virtio/virtio*/mount_tag 2>/dev/null ||
    cat /sys/bus/virtio/drivers/9pnet_virtio/virtio*/mount_tag 2>/dev/null | tr '\0' '\n' | grep -q '^out$'; then
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

list=""
if [ -n "$plan" ]; then
    list=$(cat "$plan")
elif [ -n "$script" ]; then
    list=$(echo "$script" | tr ',' '\n')
fi
[ -n "$list" ] || fail "no lab.script= or lab.plan= on the kernel command line"

echo "@@LAB-READY kernel=$(uname -r) nexus=$nexus luns=$luns"
def_nexus=$nexus def_luns=$luns
for s in $list; do
    name=$(basename "$s" .sh)
    log=/tmp/$name.log
    # A scenario may ask for its own topology: a line "# lab-topology: nexus=3 luns=2".
    nexus=$def_nexus luns=$def_luns
    for kv in $(sed -n 's/^# lab-topology://p' "$s" 2>/dev/null); do
        case "$kv" in nexus=[1-9]) nexus=${kv#nexus=} ;; luns=[1-4]) luns=${kv#luns=} ;; esac
    done
    if ! lun_up >"$log" 2>&1; then
        echo "lab-init: cannot build the LIO LUN" >>"$log"
        rc=90
    else
        (
            [ -n "$envf" ] && . "$envf"
            . /tmp/devs.sh
            export LAB_NEXUS=$nexus LAB_LUNS=$luns
            export A=$LAB_DEV_1_0 B=${LAB_DEV_2_0:-} SGA=$LAB_SG_1_0 SGB=${LAB_SG_2_0:-}
            export LAB_SCENARIO=$name LAB_WORK=/tmp/work.$name
            mkdir -p "$LAB_WORK"
            cd "$LAB_WORK" || exit 91
            exec timeout "$tmo" sh -e "$s"
        ) >>"$log" 2>&1 </dev/null
        rc=$?
    fi
    # helpers a scenario left behind must not outlive it (they hold the LUN open)
    for p in $(pidof pr-helper qemu-pr-helper ld-linux-x86-64.so.2 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    sleep 0.1
    rm -rf /run/* /tmp/work.*
    if [ $have_out = 1 ]; then
        cp "$log" "/out/$name.log"
        echo "$rc" >"/out/$name.rc"
        sync
    fi
    echo "@@LAB-BEGIN $name"
    cat "$log"
    echo "@@LAB-END $name rc=$rc"
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
