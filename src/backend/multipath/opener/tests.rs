//! The opener's checks with a fake device-mapper and sysfs, and its protocol over a real
//! socketpair (SCM_RIGHTS), served on a thread.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use super::*;

fn dev(major: u32, minor: u32) -> DevNum {
    DevNum { major, minor }
}

fn inode(fd: BorrowedFd<'_>) -> u64 {
    rustix::fs::fstat(fd).unwrap().st_ino as u64
}

fn open(path: &str) -> OwnedFd {
    std::fs::File::open(path).unwrap().into()
}

/// Real descriptors stand for devices: the fake's "device number" of a descriptor comes
/// from its inode (/dev/null is the map, /dev/zero path 8:0, /dev/full another device).
struct Fake {
    devices: HashMap<u64, DevNum>,
    uuid: String,
    targets: Vec<(String, String)>,
    names: HashMap<DevNum, String>,
    nodes: HashMap<String, &'static str>,
    opened: Mutex<Vec<String>>,
}

const MAP: DevNum = DevNum {
    major: 253,
    minor: 3,
};
const TABLE: &str = "0 0 1 1 service-time 0 2 1 8:0 1 8:16 1";

impl Fake {
    fn new() -> Fake {
        let mut devices = HashMap::new();
        devices.insert(inode(open("/dev/null").as_fd()), MAP);
        devices.insert(inode(open("/dev/zero").as_fd()), dev(8, 0));
        devices.insert(inode(open("/dev/full").as_fd()), dev(8, 99));
        Fake {
            devices,
            uuid: "mpath-36001405abc".into(),
            targets: vec![("multipath".into(), TABLE.into())],
            names: HashMap::from([(dev(8, 0), "sda".into()), (dev(8, 16), "sdb".into())]),
            nodes: HashMap::from([
                ("/dev/sda".into(), "/dev/zero"),
                ("/dev/sdb".into(), "/dev/full"),
            ]),
            opened: Mutex::new(Vec::new()),
        }
    }
}

impl System for Fake {
    fn block_rdev(&self, fd: BorrowedFd<'_>) -> Option<DevNum> {
        self.devices.get(&inode(fd)).copied()
    }
    fn table(&self, map: DevNum) -> io::Result<(String, Vec<(String, String)>)> {
        if map != MAP {
            return Err(io::Error::from_raw_os_error(libc::ENXIO));
        }
        Ok((self.uuid.clone(), self.targets.clone()))
    }
    fn kernel_name(&self, dev: DevNum) -> Option<String> {
        self.names.get(&dev).cloned()
    }
    fn open_read_only(&self, node: &str) -> io::Result<OwnedFd> {
        self.opened.lock().unwrap().push(node.to_owned());
        let real = self
            .nodes
            .get(node)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EACCES))?;
        Ok(open(real))
    }
}

fn req(path: DevNum) -> OpenRequest {
    OpenRequest { map: MAP, path }
}

fn errno_of(r: Result<OwnedFd, Refusal>) -> i32 {
    r.err().map_or(0, |r| r.errno)
}

/// The errno of a request for `path` with the map's descriptor (0: opened).
fn refused(fake: &Fake, path: DevNum) -> i32 {
    errno_of(check_and_open(fake, req(path), open("/dev/null").as_fd()))
}

/// A fake changed by `change`.
fn fake_with(change: impl FnOnce(&mut Fake)) -> Fake {
    let mut fake = Fake::new();
    change(&mut fake);
    fake
}

#[test]
fn request_wire_form() {
    let r = OpenRequest {
        map: dev(253, 3),
        path: dev(8, 16),
    };
    let b = r.encode();
    assert_eq!(&b[..4], b"PRO1");
    assert_eq!(OpenRequest::decode(&b), Some(r));
    assert_eq!(OpenRequest::decode(&b[..19]), None);
    let mut longer = b.to_vec();
    longer.push(0);
    assert_eq!(OpenRequest::decode(&longer), None);
    let mut bad = b;
    bad[0] = b'X';
    assert_eq!(OpenRequest::decode(&bad), None);
}

