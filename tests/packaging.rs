//! The files under packaging/, each exercised for real: systemd units (systemd-analyze
//! verify and offline security, and their ExecStart run the way systemd would run it, with
//! the units' capability bounding set), the OpenRC script under openrc-run, the dracut
//! module and the initramfs-tools hook (images built, unpacked, and the daemon started from
//! them in a chroot), man pages against --help, install.sh, and the .deb built by cargo-deb.
//!
//! Tools a test needs are installed by the test (apt-get, cargo install): nothing is
//! skipped. The tests that install packages are the heavy tier (`#[ignore]`d; tests/run-all.sh
//! runs them with `--ignored`). Each external command runs under timeout(1).

mod common;

use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use pr_helper::Connection;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn packaging() -> PathBuf {
    repo().join("packaging")
}

/// Runs a bash script under timeout(1); the output, whatever the status.
fn sh_output(script: &str, limit_secs: u64) -> Output {
    Command::new("timeout")
        .args(["--kill-after=10", &limit_secs.to_string(), "bash", "-c"])
        .arg(format!("set -euo pipefail\n{script}"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs a bash script; panics with its output unless it succeeds. Returns stdout.
fn sh(script: &str, limit_secs: u64) -> String {
    let out = sh_output(script, limit_secs);
    assert!(
        out.status.success(),
        "script failed ({}):\n{script}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// apt-get install, once per test binary at a time (dpkg's lock), when `tool` is missing.
fn ensure_apt(tool: &str, packages: &[&str]) {
    static APT: Mutex<()> = Mutex::new(());
    let _guard = APT.lock().unwrap_or_else(|e| e.into_inner());
    if sh_output(&format!("command -v {tool}"), 10)
        .status
        .success()
    {
        return;
    }
    let list = packages.join(" ");
    let install = format!(
        "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
         --no-install-recommends {list}"
    );
    if !sh_output(&install, 600).status.success() {
        sh(
            &format!("apt-get -o DPkg::Lock::Timeout=300 update -q && {install}"),
            900,
        );
    }
    sh(&format!("command -v {tool}"), 10);
}

/// Key=value lines of a unit file (every occurrence, in order).
fn unit_values(path: &Path, key: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
        .collect()
}

fn unit(name: &str) -> PathBuf {
    packaging().join("systemd").join(name)
}

const UNITS: [&str; 4] = [
    "qemu-pr-helper.socket",
    "qemu-pr-helper.service",
    "qemu-pr-helper-activated.socket",
    "qemu-pr-helper-activated@.service",
];

/// Man pages laid out for MANPATH: DIR/man1, DIR/man8.
fn man_tree(dir: &Path) {
    for entry in std::fs::read_dir(packaging().join("man"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(section) = name.rsplit('.').next().filter(|s| s.len() == 1) else {
            continue;
        };
        let to = dir.join(format!("man{section}"));
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(entry.path(), to.join(&name)).unwrap();
    }
}

/// Every file under `dir`, recursively (symlinks as themselves: the .deb's links dangle here).
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            files_under(&entry.path(), out);
        } else {
            out.push(entry.path());
        }
    }
}

/// The test-only switches (`PR_HELPER_TEST_SGIO_DELAY_MS`) are in every build, so that a
/// release run proves what a debug run does: nothing that ships may set one. Units, OpenRC,
/// dracut, initramfs-tools, man pages, install.sh: none mentions them.
#[test]
fn no_packaging_file_sets_a_test_switch() {
    let mut files = Vec::new();
    files_under(&packaging(), &mut files);
    for shipped in [
        "systemd/qemu-pr-helper.service",
        "systemd/qemu-pr-helper-activated@.service",
        "openrc/qemu-pr-helper",
        "openrc/qemu-pr-helper.confd",
        "dracut/95pr-helper/pr-helper-start.sh",
        "initramfs-tools/scripts/init-premount/pr-helper",
        "initramfs-tools/conf.d/pr-helper",
    ] {
        assert!(
            files.contains(&packaging().join(shipped)),
            "{shipped} not found: the check would miss it"
        );
    }
    for file in &files {
        let bytes = match std::fs::read_link(file) {
            Ok(target) => target.into_os_string().into_encoded_bytes(),
            Err(_) => std::fs::read(file).unwrap(),
        };
        assert!(
            !bytes
                .windows(b"PR_HELPER_TEST_".len())
                .any(|w| w == b"PR_HELPER_TEST_"),
            "{} mentions a PR_HELPER_TEST_ switch: no unit, script or package may set one",
            file.display()
        );
    }
}

#[test]
fn systemd_units_verify_and_are_hardened() {
    let scratch = Scratch::new("pkg-units");
    let root = scratch.path("root");
    let mans = scratch.path("man");
    man_tree(&mans);
    // An image root: the host's units (targets the ours refer to), ours, and the binary at
    // the path ExecStart names.
    sh(
        &format!(
            "r={root}; mkdir -p $r/usr/bin $r/lib/systemd/system
             cp -a /lib/systemd/system/. $r/lib/systemd/system/
             cp {units}/* $r/lib/systemd/system/
             cp {bin} $r/usr/bin/pr-helper",
            root = q(&root),
            units = q(&packaging().join("systemd")),
            bin = q(&binary()),
        ),
        60,
    );
    // Not --man=no: Documentation= must name pages we ship (MANPATH has only ours).
    let out = Command::new("timeout")
        .args(["60", "systemd-analyze", "verify"])
        .arg(format!("--root={}", root.display()))
        .args(UNITS)
        .env("MANPATH", &mans)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.trim(), "", "systemd-analyze verify complained");

    for service in [
        "qemu-pr-helper.service",
        "qemu-pr-helper-activated@.service",
    ] {
        let out = sh(
            &format!(
                "systemd-analyze security --offline=yes --root={} {service} 2>&1",
                q(&root)
            ),
            60,
        );
        let line = out
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("{out}"));
        let score: f64 = line
            .split(": ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        // 2.5 with multipath support: CAP_SYS_ADMIN (dm ioctls) and the host's network
        // namespace (multipathd's abstract socket) cost 0.8 between them.
        assert!(score <= 2.5, "{service}: {line}");
        for (key, want) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("RestrictAddressFamilies", "AF_UNIX"),
            (
                "SystemCallFilter",
                "@system-service,landlock_create_ruleset landlock_add_rule landlock_restrict_self",
            ),
            ("LockPersonality", "yes"),
            ("MemoryDenyWriteExecute", "yes"),
            ("DevicePolicy", "closed"),
            ("Type", "notify"),
        ] {
            let values = unit_values(&unit(service), key).join(",");
            assert_eq!(values, want, "{service} {key}");
        }
        // PrivateDevices= would take CAP_SYS_RAWIO away.
        assert!(unit_values(&unit(service), "PrivateDevices").is_empty());
        // The path opener of a -u drop-in reads path nodes with CAP_DAC_READ_SEARCH; nothing
        // may write past permissions.
        let caps = unit_values(&unit(service), "CapabilityBoundingSet").join(" ");
        assert!(caps.contains("CAP_DAC_READ_SEARCH"), "{service}: {caps}");
        assert!(!caps.contains("CAP_DAC_OVERRIDE"), "{service}: {caps}");
    }
    // QEMU's contrib/systemd socket: same path and mode, for libvirt.
    for socket in ["qemu-pr-helper.socket", "qemu-pr-helper-activated.socket"] {
        assert_eq!(
            unit_values(&unit(socket), "ListenStream"),
            ["/run/qemu-pr-helper.sock"]
        );
        assert_eq!(unit_values(&unit(socket), "SocketMode"), ["0600"]);
    }
    assert_eq!(
        unit_values(&unit("qemu-pr-helper-activated.socket"), "Accept"),
        ["yes"]
    );
}

/// setpriv arguments for a unit's CapabilityBoundingSet= and NoNewPrivileges=.
fn setpriv_args(caps: &[String]) -> Vec<String> {
    let mut bounding = String::from("-all");
    for cap in caps.iter().flat_map(|c| c.split_whitespace()) {
        let name = cap.strip_prefix("CAP_").unwrap().to_ascii_lowercase();
        bounding.push_str(&format!(",+{name}"));
    }
    vec![
        "setpriv".into(),
        "--bounding-set".into(),
        bounding,
        "--no-new-privs".into(),
    ]
}

/// ExecStart= of a unit, with /usr/bin/pr-helper replaced by the binary under test.
fn exec_start(service: &str) -> Vec<String> {
    let line = unit_values(&unit(service), "ExecStart").pop().unwrap();
    line.split_whitespace()
        .map(|w| {
            if w == "/usr/bin/pr-helper" {
                binary().display().to_string()
            } else {
                w.to_owned()
            }
        })
        .collect()
}

fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap()
}

fn serve_once(socket: &Path) {
    let mut conn = Connection::connect(socket, Some(Duration::from_secs(5))).unwrap();
    let reply = conn
        .request(&pr_in(0, 24), open_rw("/dev/null").as_fd(), &[])
        .unwrap();
    assert_eq!(reply.status(), 2);
}

/// What systemd would run, as far as this machine (systemd is not PID 1) allows: the
/// socket passed by systemd-socket-activate, NOTIFY_SOCKET, the unit's ExecStart, under the
/// unit's bounding set and no_new_privs. The daemon's own privilege drop must succeed there
/// and leave CAP_SYS_RAWIO alone; with CAP_SYS_RAWIO alone in the bounding set it fails,
/// which is why the units keep CAP_SETUID, CAP_SETGID and CAP_SETPCAP.
#[test]
fn unit_exec_start_runs_under_the_units_capabilities() {
    for (service, accept) in [
        ("qemu-pr-helper.service", false),
        ("qemu-pr-helper-activated@.service", true),
    ] {
        let scratch = Scratch::new("pkg-exec");
        let socket = scratch.path("pr.sock");
        let notify_path = scratch.path("notify");
        let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let caps = unit_values(&unit(service), "CapabilityBoundingSet");
        let mut cmd = Command::new("systemd-socket-activate");
        cmd.arg("-l").arg(&socket);
        if accept {
            cmd.arg("--accept");
        }
        cmd.arg("-E")
            .arg(format!("NOTIFY_SOCKET={}", notify_path.display()))
            .args(setpriv_args(&caps))
            .args(exec_start(service))
            .stderr(Stdio::null());
        let mut guard = Guard::spawn(&mut cmd);
        wait_for_socket(&socket, Duration::from_secs(10));
        if accept {
            // wait_for_socket's probe had an instance of its own; this is a second one.
            let mut conn = Connection::connect(&socket, Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 256];
            let n = notify.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"READY=1", "{service}");
            let start = Instant::now();
            let pid = loop {
                let pids = children_of(guard.id());
                // The probe's instance exits on its own: wait for ours alone.
                if let [pid] = pids[..] {
                    break pid;
                }
                assert!(start.elapsed() < Duration::from_secs(5), "no instance");
                std::thread::sleep(Duration::from_millis(20));
            };
            assert_eq!(status_field(pid, "CapBnd"), "0000000000000000");
            assert_eq!(status_field(pid, "CapEff"), "0000000000220000");
            let reply = conn
                .request(&pr_in(0, 24), open_rw("/dev/null").as_fd(), &[])
                .unwrap();
            assert_eq!(reply.status(), 2);
        } else {
            serve_once(&socket);
            let mut buf = [0u8; 256];
            let n = notify.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"READY=1", "{service}");
            // setpriv exec'd the daemon: same pid as systemd-socket-activate's child.
            let pid = guard.id();
            assert_eq!(status_field(pid, "CapBnd"), "0000000000000000");
            assert_eq!(status_field(pid, "CapEff"), "0000000000220000");
            assert_eq!(status_field(pid, "NoNewPrivs"), "1");
            assert!(guard.terminate().success());
        }
    }
    // With -u/-g added (a drop-in): the daemon drops to the user with the same CapEff; where
    // this machine has device-mapper, the path opener it forks keeps CAP_SYS_ADMIN and
    // CAP_DAC_READ_SEARCH, which the unit's bounding set must therefore hold.
    let scratch = Scratch::new("pkg-exec-user");
    let socket = scratch.path("pr.sock");
    let caps = unit_values(&unit("qemu-pr-helper.service"), "CapabilityBoundingSet");
    let setpriv = setpriv_args(&caps);
    let mut cmd = Command::new(&setpriv[0]);
    cmd.args(&setpriv[1..])
        .args(exec_start("qemu-pr-helper.service"))
        .args(["-u", "65534", "-g", "65534", "-k"])
        .arg(&socket)
        .stderr(Stdio::null());
    let mut guard = Guard::spawn(&mut cmd);
    wait_for_socket(&socket, Duration::from_secs(10));
    serve_once(&socket);
    let pid = guard.id();
    assert_eq!(status_field(pid, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(pid, "CapEff"), "0000000000220000");
    let opener = children_of(pid);
    assert_eq!(
        opener.len(),
        usize::from(Path::new("/dev/mapper/control").exists()),
        "{opener:?}"
    );
    for child in opener {
        assert_eq!(status_field(child, "Uid"), "65534\t65534\t65534\t65534");
        assert_eq!(status_field(child, "CapEff"), "0000000000200004");
        assert_eq!(status_field(child, "CapBnd"), "0000000000000000");
    }
    guard.terminate();

    // Without the transitional capabilities, the daemon's own drop fails.
    let scratch = Scratch::new("pkg-exec-fail");
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-all,+sys_rawio", "--no-new-privs"])
        .args(exec_start("qemu-pr-helper.service"))
        .arg("-k")
        .arg(scratch.path("x.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Failed to drop privileges"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// openrc-run in a mount namespace: /run is a fresh tmpfs there and /run/openrc a scratch
/// directory, so the host's state is not touched and the state survives between commands.
fn openrc(scratch: &Scratch, action: &str) -> Output {
    let s = &scratch.0;
    sh_output(
        &format!(
            "unshare -m --propagation private sh -c \
             'mount -t tmpfs tmpfs /run && mkdir /run/openrc && mount --bind {rc} /run/openrc \
              && openrc-run {script} {action}'",
            rc = s.join("rc").display(),
            script = s.join("init.d/qemu-pr-helper").display(),
        ),
        60,
    )
}

#[test]
#[ignore = "heavy tier: installs openrc with apt-get, needs root; tests/run-all.sh runs it"]
fn openrc_script_starts_and_stops_the_daemon() {
    ensure_apt("openrc-run", &["openrc"]);
    let script = packaging().join("openrc/qemu-pr-helper");
    sh(&format!("sh -n {}", q(&script)), 10);
    for supervisor in ["", "supervisor=supervise-daemon"] {
        let scratch = Scratch::new("pkg-openrc");
        let s = &scratch.0;
        sh(
            &format!(
                "cd {s}; mkdir -p init.d conf.d rc; cp {script} init.d/
                 (cd rc && mkdir daemons exclusive failed hotplugged inactive options scheduled \
                  started starting stopping tmp wasinactive && touch softlevel)
                 cp {confd} conf.d/qemu-pr-helper
                 printf '%s\\n' PR_HELPER_BIN={bin} PR_HELPER_SOCKET=$PWD/pr.sock \
                   PR_HELPER_PIDFILE=$PWD/pr.pid 'PR_HELPER_OPTS=-q' {supervisor} \
                   >> conf.d/qemu-pr-helper",
                s = q(s),
                script = q(&script),
                confd = q(&packaging().join("openrc/qemu-pr-helper.confd")),
                bin = q(&binary()),
            ),
            10,
        );
        let out = openrc(&scratch, "start");
        assert!(out.status.success(), "{out:?}");
        let socket = scratch.path("pr.sock");
        // start-stop-daemon with -d returns once the socket accepts; supervise-daemon
        // returns at once.
        if supervisor.is_empty() {
            serve_once(&socket);
            let pid: u32 = std::fs::read_to_string(scratch.path("pr.pid"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
            assert_eq!(
                cmdline.split('\0').collect::<Vec<_>>()[1..],
                [
                    "qemu-pr-helper",
                    "-k",
                    &socket.display().to_string(),
                    "-q",
                    "-d",
                    "-f",
                    &scratch.path("pr.pid").display().to_string(),
                    ""
                ]
            );
        } else {
            wait_for_socket(&socket, Duration::from_secs(10));
            serve_once(&socket);
        }
        let out = openrc(&scratch, "status");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("started"),
            "{out:?}"
        );
        let out = openrc(&scratch, "stop");
        assert!(out.status.success(), "{out:?}");
        let start = Instant::now();
        while socket.exists() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!socket.exists(), "socket left after stop ({supervisor})");
        assert!(!scratch.path("pr.pid").exists());
        let out = openrc(&scratch, "status");
        assert_eq!(out.status.code(), Some(3), "{out:?}");
    }
}

/// Starts `script` inside an unpacked initramfs (chroot, with /dev and /proc mounted in a
/// private mount namespace), then checks that the daemon it started serves, and stops it.
fn start_in_image(root: &Path, script: &str) {
    sh(
        &format!(
            "r={r}; mkdir -p $r/dev $r/proc $r/run
             unshare -m --propagation private sh -c \"mount --bind /dev $r/dev && \
               mount -t proc proc $r/proc && chroot $r /bin/sh -c 'quiet=n; export quiet; \
               exec /bin/sh {script}'\"",
            r = q(root)
        ),
        60,
    );
    let socket = root.join("run/qemu-pr-helper.sock");
    serve_once(&socket);
    let pid: u32 = std::fs::read_to_string(root.join("run/qemu-pr-helper.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(pid, 15);
    let start = Instant::now();
    while socket.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!socket.exists());
}

#[test]
#[ignore = "heavy tier: installs dracut-core with apt-get, builds initramfs images, needs root; tests/run-all.sh runs it"]
fn dracut_module_builds_images_with_and_without_systemd() {
    ensure_apt("dracut", &["dracut-core"]);
    let scratch = Scratch::new("pkg-dracut");
    let s = &scratch.0;
    // A private copy of dracut's base directory with our module added: nothing is
    // installed on the host.
    sh(
        &format!(
            "cd {s}; cp -as /usr/lib/dracut base; rm -rf base/modules.d/95pr-helper
             cp -r {module} base/modules.d/; mkdir confdir units; cp {units}/* units/
             printf '%s\\n' pr_helper_binary={bin} pr_helper_unitdir=$PWD/units > dracut.conf",
            s = q(s),
            module = q(&packaging().join("dracut/95pr-helper")),
            units = q(&packaging().join("systemd")),
            bin = q(&binary()),
        ),
        30,
    );
    for (image, modules) in [
        ("plain", "bash base pr-helper"),
        ("sd", "bash systemd pr-helper"),
    ] {
        sh(
            &format!(
                "cd {s}; dracutbasedir=$PWD/base dracut --no-kernel --no-hostonly \
                 --conf dracut.conf --confdir confdir -m '{modules}' --force {image}.img \
                 > {image}.log 2>&1 || {{ cat {image}.log; exit 1; }}
                 mkdir {image} && cd {image} && lsinitrd --unpack ../{image}.img > /dev/null",
                s = q(s)
            ),
            300,
        );
        let root = scratch.path(image);
        let link = std::fs::read_link(root.join("usr/bin/qemu-pr-helper")).unwrap();
        assert_eq!(link, Path::new("pr-helper"));
        assert_eq!(
            std::fs::read_link(root.join("usr/bin/qemu-pr-helper-activated")).unwrap(),
            Path::new("pr-helper")
        );
        let version = sh(
            &format!("chroot {} /usr/bin/qemu-pr-helper -V", q(&root)),
            30,
        );
        assert!(version.contains("(pr-helper)"), "{version}");
    }
    // Without systemd: the pre-mount hook starts the daemon.
    let plain = scratch.path("plain");
    assert!(
        plain
            .join("usr/lib/dracut/hooks/pre-mount/50-pr-helper-start.sh")
            .exists()
    );
    start_in_image(
        &plain,
        "/usr/lib/dracut/hooks/pre-mount/50-pr-helper-start.sh",
    );
    // With systemd: the units, the socket enabled, and verified inside the image.
    let sd = scratch.path("sd");
    assert!(
        sd.join("usr/lib/systemd/system/qemu-pr-helper.service")
            .exists()
    );
    assert!(
        sd.join("etc/systemd/system/sockets.target.wants/qemu-pr-helper.socket")
            .symlink_metadata()
            .is_ok()
    );
    assert!(
        !sd.join("usr/lib/dracut/hooks/pre-mount/50-pr-helper-start.sh")
            .exists()
    );
    sh(
        &format!(
            "systemd-analyze verify --man=no --root={} qemu-pr-helper.socket \
             qemu-pr-helper.service 2>&1 | (! grep .)",
            q(&sd)
        ),
        60,
    );
}

#[test]
#[ignore = "heavy tier: installs initramfs-tools-core with apt-get, chroots, needs root; tests/run-all.sh runs it"]
fn initramfs_tools_hook_builds_an_image_that_starts_the_daemon() {
    ensure_apt("mkinitramfs", &["initramfs-tools-core", "cpio"]);
    let scratch = Scratch::new("pkg-itools");
    let s = &scratch.0;
    let it = packaging().join("initramfs-tools");
    // A private CONFDIR, with our hook, script and conf.d; /boot (which mkinitramfs reads
    // the kernel's config from) is a tmpfs in a private mount namespace. There is no
    // /lib/modules here: mkinitramfs only warns.
    let version = "0.0.0-pr-helper-test";
    let log = sh(
        &format!(
            "cd {s}; mkdir -p conf/conf.d conf/hooks conf/scripts/init-premount
             cp /etc/initramfs-tools/initramfs.conf conf/ 2>/dev/null || \
               cp /usr/share/initramfs-tools/initramfs.conf conf/ 2>/dev/null || \
               echo MODULES=list > conf/initramfs.conf
             sed -i 's/^MODULES=.*/MODULES=list/; s/^COMPRESS=.*/COMPRESS=gzip/' \
               conf/initramfs.conf
             touch conf/modules
             cp {it}/hooks/pr-helper conf/hooks/
             cp {it}/scripts/init-premount/pr-helper conf/scripts/init-premount/
             cp {it}/conf.d/pr-helper conf/conf.d/
             echo PR_HELPER_BIN={bin} >> conf/conf.d/pr-helper
             unshare -m --propagation private sh -c \
               \"mount -t tmpfs tmpfs /boot && echo CONFIG_RD_GZIP=y > /boot/config-{version} \
                 && mkinitramfs -d conf -o initrd.img {version}\" 2>&1
             lsinitramfs initrd.img > list
             unmkinitramfs initrd.img root",
            s = q(s),
            it = q(&it),
            bin = q(&binary()),
        ),
        300,
    );
    let list = std::fs::read_to_string(scratch.path("list")).unwrap();
    for want in [
        "usr/bin/pr-helper",
        "usr/bin/qemu-pr-helper",
        "usr/bin/qemu-pr-helper-activated",
        "scripts/init-premount/pr-helper",
        "conf/conf.d/pr-helper",
    ] {
        assert!(
            list.lines().any(|l| l == want),
            "{want} missing:\n{list}\n{log}"
        );
    }
    let root = scratch.path("root");
    let root = if root.join("main").is_dir() {
        root.join("main")
    } else {
        root
    };
    assert_eq!(
        std::fs::read_link(root.join("usr/bin/qemu-pr-helper")).unwrap(),
        Path::new("pr-helper")
    );
    start_in_image(&root, "/scripts/init-premount/pr-helper");

    // Opt-in: without PR_HELPER=y the hook adds nothing.
    sh(
        &format!(
            "cd {s}; sed -i 's/^PR_HELPER=y/PR_HELPER=n/' conf/conf.d/pr-helper
             unshare -m --propagation private sh -c \
               \"mount -t tmpfs tmpfs /boot && echo CONFIG_RD_GZIP=y > /boot/config-{version} \
                 && mkinitramfs -d conf -o off.img {version}\" > /dev/null 2>&1
             ! lsinitramfs off.img | grep -x usr/bin/pr-helper",
            s = q(s)
        ),
        300,
    );
}

/// Options in a --help text: the `-x`/`--long` tokens that start an option line.
fn help_options(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in help.lines() {
        let t = line.trim_start();
        if !(t.starts_with('-') || t.starts_with("(-")) || line.len() == t.len() {
            continue;
        }
        let spec = t.split("  ").next().unwrap_or("");
        for word in spec.split_whitespace() {
            let w = word.trim_matches(|c| c == '(' || c == ')' || c == ',');
            let w = w.split(['=', '[']).next().unwrap_or("");
            let is_short = w.len() == 2 && w.starts_with('-') && w != "--";
            let is_long = w.starts_with("--") && w.len() > 2;
            if is_short || is_long {
                out.insert(w.to_owned());
            }
        }
    }
    out
}

/// Options a man page lists: the tag line after each `.TP` in OPTIONS.
fn man_options(page: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_options = false;
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        if let Some(section) = line.strip_prefix(".SH ") {
            in_options = section.trim() == "OPTIONS";
            continue;
        }
        if !in_options || line.trim() != ".TP" {
            continue;
        }
        let tag = lines.next().unwrap_or("");
        let plain = tag
            .replace("\\-", "-")
            .replace("\\fB", "")
            .replace("\\fR", "")
            .replace("\\fI", "")
            .replace("\\fP", "")
            .replace('"', " ");
        let plain = plain
            .split_once(' ')
            .map(|(_, rest)| rest)
            .unwrap_or(&plain);
        for word in plain.split_whitespace() {
            let w = word.trim_matches(|c| c == '(' || c == ')' || c == ',' || c == '[' || c == ']');
            let w = w.split('=').next().unwrap_or("");
            let is_short = w.len() == 2 && w.starts_with('-') && w != "--";
            let is_long = w.starts_with("--") && w.len() > 2;
            if is_short || is_long {
                out.insert(w.to_owned());
            }
        }
    }
    out
}

fn help_of(args: &[&str]) -> String {
    let out = Command::new(binary()).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn man_pages_match_help() {
    let man = packaging().join("man");
    let mut pages = vec![
        ("qemu-pr-helper.8", vec!["qemu-pr-helper", "--help"]),
        (
            "qemu-pr-helper-activated.8",
            vec!["qemu-pr-helper-activated", "--help"],
        ),
    ];
    // pr-client.1 is its author's to write; once it exists it is held to the same rule.
    if man.join("pr-client.1").exists() {
        pages.push(("pr-client.1", vec!["pr-client", "--help"]));
    }
    for (page, args) in &pages {
        let text = std::fs::read_to_string(man.join(page)).unwrap();
        let from_help = help_options(&help_of(args));
        let from_man = man_options(&text);
        assert!(from_help.len() >= 8, "{page}: parsed {from_help:?}");
        let missing: Vec<_> = from_help.difference(&from_man).collect();
        let extra: Vec<_> = from_man.difference(&from_help).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{page}: not in the man page {missing:?}; not in --help {extra:?}"
        );
    }
    // pr-helper.1: every applet and every multicall option.
    let text = std::fs::read_to_string(man.join("pr-helper.1")).unwrap();
    for applet in help_of(&["--list"]).lines() {
        assert!(
            text.contains(&format!(".TP\n.B {applet}\n")),
            "pr-helper.1 lacks applet {applet}"
        );
    }
    let from_man = man_options(&text);
    let usage = help_of(&["--help"]);
    for option in ["--list", "--install", "-h", "--help", "-V", "--version"] {
        assert!(from_man.contains(option), "pr-helper.1 lacks {option}");
        let out = Command::new(binary()).arg(option).output().unwrap();
        // --install without DIR is a usage error; the others succeed.
        assert_eq!(out.status.success(), option != "--install", "{option}");
    }
    assert!(usage.contains("--list") && usage.contains("--install"));

    // Every page renders without groff warnings and has a NAME line for whatis.
    ensure_apt("lexgrog", &["man-db"]);
    ensure_apt("groff", &["groff-base"]);
    for entry in std::fs::read_dir(&man).unwrap().flatten() {
        let path = entry.path();
        let out = sh(
            &format!(
                "LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 {p} 2>&1; lexgrog {p}",
                p = q(&path)
            ),
            30,
        );
        assert_eq!(out.lines().count(), 1, "{}: {out}", path.display());
        assert!(out.contains(" - "), "{out}");
    }
}

fn check_tree(root: &Path, files: &[&str], links: &[(&str, &str)]) {
    for f in files {
        let p = root.join(f.trim_start_matches('/'));
        assert!(p.is_file(), "{} missing", p.display());
    }
    for (link, target) in links {
        let p = root.join(link.trim_start_matches('/'));
        assert_eq!(
            std::fs::read_link(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .to_string_lossy(),
            *target,
            "{link}"
        );
        // The link resolves to the binary inside the tree.
        let resolved = std::fs::canonicalize(&p).unwrap();
        assert!(resolved.starts_with(std::fs::canonicalize(root).unwrap()));
        assert!(
            resolved.ends_with("bin/pr-helper"),
            "{}",
            resolved.display()
        );
    }
}

#[test]
fn install_sh_populates_a_destdir() {
    let scratch = Scratch::new("pkg-install");
    let install = packaging().join("install.sh");
    let dest = scratch.path("img");
    for _ in 0..2 {
        // Twice: a rerun replaces what is there.
        sh(
            &format!("{} {} /usr {}", q(&install), q(&dest), q(&binary())),
            60,
        );
    }
    check_tree(
        &dest,
        &[
            "usr/bin/pr-helper",
            "usr/lib/systemd/system/qemu-pr-helper.socket",
            "usr/lib/systemd/system/qemu-pr-helper.service",
            "usr/lib/systemd/system/qemu-pr-helper-activated.socket",
            "usr/lib/systemd/system/qemu-pr-helper-activated@.service",
            "etc/init.d/qemu-pr-helper",
            "etc/conf.d/qemu-pr-helper",
            "usr/share/man/man8/qemu-pr-helper.8",
            "usr/share/man/man8/qemu-pr-helper-activated.8",
            "usr/share/man/man1/pr-helper.1",
            "usr/lib/dracut/modules.d/95pr-helper/module-setup.sh",
            "usr/lib/dracut/modules.d/95pr-helper/pr-helper-start.sh",
            "usr/share/initramfs-tools/hooks/pr-helper",
            "usr/share/initramfs-tools/scripts/init-premount/pr-helper",
        ],
        &[
            ("usr/bin/qemu-pr-helper", "pr-helper"),
            ("usr/bin/qemu-pr-helper-activated", "pr-helper"),
            ("usr/bin/pr-client", "pr-helper"),
        ],
    );
    let out = Command::new(dest.join("usr/bin/qemu-pr-helper"))
        .arg("-V")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("(pr-helper)"));

    // Another prefix, links kept out of bin: paths in units and the init script follow.
    let dest = scratch.path("local");
    std::fs::create_dir_all(dest.join("etc/conf.d")).unwrap();
    std::fs::write(dest.join("etc/conf.d/qemu-pr-helper"), "# mine\n").unwrap();
    sh(
        &format!(
            "PR_HELPER_LINKDIR=/usr/local/libexec/pr-helper {} {} /usr/local {}",
            q(&install),
            q(&dest),
            q(&binary())
        ),
        60,
    );
    check_tree(
        &dest,
        &["usr/local/bin/pr-helper"],
        &[(
            "usr/local/libexec/pr-helper/qemu-pr-helper",
            "../../bin/pr-helper",
        )],
    );
    assert!(!dest.join("usr/local/bin/qemu-pr-helper").exists());
    let units = dest.join("usr/local/lib/systemd/system");
    assert_eq!(
        unit_values(&units.join("qemu-pr-helper.service"), "ExecStart"),
        ["/usr/local/bin/pr-helper qemu-pr-helper"]
    );
    let init = std::fs::read_to_string(dest.join("etc/init.d/qemu-pr-helper")).unwrap();
    assert!(init.contains(": \"${PR_HELPER_BIN:=/usr/local/bin/pr-helper}\""));
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/conf.d/qemu-pr-helper")).unwrap(),
        "# mine\n",
        "conf.d must be kept"
    );
    // Usage errors.
    let out = sh_output(&format!("{} only-one", q(&install)), 10);
    assert_eq!(out.status.code(), Some(2));
    let out = sh_output(&format!("{} {} relative", q(&install), q(&dest)), 10);
    assert_eq!(out.status.code(), Some(2));
}

/// Installs cargo-deb when missing; how long that took, if it had to.
fn ensure_cargo_deb() -> Option<Duration> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if sh_output("cargo deb --version", 30).status.success() {
        return None;
    }
    let start = Instant::now();
    sh("cargo install cargo-deb --locked 2>&1 | tail -3", 900);
    Some(start.elapsed())
}

