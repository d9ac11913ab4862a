#!/bin/sh
# The checks of the systemd flavour of the PR lab (tests/lab/systemd/run.sh), run by
# lab-checks.service in the guest (systemd as PID 1, the guest's Debian trixie, our binary and
# units installed by packaging/install.sh). Builds the LIO LUN (two tcm_loop nexuses: $A, $B),
# then runs each step as "sh -e checks.sh step NAME" (lib.sh's assertions), writing
# $LAB_OUT/NAME.rc, .secs and .log, and the console lines @@LAB-STEP NAME rc=N secs=S.
#
# Steps (issue 19):
#   socket     qemu-pr-helper.socket: activation by the first client, Type=notify (active only
#              after READY=1) and its STATUS= text, PR commands through the socket, the mode
#   activated  qemu-pr-helper-activated.socket (Accept=yes): one instance per connection,
#              each gone when its client leaves
#   multipath  multipathd under its own unit, a map over both nexuses: REGISTER through the
#              helper reaches both paths and multipathd learns the key (getprkey)
#   restart    SIGKILL of the service: systemd restarts it, the next client is served; stop
#              leaves the socket unit's file, stopping the socket removes it
#   watchdog   a wedged loop (the test-only PR_HELPER_TEST_WEDGE_LOOP): WatchdogSec= kills it,
#              Restart=on-failure starts it again, the next client is served
#   seccomp    a forbidden call in the service (the crate's seccomp unit test as ExecStart, in
#              the unit's sandbox): killed with SIGSYS, the journal says so, with the audit line
#   security   systemd-analyze security on the booted system (score and exposures to $LAB_OUT)
#   audit      --audit=journal,all in the unit's sandbox with the real journald: a client in a
#              libvirt machine scope is found by `journalctl PR_VM=NAME`, its name from the
#              cgroup, read through the pidfd; one outside has no PR_VM; a record larger than
#              the socket's buffer reaches the journal whole (a sealed memfd)
steps="socket activated multipath restart watchdog seccomp security audit"

. "${LAB_ENV:-/lab-out/env}"
SOCK=/run/qemu-pr-helper.sock