#[test]
fn reply_wire_form() {
    assert_eq!(decode_reply(&encode_reply(&Ok(()))), Ok(()));
    let refusal = refuse(libc::EPERM, "8:32 is not a path of map 253:3");
    assert_eq!(
        decode_reply(&encode_reply(&Err(refusal.clone()))),
        Err(refusal)
    );
    assert_eq!(decode_reply(&[0, 0]).unwrap_err().errno, libc::EPROTO);
    // A long message is clipped to what the daemon reads.
    let long = refuse(libc::EIO, "x".repeat(2000));
    assert_eq!(encode_reply(&Err(long)).len(), MAX_REPLY);
}

#[test]
fn a_path_of_the_map_is_opened() {
    let fake = Fake::new();
    let map_fd = open("/dev/null");
    let fd = check_and_open(&fake, req(dev(8, 0)), map_fd.as_fd()).unwrap();
    assert_eq!(inode(fd.as_fd()), inode(open("/dev/zero").as_fd()));
    assert_eq!(*fake.opened.lock().unwrap(), ["/dev/sda"]);
}

#[test]
fn only_paths_of_the_map_passed_are_opened() {
    let fake = Fake::new();
    let map_fd = open("/dev/null");
    // Not in the table: nothing is opened.
    assert_eq!(refused(&fake, dev(8, 32)), libc::EPERM);
    // The descriptor is not the map the request names.
    let r = check_and_open(&fake, req(dev(8, 0)), open("/dev/zero").as_fd());
    assert_eq!(errno_of(r), libc::EBADF);
    let other_map = OpenRequest {
        map: dev(253, 4),
        path: dev(8, 0),
    };
    let r = check_and_open(&fake, other_map, map_fd.as_fd());
    assert_eq!(errno_of(r), libc::EBADF);
    // A regular file or a character device is no map.
    let r = check_and_open(&fake, req(dev(8, 0)), open("/proc/self/status").as_fd());
    assert_eq!(errno_of(r), libc::EBADF);
    assert!(fake.opened.lock().unwrap().is_empty());
}

#[test]
fn only_multipathd_maps_with_one_multipath_target() {
    type Change = fn(&mut Fake);
    let cases: [(&str, Change); 4] = [
        ("not multipathd's uuid", |f| f.uuid = "LVM-abc".into()),
        ("a linear target", |f| {
            f.targets = vec![("linear".into(), "8:0 0".into())]
        }),
        ("two targets", |f| {
            f.targets.push(("multipath".into(), TABLE.into()))
        }),
        ("a table cut short", |f| {
            f.targets = vec![("multipath".into(), "0 0 1 1 service-time 0 2".into())]
        }),
    ];
    for (case, change) in cases {
        let fake = fake_with(change);
        assert_eq!(refused(&fake, dev(8, 0)), libc::EPERM, "{case}");
        assert!(fake.opened.lock().unwrap().is_empty(), "{case}");
    }
}

#[test]
fn the_node_must_be_the_path() {
    // /dev/sdb is, in this fake, another device than 8:16.
    assert_eq!(refused(&Fake::new(), dev(8, 16)), libc::ENXIO);
    // No name in sysfs, or a name that is not a plain node name.
    let fake = fake_with(|f| drop(f.names.remove(&dev(8, 0))));
    assert_eq!(refused(&fake, dev(8, 0)), libc::ENOENT);
    for name in ["../etc/shadow", "", ".", "..", "a/b"] {
        let fake = fake_with(|f| drop(f.names.insert(dev(8, 0), name.into())));
        assert_eq!(refused(&fake, dev(8, 0)), libc::EINVAL, "{name}");
        assert!(fake.opened.lock().unwrap().is_empty());
    }
    // The open's own errno comes back with the node named.
    let fake = fake_with(|f| f.nodes.clear());
    let map_fd = open("/dev/null");
    let r = check_and_open(&fake, req(dev(8, 0)), map_fd.as_fd()).unwrap_err();
    assert_eq!(r.errno, libc::EACCES);
    assert!(r.message.contains("/dev/sda"), "{}", r.message);
}

fn pair() -> (OwnedFd, OwnedFd) {
    seqpacket_pair().unwrap()
}