#[test]
#[ignore = "heavy tier: cargo install cargo-deb and a release build (minutes); tests/run-all.sh runs it"]
fn cargo_deb_builds_a_package_with_the_expected_files() {
    if let Some(took) = ensure_cargo_deb() {
        eprintln!("cargo install cargo-deb took {took:?}");
    }
    let scratch = Scratch::new("pkg-deb");
    let work = scratch.path("src");
    // Built from a copy of the sources, with Cargo.toml's [package.metadata.deb].
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("[package.metadata.deb]"));
    // A persistent target directory inside target/, so a rerun builds incrementally.
    let target = repo().join("target/packaging-deb");
    sh(
        &format!(
            "mkdir -p {w}; cd {repo}; cp -a Cargo.toml Cargo.lock README.md src packaging {w}/
             cd {w}; CARGO_TARGET_DIR={target} cargo deb --output {w}/pr-helper.deb 2>&1 | tail -5
             dpkg-deb -x pr-helper.deb root; dpkg-deb -f pr-helper.deb Package Depends",
            w = q(&work),
            repo = q(&repo()),
            target = q(&target),
        ),
        900,
    );
    let root = work.join("root");
    let files = [
        "usr/bin/pr-helper",
        "lib/systemd/system/qemu-pr-helper.socket",
        "lib/systemd/system/qemu-pr-helper.service",
        "lib/systemd/system/qemu-pr-helper-activated.socket",
        "lib/systemd/system/qemu-pr-helper-activated@.service",
        "usr/share/man/man1/pr-helper.1.gz",
        "usr/share/man/man8/qemu-pr-helper.8pr.gz",
        "usr/share/man/man8/qemu-pr-helper-activated.8.gz",
        "usr/lib/dracut/modules.d/95pr-helper/module-setup.sh",
        "usr/share/initramfs-tools/hooks/pr-helper",
        "usr/share/initramfs-tools/scripts/init-premount/pr-helper",
        "usr/share/doc/pr-helper/copyright",
    ];
    check_tree(
        &root,
        &files,
        &[
            ("usr/bin/pr-client", "pr-helper"),
            (
                "usr/libexec/pr-helper/qemu-pr-helper",
                "../../bin/pr-helper",
            ),
            (
                "usr/libexec/pr-helper/qemu-pr-helper-activated",
                "../../bin/pr-helper",
            ),
        ],
    );
    // Nothing qemu-system-common owns.
    for taken in [
        "usr/bin/qemu-pr-helper",
        "usr/share/man/man8/qemu-pr-helper.8.gz",
    ] {
        assert!(root.join(taken).symlink_metadata().is_err(), "{taken}");
    }
    // The packaged binary runs under its applet names.
    let list = sh(
        &format!(
            "{}/usr/libexec/pr-helper/qemu-pr-helper -V | head -1; {}/usr/bin/pr-helper --list",
            q(&root),
            q(&root)
        ),
        30,
    );
    assert!(list.starts_with("qemu-pr-helper 0.1.0 (pr-helper)") || list.contains("(pr-helper)"));
    assert!(list.contains("qemu-pr-helper-activated"));
    // The units it ships verify (ExecStart names /usr/bin/pr-helper, which it installs),
    // and the 8pr man page is found by man.
    sh(
        &format!(
            "r={r}; cp -an /lib/systemd/system/. $r/lib/systemd/system/
             systemd-analyze verify --man=no --root=$r qemu-pr-helper.socket \
               qemu-pr-helper.service qemu-pr-helper-activated.socket \
               qemu-pr-helper-activated@.service 2>&1 | (! grep .)
             MANWIDTH=80 man -M $r/usr/share/man 8pr qemu-pr-helper | grep -q 'drop-in replacement'",
            r = q(&root)
        ),
        60,
    );
}