if [ "${1:-}" = step ]; then
    . "$LAB_TESTS/lib.sh"
    . /run/lab/devs.sh
    # The installed binary, the guest's own sg_persist and multipath tools (no chroot here).
    LAB_BIN=/usr/bin/pr-helper
    OURS_SOCK=$SOCK
    CH=""
    sgp() { sg_persist "$@"; }
    sgraw() { sg_raw "$@"; }
    show() { systemctl show -P "$2" "$1"; }
    # wait_for SECS WHAT CMD...: until CMD succeeds, for SECS of the guest's clock (a
    # systemctl call alone takes a second under TCG on a busy machine)
    wait_for() {
        _s=$1 _what=$2
        shift 2
        _end=$(awk -v s="$_s" '{ printf "%d", $1 + s }' /proc/uptime)
        until "$@" >/dev/null 2>&1; do
            [ "$(cut -d. -f1 /proc/uptime)" -lt "$_end" ] || die "$_what: not after $_s s"
            sleep 0.1
        done
        echo "  ok: $_what"
    }
    is_state() { [ "$(show "$1" ActiveState)" = "$2" ]; }
    instances() { systemctl list-units --no-legend --plain 'qemu-pr-helper-activated@*.service' | grep -c . || true; }
    no_instances() { [ "$(instances)" = 0 ]; }
    status_has() { show qemu-pr-helper.service StatusText | grep -q "$1"; }

    step_socket() {
        say "systemctl enable --now qemu-pr-helper.socket"
        ok systemctl enable --now qemu-pr-helper.socket
        expect_eq "$(stat -c '%a %U %G %F' $SOCK)" "600 root root socket" "the socket file has SocketMode=0600"
        expect_eq "$(show qemu-pr-helper.service ActiveState)" inactive "no service before the first client"
        say "the first client starts the service"
        ok prc -k "$A"
        expect_in "there are NO registered reservation keys" "READ KEYS through the socket"
        expect_eq "$(show qemu-pr-helper.service ActiveState)/$(show qemu-pr-helper.service SubState)" active/running \
            "the service is active (Type=notify: after READY=1)"
        expect_eq "$(show qemu-pr-helper.service Type)/$(show qemu-pr-helper.service NotifyAccess)" notify/main "Type=notify, NotifyAccess=main"
        wait_for 30 "STATUS= text reported" status_has "Serving .* accepted and .* requests so far"
        echo "  StatusText=$(show qemu-pr-helper.service StatusText)"
        say "PR commands on the LUN through the socket"
        ok prc -o -G -S 0xaa "$A"
        ok prc -o -G -S 0xbb "$B"
        expect_keys "$B" "0xaa 0xbb " "both nexuses registered through the service"
        ok prc -o -R -K 0xaa -T 1 "$A"
        expect_resv "$B" "0xaa wr_ex" "reserved through the service"
        expect_io write "$B" CONFLICT "the other nexus cannot write"
        ok prc -o -L -K 0xaa -T 1 "$A"
        ok prc -o -G -K 0xaa -S 0 "$A"
        ok prc -o -G -K 0xbb -S 0 "$B"
        expect_keys "$A" "" "unregistered"
        say "the service's process, as systemd started it"
        P=$(show qemu-pr-helper.service MainPID)
        expect_eq "$(status_of "$P" CapEff)" 0000000000220000 "CapEff (CAP_SYS_RAWIO CAP_SYS_ADMIN)"
        expect_eq "$(status_of "$P" CapBnd)" 0000000000000000 "empty bounding set"
        expect_eq "$(status_of "$P" NoNewPrivs)" 1 "no_new_privs"
        # systemd's SystemCallFilter= and ours (Seccomp_filters counts both, and systemd's
        # may be several programs): the kernel runs every one, the strictest answer wins.
        expect_eq "$(status_of "$P" Seccomp)" 2 "seccomp filter mode"
        echo "  Seccomp_filters: $(status_of "$P" Seccomp_filters)"
        # ProtectProc=invisible: in its mount namespace /proc is mounted with hidepid=invisible.
        OUT=$(grep ' /proc proc ' /proc/"$P"/mounts)
        echo "  $OUT"
        expect_in "hidepid=invisible" "the service's /proc hides other users' processes"
        journalctl -b -u qemu-pr-helper.service --no-pager | tail -n 5
    }

    step_activated() {
        say "switch to qemu-pr-helper-activated.socket (Accept=yes) while the other serves"
        ok prc -k "$A"
        ok systemctl disable qemu-pr-helper.socket
        # Conflicts= and After=: the other socket (and its service, Requires=) stops first,
        # its RemoveOnStop= unlinks the path, then this one binds it.
        ok systemctl enable --now qemu-pr-helper-activated.socket
        expect_eq "$(show qemu-pr-helper.socket ActiveState)/$(show qemu-pr-helper.service ActiveState)" inactive/inactive \
            "qemu-pr-helper.socket and its service stopped by the conflict"
        expect_eq "$(show qemu-pr-helper-activated.socket ActiveState)" active "qemu-pr-helper-activated.socket listens"
        expect_eq "$(stat -c '%a %F' $SOCK)" "600 socket" "the socket file has SocketMode=0600"
        expect_eq "$(instances)" 0 "no instance before a client"
        say "one client: one instance, gone when it leaves"
        ok prc -o -G -S 0xaa "$A"
        expect_keys "$B" "0xaa " "REGISTER through an instance"
        wait_for 60 "every instance gone after its client left" no_instances
        # pr-client bench holds its connections open; the first requests wait for their
        # instances (under TCG on a busy machine, three sandboxed starts at once took 40 s:
        # with bench's default 10 s timeout it gave up and reconnected, a new instance each
        # time). Its end (SIGTERM) is the clients leaving.
        say "three clients at once (pr-client bench --connections=3)"
        "$LAB_BIN" pr-client bench --socket=$SOCK --connections=3 --seconds=600 --timeout=150 "$A" >/tmp/bench.out 2>&1 &
        bp=$!
        running3() { [ "$(systemctl list-units --no-legend --plain --state=running 'qemu-pr-helper-activated@*.service' | grep -c .)" = 3 ]; }
        if ! (wait_for 150 "three instances running" running3); then
            systemctl list-units --no-legend --plain --all 'qemu-pr-helper-activated@*.service'
            echo "NConnections=$(show qemu-pr-helper-activated.socket NConnections) NAccepted=$(show qemu-pr-helper-activated.socket NAccepted)"
            kill "$bp" 2>/dev/null
            cat /tmp/bench.out
            die "not three instances"
        fi
        systemctl list-units --no-legend --plain 'qemu-pr-helper-activated@*.service'
        for u in $(systemctl list-units --no-legend --plain --state=running 'qemu-pr-helper-activated@*.service' | cut -d' ' -f1); do
            expect_eq "$(show "$u" Type)/$(show "$u" ActiveState)" notify/active "$u: Type=notify, active"
        done
        expect_eq "$(show qemu-pr-helper-activated.socket NConnections)" 3 "the socket counts 3 connections"
        say "the clients leave"
        kill "$bp"
        wait "$bp" || true
        sed 's/^/  bench: /' /tmp/bench.out | head -n 4
        wait_for 60 "every instance gone after the clients left" no_instances
        expect_eq "$(show qemu-pr-helper-activated.socket NConnections)" 0 "no connection left"
        echo "  accepted so far: $(show qemu-pr-helper-activated.socket NAccepted)"
        ok prc -o -G -K 0xaa -S 0 "$A"
        wait_for 60 "the last instance gone" no_instances
        ok systemctl disable --now qemu-pr-helper-activated.socket
        [ ! -e $SOCK ] || die "$SOCK left after stopping qemu-pr-helper-activated.socket"
    }

    step_multipath() {
        say "multipathd under its own unit, a map over both nexuses"
        mkdir -p /etc/multipath/conf.d
        cat >/etc/multipath/conf.d/lab.conf <<'CONF'
defaults {
    find_multipaths no
    user_friendly_names yes
    polling_interval 1
    reservation_key file
    no_path_retry fail
}
blacklist {
    devnode "^nvme"
}
devices {
    device {
        vendor "LIO-ORG"
        product ".*"
        hardware_handler "0"
        path_grouping_policy multibus
        detect_prio no
        prio const
        path_checker tur
        no_path_retry fail
    }
}
CONF
        ok systemctl start multipathd.service
        expect_eq "$(show multipathd.service ActiveState)" active "multipathd.service active"
        multipath -v2 >/dev/null 2>&1 || true
        has_map() {
            for _d in /sys/block/dm-*; do
                case "$(cat "$_d/dm/uuid" 2>/dev/null)" in
                mpath-*) [ "$(ls "$_d/slaves" | wc -l)" -ge 2 ] && return 0 ;;
                esac
            done
            return 1
        }
        wait_for 60 "a map with both paths" has_map
        for _d in /sys/block/dm-*; do
            case "$(cat "$_d/dm/uuid" 2>/dev/null)" in mpath-*) MPNAME=$(cat "$_d/dm/name") ;; esac
        done
        MP=/dev/mapper/$MPNAME
        wait_for 30 "udev made $MP" test -b "$MP"
        wait_paths 2 "active ready" 20
        multipathd show topology
        say "the helper (a fresh service) REGISTERs through the map"
        ok systemctl enable --now qemu-pr-helper.socket
        ok prc -v -o -G -S 0x77 "$MP"
        expect_eq "$(keys_of "$A")" "0x77 0x77 " "the key on both paths (two I_T nexuses)"
        expect_keys "$MP" "0x77 0x77 " "keys read through the map"
        expect_eq "$(multipathd getprkey map "$MPNAME")" 0x77 "multipathd learned the key from the sandboxed helper"
        echo "  multipathd getprstatus: $(multipathd getprstatus map "$MPNAME")"
        ok prc -o -R -K 0x77 -T 1 "$MP"
        expect_resv "$A" "0x77 wr_ex" "reserved through the map"
        ok prc -o -L -K 0x77 -T 1 "$MP"
        ok prc -o -G -K 0x77 -S 0 "$MP"
        expect_eq "$(keys_of "$A")" "" "unregistered from both paths"
        echo "  multipathd getprkey after unregistering: $(multipathd getprkey map "$MPNAME")"
    }

    step_restart() {
        say "SIGKILL of the service: systemd restarts it"
        ok systemctl enable --now qemu-pr-helper.socket
        ok prc -k "$A"
        P1=$(show qemu-pr-helper.service MainPID)
        I1=$(stat -c %i $SOCK)
        [ "$P1" -gt 0 ] || die "no main PID"
        # The record of the maps it suspends (RuntimeDirectory=, /run being read-only to it).
        ls -l /run/qemu-pr-helper/ || die "no /run/qemu-pr-helper: RuntimeDirectory= missing?"
        [ -e "/run/qemu-pr-helper/suspended-maps.$P1" ] || die "the service has no record of suspended maps"
        echo "  ok: /run/qemu-pr-helper/suspended-maps.$P1, the record of the running service"
        ok systemctl kill -s KILL qemu-pr-helper.service
        wait_for 60 "restarted (NRestarts=1, active)" sh -c '[ "$(systemctl show -P NRestarts qemu-pr-helper.service)" = 1 ] && [ "$(systemctl show -P ActiveState qemu-pr-helper.service)" = active ]'
        P2=$(show qemu-pr-helper.service MainPID)
        [ "$P2" != "$P1" ] || die "the same main PID $P1 after the restart"
        echo "  ok: main PID $P1 -> $P2"
        ok prc -k "$A"
        expect_in "there are NO registered reservation keys" "the next client is served"
        # RuntimeDirectoryPreserve=restart: the restarted instance found the killed one's
        # record (and would have resumed a map it left suspended), then removed it.
        ls -l /run/qemu-pr-helper/
        [ -e "/run/qemu-pr-helper/suspended-maps.$P2" ] || die "the restarted service has no record"
        [ ! -e "/run/qemu-pr-helper/suspended-maps.$P1" ] || die "the killed instance's record is still there: the restarted one did not read it"
        echo "  ok: the restarted instance took over the killed one's record"
        OUT=$(journalctl -b -u qemu-pr-helper.service --no-pager)
        expect_in "code=killed, status=9/KILL" "the journal has the kill"
        expect_in "Scheduled restart job" "the journal has the restart"
        say "systemctl stop: the socket file stays the socket unit's"
        ok systemctl stop qemu-pr-helper.service
        expect_eq "$(stat -c '%i %F' $SOCK)" "$I1 socket" "the same socket file, kept by qemu-pr-helper.socket"
        ok prc -k "$A"
        expect_eq "$(show qemu-pr-helper.service ActiveState)" active "the next client activates it again"
        ok systemctl stop qemu-pr-helper.socket qemu-pr-helper.service
        [ ! -e $SOCK ] || die "$SOCK left after stopping the socket and the service"
        OUT=$(ls /run | grep -i 'pr-helper' || true)
        expect_eq "$OUT" "" "nothing of ours left in /run"
        ok systemctl start qemu-pr-helper.socket
    }

    step_watchdog() {
        say "a wedged loop: the watchdog kills the service, systemd starts it again"
        D=/run/systemd/system/qemu-pr-helper.service.d
        W=/run/lab-wedge
        mkdir -p $D
        # A shorter limit than the unit's 30 s, for the test's time; the switch wedges the
        # loop on a request that comes while $W exists.
        cat >$D/zz-lab-watchdog.conf <<UNIT
[Service]
WatchdogSec=6s
Environment=PR_HELPER_TEST_WEDGE_LOOP=$W
UNIT
        ok systemctl daemon-reload
        ok systemctl restart qemu-pr-helper.service
        ok prc -k "$A"
        expect_in "there are NO registered reservation keys" "served before the wedge"
        R0=$(show qemu-pr-helper.service NRestarts)
        P1=$(show qemu-pr-helper.service MainPID)
        since=$(date '+%Y-%m-%d %H:%M:%S')
        : >$W
        # The wedged request's connection closes when the watchdog kills the service.
        timeout 120 "$LAB_BIN" pr-client --socket="$SOCK" --timeout=120 -k "$A" >/dev/null 2>&1 &
        wedged=$!
        wait_for 90 "the watchdog fired and systemd restarted the service" sh -c \
            "[ \"\$(systemctl show -P NRestarts qemu-pr-helper.service)\" -gt $R0 ] && [ \"\$(systemctl show -P ActiveState qemu-pr-helper.service)\" = active ]"
        rm -f $W
        wait $wedged && die "the wedged request was answered" || true
        P2=$(show qemu-pr-helper.service MainPID)
        [ "$P2" != "$P1" ] || die "the same main PID $P1 after the restart"
        echo "  ok: main PID $P1 -> $P2"
        ok prc -k "$A"
        expect_in "there are NO registered reservation keys" "the next client is served"
        # RuntimeDirectoryPreserve=restart: the restarted instance found the killed one's
        # record (and would have resumed a map it left suspended), then removed it.
        ls -l /run/qemu-pr-helper/
        [ -e "/run/qemu-pr-helper/suspended-maps.$P2" ] || die "the restarted service has no record"
        [ ! -e "/run/qemu-pr-helper/suspended-maps.$P1" ] || die "the killed instance's record is still there: the restarted one did not read it"
        echo "  ok: the restarted instance took over the killed one's record"
        OUT=$(journalctl -b --since "$since" -u qemu-pr-helper.service --no-pager)
        echo "$OUT" | grep -iE 'watchdog|ABRT|restart' | sed 's/^/  journal| /' || true
        expect_in "Watchdog timeout" "the journal has the watchdog's timeout"
        expect_in "status=6/ABRT" "killed with SIGABRT"
        rm -rf $D
        ok systemctl daemon-reload
        ok systemctl restart qemu-pr-helper.service
        ok prc -k "$A"
    }

    step_seccomp() {
        say "a forbidden call in the service's sandbox: the crate's seccomp unit test as ExecStart"
        ok systemctl stop qemu-pr-helper.service
        D=/run/systemd/system/qemu-pr-helper.service.d
        mkdir -p $D
        # The child half of sys::seccomp::tests::a_forbidden_call_kills_the_process: installs
        # our filter, makes allowed calls, gets EACCES from a writable open, then getppid.
        # Built with panic=abort, libtest runs it in its own process only with
        # --force-run-in-process, so the killed process is the service's main process.
        cat >$D/zz-lab-seccomp.conf <<UNIT
[Service]
Type=simple
Restart=no
Environment=PRH_SECCOMP_CHILD=1 RUSTC_BOOTSTRAP=1
ExecStart=
ExecStart=$LAB_SECCOMP_TEST --exact sys::seccomp::tests::a_forbidden_call_kills_the_process --test-threads=1 --nocapture -Z unstable-options --force-run-in-process
UNIT
        ok systemctl daemon-reload
        since=$(date '+%Y-%m-%d %H:%M:%S')
        sleep 1
        ok systemctl start qemu-pr-helper.service
        wait_for 60 "the service failed" is_state qemu-pr-helper.service failed
        expect_eq "$(show qemu-pr-helper.service Result)" signal "Result=signal"
        expect_eq "$(show qemu-pr-helper.service ExecMainStatus)" 31 "killed by signal 31 (SIGSYS)"
        sleep 1
        OUT=$(journalctl -b --since "$since" --no-pager -o short-monotonic)
        echo "$OUT" | grep -E 'qemu-pr-helper|type=1326|SECCOMP|allowed calls|open refused' | sed 's/^/  journal| /'
        expect_in "allowed calls work" "allowed calls ran under both filters"
        expect_in "open refused" "a writable open refused (EACCES)"
        expect_in "Main process exited, code=killed, status=31/SYS" "systemd: killed by SIGSYS"
        expect_in "syscall=$(getppid_nr)" "the kernel's audit line names getppid"
        expect_in "code=0x80000000" "with SECCOMP_RET_KILL_PROCESS (our filter, not systemd's EPERM)"
        rm -rf $D
        ok systemctl daemon-reload
        ok systemctl reset-failed qemu-pr-helper.service
        ok prc -k "$A"
        expect_eq "$(show qemu-pr-helper.service ActiveState)" active "the unit serves again without the drop-in"
    }

    step_security() {
        say "systemd-analyze security qemu-pr-helper.service (booted system)"
        OUT=$(systemd-analyze security --no-pager qemu-pr-helper.service 2>&1) || true
        echo "$OUT" >"$LAB_OUT/security.txt"
        echo "$OUT" | grep -E '✗|Overall' || true
        expect_in "Overall exposure level for qemu-pr-helper.service" "an overall score"
        score=$(echo "$OUT" | sed -n 's/.*Overall exposure level for qemu-pr-helper.service: *\([0-9.]*\).*/\1/p')
        echo "  score: $score"
        # tests/packaging.rs allows 2.5 offline: the same limit on the booted system.
        awk -v s="$score" 'BEGIN { exit !(s + 0 <= 2.5) }' || die "exposure $score above 2.5"
        echo "  ok: exposure $score <= 2.5"
        OUT=$(systemd-analyze security --no-pager qemu-pr-helper-activated@1.service 2>&1) || true
        echo "$OUT" >"$LAB_OUT/security-activated.txt"
        echo "$OUT" | grep Overall
    }

    step_audit() {
        say "--audit=journal,all: the unit's daemon writes to the real journald"
        D=/run/systemd/system/qemu-pr-helper.service.d
        mkdir -p $D
        cat >$D/zz-lab-audit.conf <<UNIT
[Service]
ExecStart=
ExecStart=/usr/bin/pr-helper qemu-pr-helper --audit=journal,all
UNIT
        ok systemctl daemon-reload
        # A small default send buffer while the daemon makes its journal socket (at most 8 KiB,
        # the smallest the kernel takes): a record beyond it goes the memfd way. Set back at
        # once; journald keeps its own.
        # (No sysctl(8) in the guest: /proc/sys.)
        W=/proc/sys/net/core/wmem_default
        wmem=$(cat $W)
        for small in 4608 6144 8192; do echo $small 2>/dev/null >$W && break; done
        expect_eq "$(cat $W)" "$small" "net.core.wmem_default=$small"
        ok systemctl restart qemu-pr-helper.socket qemu-pr-helper.service
        ok prc -k "$A"
        echo "$wmem" >$W
        P=$(show qemu-pr-helper.service MainPID)
        OUT=$(tr '\0' ' ' </proc/"$P"/cmdline)
        expect_in "--audit=journal,all" "the service runs with --audit"
        ID=5a0e1f3c7b9d4e2a8c6b1d0f3e5a7c92
        say "a client in libvirt's machine scope machine-qemu\\x2d7\\x2dlabvm.scope"
        ok systemd-run --quiet --scope --slice=machine.slice --unit='machine-qemu\x2d7\x2dlabvm' \
            "$LAB_BIN" pr-client --socket=$SOCK --timeout=30 -o -G -S 0xc7 "$A"
        found() { journalctl -b --no-pager -o cat MESSAGE_ID=$ID "$@" | grep -q .; }
        wait_for 60 "journalctl PR_VM=labvm finds its REGISTER" found PR_VM=labvm PR_ACTION=REGISTER
        OUT=$(journalctl -b --no-pager -o verbose MESSAGE_ID=$ID PR_VM=labvm PR_ACTION=REGISTER)
        echo "$OUT" | sed 's/^/  journal| /'
        expect_in "PR_VM_SOURCE=cgroup" "the name is the machine scope's"
        expect_in "PR_SA_KEY=0x00000000000000c7" "its key"
        expect_in 'PR_PEER_CGROUP=/machine.slice/machine-qemu\x2d7\x2dlabvm.scope' "its cgroup"
        expect_in "SYSLOG_IDENTIFIER=qemu-pr-helper" "under the unit's identifier"
        expect_in "PR_DEVICE_NAME=${A#/dev/}" "its device"
        # SO_PEERPIDFD is Linux 6.5.
        kv=$(uname -r | awk -F. '{ print $1 * 1000 + $2 }')
        if [ "$kv" -ge 6005 ]; then
            expect_in "PR_PEER_READ=pidfd" "read through the peer's pidfd"
        else
            expect_in "PR_PEER_READ=pid" "read by pid (no SO_PEERPIDFD before 6.5)"
        fi
        say "a client outside any machine scope: no PR_VM"
        ok prc -o -G -K 0xc7 -S 0 "$A"
        wait_for 60 "the unregistering REGISTER recorded" found PR_ACTION=REGISTER PR_KEY=0x00000000000000c7
        OUT=$(journalctl -b --no-pager -o verbose MESSAGE_ID=$ID PR_ACTION=REGISTER PR_KEY=0x00000000000000c7)
        case "$OUT" in *"PR_VM="*) echo "$OUT"; die "a PR_VM outside a machine scope" ;; esac
        echo "  ok: no PR_VM outside a machine scope"
        say "a record larger than the daemon's socket buffer ($small): a sealed memfd, whole in the journal"
        # A cgroup path of 15 levels of 250 characters (under the 4 KiB /proc/PID/cgroup
        # shows) in a machine scope of our own making: in MESSAGE and PR_PEER_CGROUP, over 8 KiB.
        big='/sys/fs/cgroup/machine.slice/machine-qemu\x2d8\x2dbigvm.scope'
        seg=$(printf 'd%.0s' $(seq 250))
        mkdir "$big"
        ok sh -c 'cd "$0" && for i in $(seq 15); do mkdir "$1" && cd "$1"; done && echo $$ >cgroup.procs && shift && exec "$@"' \
            "$big" "$seg" "$LAB_BIN" pr-client --socket=$SOCK --timeout=30 -k "$A"
        wait_for 60 "journalctl PR_VM=bigvm finds its READ KEYS" found PR_VM=bigvm
        OUT=$(journalctl -b --no-pager -o export MESSAGE_ID=$ID PR_VM=bigvm)
        size=$(printf '%s\n' "$OUT" | wc -c)
        cg=$(printf '%s\n' "$OUT" | sed -n 's/^PR_PEER_CGROUP=//p')
        expect_eq "$([ "$size" -gt 8192 ] && echo over)" over "a record of $size bytes"
        expect_eq "$(printf %s "$cg" | wc -c)" $((47 + 15 * 251)) "PR_PEER_CGROUP whole"
        (cd "$big" && for i in $(seq 15); do cd "$seg"; done && for i in $(seq 15); do cd .. && rmdir "$seg"; done) || true
        rmdir "$big" || true
        say "a record of 64 KiB through the journal sink (the crate's unit test, in the guest)"
        pidf=$LAB_OUT/journal64.pid
        ok sh -c 'echo $$ >"$0"; RUSTC_BOOTSTRAP=1 exec "$1" --ignored --exact daemon::audit::tests::sinks::a_64_kib_record_reaches_the_real_journald --test-threads=1 -Z unstable-options --force-run-in-process' \
            "$pidf" "$LAB_SECCOMP_TEST"
        tpid=$(cat "$pidf")
        wait_for 60 "journalctl _PID=$tpid finds the 64 KiB record" found _PID="$tpid"
        OUT=$(journalctl -b --no-pager -o export MESSAGE_ID=$ID _PID="$tpid")
        cg=$(printf '%s\n' "$OUT" | sed -n 's/^PR_PEER_CGROUP=//p')
        expect_eq "$(printf %s "$cg" | wc -c)" 65537 "PR_PEER_CGROUP of 64 KiB whole in the journal"
        OUT=$(show qemu-pr-helper.service StatusText)
        echo "  StatusText=$OUT"
        case "$OUT" in *dropped*) die "records dropped: $OUT" ;; esac
        echo "  ok: no record dropped"
        rm -rf $D
        ok systemctl daemon-reload
        ok systemctl restart qemu-pr-helper.service
    }

    set -e
    "step_$2"
    exit 0