#[test]
fn requests_and_descriptors_over_the_socket() {
    let (daemon_end, opener_end) = pair();
    let fake = Fake::new();
    std::thread::scope(|s| {
        let server = s.spawn(|| serve(opener_end.as_fd(), &fake));
        let opener = Opener::new(daemon_end, None, ANSWER_TIMEOUT).unwrap();
        let map_fd = open("/dev/null");
        // Several threads at once, each getting its own answer.
        std::thread::scope(|t| {
            for _ in 0..8 {
                t.spawn(|| {
                    let fd = opener.open(map_fd.as_fd(), req(dev(8, 0))).unwrap();
                    assert_eq!(inode(fd.as_fd()), inode(open("/dev/zero").as_fd()));
                    let refused = opener.open(map_fd.as_fd(), req(dev(8, 32))).unwrap_err();
                    assert_eq!(refused.errno, libc::EPERM);
                    assert!(refused.message.contains("8:32"), "{}", refused.message);
                });
            }
        });
        // A malformed message with a reply socket is answered EINVAL.
        let (mine, theirs) = pair();
        let fds = [map_fd.as_fd(), theirs.as_fd()];
        send_with_fds(opener.sock.as_fd(), b"hello", &fds).unwrap();
        drop(theirs);
        let mut buf = [0u8; 64];
        let n = rustix::net::recv(&mine, &mut buf, rustix::net::RecvFlags::empty())
            .unwrap()
            .0;
        assert_eq!(decode_reply(&buf[..n]).unwrap_err().errno, libc::EINVAL);
        // The daemon's end closed: the opener's loop ends.
        drop(opener);
        server.join().unwrap();
    });
}

#[test]
fn an_opener_gone_is_reported() {
    let (daemon_end, opener_end) = pair();
    drop(opener_end);
    let opener = Opener::new(daemon_end, Some(4321), ANSWER_TIMEOUT).unwrap();
    let r = opener
        .open(open("/dev/null").as_fd(), req(dev(8, 0)))
        .unwrap_err();
    assert_eq!(r.errno, libc::EPIPE);
    assert!(
        r.message.contains("path opener (pid 4321) has exited"),
        "{}",
        r.message
    );
}

/// Receives one request on `sock` and hands back its descriptors unanswered.
fn take_request(sock: BorrowedFd<'_>) -> Vec<OwnedFd> {
    match receive(sock).unwrap() {
        Incoming::Request { req, fds } => {
            assert!(req.is_some());
            fds
        }
        Incoming::Eof => panic!("no request came"),
    }
}

/// Waits until `opener`'s other end is closed for good. Another test's fork may hold a copy
/// of it until its exec (CLOEXEC closes it only then): a request sent meanwhile is taken by
/// nobody, and fails with "ended without answering" instead of "has exited" (seen once in 20
/// runs of the fast tier under stress-ng). Dead means its end reads EOF.
fn wait_until_exited(opener: &Opener) {
    let start = std::time::Instant::now();
    while !opener.exited() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the opener's end never closed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_opener_that_never_answers_fails_the_request_at_the_deadline() {
    let (daemon_end, opener_end) = pair();
    let deadline = Duration::from_millis(300);
    let opener = Opener::new(daemon_end, Some(4321), deadline).unwrap();
    std::thread::scope(|s| {
        // The opener takes the request and keeps its reply socket open, as an open that
        // hangs on a dead path does.
        let stuck = s.spawn(|| take_request(opener_end.as_fd()));
        let r = opener
            .open(open("/dev/null").as_fd(), req(dev(8, 0)))
            .unwrap_err();
        assert_eq!(r.errno, libc::ETIMEDOUT);
        assert!(
            r.message.contains("did not answer within 0.3 s"),
            "{}",
            r.message
        );
        assert!(r.message.contains("8:0"), "{}", r.message);
        drop(stuck.join().unwrap());
    });
}

#[test]
fn an_opener_killed_during_a_request_is_a_clear_error() {
    let (daemon_end, opener_end) = pair();
    let opener = Opener::new(daemon_end, Some(4321), ANSWER_TIMEOUT).unwrap();
    std::thread::scope(|s| {
        // The opener dies with the request taken: its descriptors close, its socket too.
        s.spawn(move || drop(take_request(opener_end.as_fd())));
        let r = opener
            .open(open("/dev/null").as_fd(), req(dev(8, 0)))
            .unwrap_err();
        assert_eq!(r.errno, libc::EPIPE);
        assert!(
            r.message.contains("ended without answering"),
            "{}",
            r.message
        );
    });
    // And every later request at once.
    wait_until_exited(&opener);
    let r = opener
        .open(open("/dev/null").as_fd(), req(dev(8, 0)))
        .unwrap_err();
    assert!(r.message.contains("has exited"), "{}", r.message);
}