/// `cargo deb` packages the shipped artifact, the static musl binary, as it is: no shared
/// library dependency, and the packaged binary is the one packaging/build-static.sh built.
#[test]
#[ignore = "heavy tier: cargo-deb and the static musl build (minutes); tests/run-all.sh runs it"]
fn cargo_deb_packages_the_static_musl_binary() {
    if let Some(took) = ensure_cargo_deb() {
        eprintln!("cargo install cargo-deb took {took:?}");
    }
    ensure_apt("file", &["file"]);
    let scratch = Scratch::new("pkg-deb-static");
    let work = scratch.path("w");
    let out = sh(
        &format!(
            "cd {repo}; packaging/build-static.sh x86_64-unknown-linux-musl 2>/dev/null | tail -1
             mkdir -p {w}
             cargo deb --no-build --no-strip --target x86_64-unknown-linux-musl --output {w}/static.deb 2>&1 | tail -3
             cd {w}; dpkg-deb -x static.deb root
             echo \"depends=[$(dpkg-deb -f static.deb Depends)] arch=$(dpkg-deb -f static.deb Architecture)\"
             file -b root/usr/bin/pr-helper
             cmp root/usr/bin/pr-helper {repo}/target/x86_64-unknown-linux-musl/release/pr-helper && echo same-binary",
            repo = q(&repo()),
            w = q(&work),
        ),
        1800,
    );
    assert!(out.contains("depends=[] arch=amd64"), "{out}");
    assert!(
        out.contains("static-pie linked") || out.contains("statically linked"),
        "{out}"
    );
    assert!(out.contains("same-binary"), "{out}");
}