fi

# The driver: LUN, then each step in its own shell, then power-off (ExecStopPost).
uptime_s() { cut -d' ' -f1 /proc/uptime; }
up=$(uptime_s)
mu=$(systemctl show -P ActiveEnterTimestampMonotonic multi-user.target)
boot="multi-user.target at $(awk -v u="$mu" 'BEGIN { printf "%.1f", u / 1e6 }') s, checks start at $up s (kernel uptime)"
echo "$boot" >"$LAB_OUT/boot"
echo "$steps" >"$LAB_OUT/steps"
# Progress on the console (the VM's) as well as in the journal.
con() { echo "$*"; echo "$*" >/dev/console 2>/dev/null || true; }
con "@@LAB-READY kernel=$(uname -r) $boot"
systemctl --no-pager --failed
# What the boot spent its time on (systemd-analyze blame waits for the boot to finish, which
# includes this unit): each unit's activation, longest first.
systemctl show -p Id -p InactiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic '*' 2>/dev/null |
    awk -F= '/^Id=/ { id = $2 } /^InactiveExit/ { s = $2 } /^ActiveEnter/ { if (s > 0 && $2 > s) printf "%8.2f s  %s (up at %.1f s)\n", ($2 - s) / 1e6, id, $2 / 1e6 }' |
    sort -rn | head -n 15 >"$LAB_OUT/blame.txt"