#[test]
fn paths_are_opened_nonblocking_and_handed_over_blocking() {
    let fd = open_path_node("/dev/zero").unwrap();
    assert!(
        rustix::fs::fcntl_getfl(&fd)
            .unwrap()
            .contains(OFlags::NONBLOCK)
    );
    // The real system's open, as the opener does it.
    let fd = RealSystem.open_read_only("/dev/zero").unwrap();
    assert!(
        rustix::fs::fcntl_getfl(&fd)
            .unwrap()
            .contains(OFlags::NONBLOCK)
    );
    // Through the socket, the daemon gets it without O_NONBLOCK.
    struct NonBlocking(Fake);
    impl System for NonBlocking {
        fn block_rdev(&self, fd: BorrowedFd<'_>) -> Option<DevNum> {
            self.0.block_rdev(fd)
        }
        fn table(&self, map: DevNum) -> io::Result<(String, Vec<(String, String)>)> {
            self.0.table(map)
        }
        fn kernel_name(&self, dev: DevNum) -> Option<String> {
            self.0.kernel_name(dev)
        }
        fn open_read_only(&self, node: &str) -> io::Result<OwnedFd> {
            let real = self.0.nodes[node];
            Ok(open_path_node(real)?)
        }
    }
    let (daemon_end, opener_end) = pair();
    let fake = NonBlocking(Fake::new());
    std::thread::scope(|s| {
        let server = s.spawn(|| serve(opener_end.as_fd(), &fake));
        let opener = Opener::new(daemon_end, None, ANSWER_TIMEOUT).unwrap();
        let fd = opener
            .open(open("/dev/null").as_fd(), req(dev(8, 0)))
            .unwrap();
        assert_eq!(inode(fd.as_fd()), inode(open("/dev/zero").as_fd()));
        assert!(
            !rustix::fs::fcntl_getfl(&fd)
                .unwrap()
                .contains(OFlags::NONBLOCK)
        );
        drop(opener);
        server.join().unwrap();
    });
}

/// The opener in use serves, dies during a request (the request goes to the standby, which
/// answers it), then the standby dies too: the next request fails at once, saying so.
#[test]
fn a_standby_takes_over_once_the_opener_has_exited() {
    let (primary_end, primary_opener_end) = pair();
    let (standby_end, standby_opener_end) = pair();
    let primary = Opener::new(primary_end, Some(1111), ANSWER_TIMEOUT).unwrap();
    let standby = Opener::new(standby_end, Some(2222), ANSWER_TIMEOUT).unwrap();
    let openers = Openers::new(vec![primary, standby], None);
    // A request that never comes fails the test instead of hanging it.
    for end in [&primary_opener_end, &standby_opener_end] {
        let wait = Some(Duration::from_secs(10));
        rustix::net::sockopt::set_socket_timeout(end, rustix::net::sockopt::Timeout::Recv, wait)
            .unwrap();
    }
    let fake = Fake::new();
    let map_fd = open("/dev/null");
    let serve_one = |sock: BorrowedFd<'_>| {
        let fds = take_request(sock);
        let [map, reply] = <[OwnedFd; 2]>::try_from(fds).unwrap();
        handle(&fake, Some(req(dev(8, 0))), map, reply);
    };
    let zero = inode(open("/dev/zero").as_fd());
    std::thread::scope(|s| {
        s.spawn(|| {
            serve_one(primary_opener_end.as_fd());
            // Killed with the next request taken: its socket closes, then the request's.
            let fds = take_request(primary_opener_end.as_fd());
            drop(primary_opener_end);
            drop(fds);
        });
        s.spawn(|| {
            serve_one(standby_opener_end.as_fd());
            drop(standby_opener_end);
        });
        for _ in 0..2 {
            let fd = PathOpener::open(&openers, map_fd.as_fd(), req(dev(8, 0))).unwrap();
            assert_eq!(inode(fd.as_fd()), zero);
        }
    });
    assert_eq!(openers.current.load(Ordering::Acquire), 1);
    wait_until_exited(&openers.openers[1]);
    let r = PathOpener::open(&openers, map_fd.as_fd(), req(dev(8, 0))).unwrap_err();
    assert_eq!(r.errno, libc::EPIPE);
    assert!(
        r.message.contains("path opener (pid 2222) has exited"),
        "{}",
        r.message
    );
}