# The kernel's audit records (the seccomp kill of the seccomp step) in the journal: stage1.sh
# enables the socket journald reads them from; should it not be up, start it and restart
# journald (slow: tens of seconds under TCG).
if [ "$(systemctl show -P ActiveState systemd-journald-audit.socket)" != active ]; then
    systemctl start systemd-journald-audit.socket && systemctl restart systemd-journald.service
fi
con "@@LAB-PREP journal with audit records at $(uptime_s) s"

# multipathd (enabled by its package) must not take the LUN before the multipath step.
systemctl stop multipathd.socket multipathd.service >/dev/null 2>&1
multipath -F >/dev/null 2>&1
con "@@LAB-PREP multipathd stopped at $(uptime_s) s"

mkdir -p /run/lab /etc/target/pr /var/target/pr
T=/sys/kernel/config/target
[ -d $T ] || mount -t configfs none /sys/kernel/config 2>/dev/null
[ -d $T ] || mkdir -p $T
D=$T/core/fileio_0/disk0
mkdir -p $D
echo "fd_dev_name=/run/lab/disk0.img,fd_dev_size=67108864" >$D/control
echo 1 >$D/enable
for n in 1 2; do
    L=$T/loopback/naa.500140500000000$n/tpgt_1
    mkdir -p $L/lun/lun_0
    echo naa.5001405aaaaaaa0$n >$L/nexus
    ln -s $D $L/lun/lun_0/disk0
done
w=0
until [ "$(ls -d /sys/block/sd* 2>/dev/null | wc -l)" -ge 2 ]; do
    w=$((w + 1))
    [ $w -gt 100 ] && { echo "@@LAB-FATAL no sd devices"; break; }
    sleep 0.1
done
udevadm settle --timeout=30
# tcm_loop hosts in creation order: the lower SCSI host is nexus 1.
for s in /sys/block/sd*; do echo "$(ls "$s/device/scsi_device") ${s##*/}"; done | sort -n -t: -k1,1 |
    awk '{ n++; printf "export %s=/dev/%s\n", (n == 1 ? "A" : "B"), $2 }' >/run/lab/devs.sh
cat /run/lab/devs.sh
con "@@LAB-PREP LUN ready at $(uptime_s) s"

for s in $steps; do
    t0=$(uptime_s)
    con "@@LAB-STEP-START $s"
    sh -e "$0" step "$s" >"$LAB_OUT/$s.log" 2>&1
    rc=$?
    secs=$(awk "BEGIN { printf \"%.1f\", $(uptime_s) - $t0 }")
    echo "$secs" >"$LAB_OUT/$s.secs"
    echo "$rc" >"$LAB_OUT/$s.rc"
    sync
    con "@@LAB-STEP $s rc=$rc secs=$secs"
done
journalctl -b --no-pager >"$LAB_OUT/journal.txt" 2>&1
con "@@LAB-DONE"
sync
