//! multipathd's control socket, as libmpathcmd speaks it: one command per connection, each
//! message a native-endian `size_t` length then that many bytes, the text NUL-terminated.
//! The socket is `/run/multipathd.socket` (since multipath-tools 0.12), then the abstract
//! `@/org/kernel/linux/storage/multipathd`, or only `$MULTIPATH_SOCKET_NAME` when set.
//!
//! multipathd runs as root; an abstract name can be bound by any local user before
//! multipathd binds it, and a reply sets the reservation key the helper registers. So the
//! peer's credentials (SO_PEERCRED) must be uid 0 before any command is sent, else the
//! socket counts as no multipathd (said once, in the -v report of the command that found
//! it). Replies are capped at [`MAX_REPLY_LEN`], far above what multipathd answers to the
//! commands sent here.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

/// The pathname socket, tried first.
pub const PATH_SOCKET: &str = "/run/multipathd.socket";
/// The abstract socket, without its leading `@`.
pub const ABSTRACT_SOCKET: &str = "/org/kernel/linux/storage/multipathd";
/// `DEFAULT_REPLY_TIMEOUT`: libmpathpersist's wait for each send and reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_millis(4000);
/// Longest reply taken (64 KiB); longer ones are refused before anything is allocated.
/// libmpathcmd allows 32 MiB (`MAX_REPLY_LEN`), for `show` commands listing every path;
/// multipathd answers the commands sent here (`getprkey`, `getprhold`, `setprstatus`, ...)
/// with a line (`0x...:aptpl`, `set`, `ok`, `fail`, `permission deny: need to be root`), or
/// with its usage text (a few KiB) when it does not know the command.
pub const MAX_REPLY_LEN: usize = 64 * 1024;
/// The only user multipathd runs as.
const MULTIPATHD_UID: u32 = 0;

/// A way to send multipathd one command and get its reply (the socket, or a fake in tests).
pub trait Multipathd: Sync {
    /// The reply text, without its terminating NUL.
    ///
    /// # Errors
    /// Why there was no reply: connecting, sending or receiving failed.
    fn command(&self, cmd: &str) -> io::Result<String>;
}

/// The request bytes for `cmd`: its length with the NUL, then the text and the NUL.
pub fn encode_request(cmd: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmd.len() + 9);
    out.extend_from_slice(&(cmd.len() + 1).to_ne_bytes());
    out.extend_from_slice(cmd.as_bytes());
    out.push(0);
    out
}

/// A reply's length word, checked as libmpathcmd checks it, with our smaller cap.
///
/// # Errors
/// `EINVAL` for 0 or at least [`MAX_REPLY_LEN`].
pub fn decode_reply_len(word: [u8; size_of::<usize>()]) -> io::Result<usize> {
    let len = usize::from_ne_bytes(word);
    if len == 0 || len >= MAX_REPLY_LEN {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(len)
}

/// A reply body as text: the last byte is taken as the NUL whatever it is, as
/// libmpathcmd forces it, and the text ends at the first NUL.
pub fn decode_reply(mut body: Vec<u8>) -> String {
    body.pop();
    if let Some(nul) = body.iter().position(|&b| b == 0) {
        body.truncate(nul);
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Whether a reply to a set/unset command means success (libmpathpersist: starts with `ok`).
pub fn is_ok(reply: &str) -> bool {
    reply.starts_with("ok")
}

/// A get reply read as libmpathpersist reads `getprhold` and `getprstatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Set,
    Unset,
    Unknown,
}

impl Flag {
    pub fn from_reply(reply: Option<&str>) -> Flag {
        match reply {
            Some(r) if r.starts_with("unset") => Flag::Unset,
            Some(r) if r.starts_with("set") => Flag::Set,
            _ => Flag::Unknown,
        }
    }
}

/// The real socket.
#[derive(Debug, Default, Clone, Copy)]
pub struct Socket;

fn socket_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| match std::env::var("MULTIPATH_SOCKET_NAME") {
        Ok(name) if !name.is_empty() => vec![name],
        _ => vec![PATH_SOCKET.to_owned(), format!("@{ABSTRACT_SOCKET}")],
    })
}

fn connect(name: &str) -> io::Result<OwnedFd> {
    let addr = match name.strip_prefix('@') {
        Some(abstract_name) => SocketAddrUnix::new_abstract_name(abstract_name.as_bytes())?,
        None => SocketAddrUnix::new(name)?,
    };
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::sockopt::set_socket_timeout(
        &fd,
        rustix::net::sockopt::Timeout::Recv,
        Some(REPLY_TIMEOUT),
    )?;
    rustix::net::sockopt::set_socket_timeout(
        &fd,
        rustix::net::sockopt::Timeout::Send,
        Some(REPLY_TIMEOUT),
    )?;
    rustix::net::connect(&fd, &addr)?;
    Ok(fd)
}

fn send_all(fd: &OwnedFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = match rustix::net::send(fd, bytes, SendFlags::NOSIGNAL) {
            Err(Errno::INTR) => continue,
            sent => sent?,
        };
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EPIPE));
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

fn recv_exact(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let n = match rustix::net::recv(fd, &mut buf[got..], RecvFlags::empty()) {
            Err(Errno::INTR) => continue,
            received => received?.0,
        };
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::ECONNRESET));
        }
        got += n;
    }
    Ok(())
}

/// Whether an impostor was reported already (the report says it once per process).
static IMPOSTOR_REPORTED: AtomicBool = AtomicBool::new(false);

/// Why a socket's peer is not multipathd, when it is not: its uid is not root's.
fn check_peer(fd: &OwnedFd, name: &str) -> io::Result<()> {
    let cred = rustix::net::sockopt::socket_peercred(fd)?;
    let uid = cred.uid.as_raw();
    if uid == MULTIPATHD_UID {
        return Ok(());
    }
    if IMPOSTOR_REPORTED.swap(true, Ordering::Relaxed) {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    let pid = cred.pid.as_raw_nonzero();
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "the multipathd socket {name} is served by pid {pid} as uid {uid}, not by root: \
             not multipathd, ignored (said once)"
        ),
    ))
}

/// Sends `cmd` to the first of `names` that accepts a connection from a root peer and gives
/// the reply.
///
/// # Errors
/// The last socket's failure to connect, a peer that is not root (an impostor: the first
/// time with a message naming it, then EPERM), or the failure to send or receive.
pub fn command_at(names: &[String], cmd: &str) -> io::Result<String> {
    let mut last = io::Error::from_raw_os_error(libc::ENOENT);
    let mut connected = None;
    for name in names {
        match connect(name).and_then(|fd| check_peer(&fd, name).map(|()| fd)) {
            Ok(fd) => {
                connected = Some(fd);
                break;
            }
            // An impostor is no multipathd: the next name may be the real one.
            Err(e) if last.kind() == io::ErrorKind::PermissionDenied => drop(e),
            Err(e) => last = e,
        }
    }
    let fd = connected.ok_or(last)?;
    send_all(&fd, &encode_request(cmd))?;
    let mut word = [0u8; size_of::<usize>()];
    recv_exact(&fd, &mut word)?;
    let mut body = vec![0u8; decode_reply_len(word)?];
    recv_exact(&fd, &mut body)?;
    Ok(decode_reply(body))
}

impl Multipathd for Socket {
    fn command(&self, cmd: &str) -> io::Result<String> {
        // The test pause's step is the command's verb (`setprstatus`, `getprkey`, ...).
        super::test_pause(cmd.split(' ').next().unwrap_or_default());
        command_at(socket_names(), cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_framing_is_length_then_text_and_nul() {
        let bytes = encode_request("getprkey map mpatha");
        assert_eq!(&bytes[..8], &20usize.to_ne_bytes());
        assert_eq!(&bytes[8..], b"getprkey map mpatha\0");
    }

    #[test]
    fn reply_framing() {
        assert!(decode_reply_len(0usize.to_ne_bytes()).is_err());
        assert!(decode_reply_len(MAX_REPLY_LEN.to_ne_bytes()).is_err());
        assert_eq!(decode_reply_len(4usize.to_ne_bytes()).unwrap(), 4);
        // What libmpathcmd would take (up to 32 MiB) is refused before any allocation.
        assert!(decode_reply_len((32usize << 20).to_ne_bytes()).is_err());
        assert!(decode_reply_len((MAX_REPLY_LEN - 1).to_ne_bytes()).is_ok());
        assert_eq!(decode_reply(b"ok\n\0".to_vec()), "ok\n");
        // The last byte is the NUL even when the daemon sent something else there.
        assert_eq!(decode_reply(b"okX".to_vec()), "ok");
        assert_eq!(decode_reply(b"set\0junk\0".to_vec()), "set");
        assert_eq!(decode_reply(Vec::new()), "");
    }

    #[test]
    fn reply_meanings() {
        assert!(is_ok("ok\n"));
        assert!(!is_ok("fail\ndevice not found\n"));
        assert_eq!(Flag::from_reply(Some("set\n")), Flag::Set);
        assert_eq!(Flag::from_reply(Some("unset\n")), Flag::Unset);
        assert_eq!(Flag::from_reply(Some("unknown\n")), Flag::Unknown);
        assert_eq!(Flag::from_reply(None), Flag::Unknown);
    }

    #[test]
    fn talks_to_a_socket_server() {
        // A stand-in daemon on a private abstract socket checks the framing end to end.
        let name = format!("pr-helper-test-mpathd-{}", std::process::id());
        let listener = listen_abstract(&name);
        let server = std::thread::spawn(move || {
            let conn = rustix::net::accept(&listener).unwrap();
            let mut word = [0u8; 8];
            recv_exact(&conn, &mut word).unwrap();
            let mut body = vec![0u8; usize::from_ne_bytes(word)];
            recv_exact(&conn, &mut body).unwrap();
            assert_eq!(body, b"getprhold map mpatha\0");
            send_all(&conn, &4usize.to_ne_bytes()).unwrap();
            send_all(&conn, b"set\0").unwrap();
        });
        let fd = connect(&format!("@{name}")).unwrap();
        send_all(&fd, &encode_request("getprhold map mpatha")).unwrap();
        let mut word = [0u8; 8];
        recv_exact(&fd, &mut word).unwrap();
        let mut body = vec![0u8; decode_reply_len(word).unwrap()];
        recv_exact(&fd, &mut body).unwrap();
        assert_eq!(decode_reply(body), "set");
        server.join().unwrap();
    }

    /// A listening socket on a fresh abstract name.
    fn listen_abstract(name: &str) -> OwnedFd {
        let listener = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let addr = SocketAddrUnix::new_abstract_name(name.as_bytes()).unwrap();
        rustix::net::bind(&listener, &addr).unwrap();
        rustix::net::listen(&listener, 1).unwrap();
        listener
    }

    /// Serves one command with `reply`; nothing when the client hangs up first.
    fn serve_one(listener: &OwnedFd, reply: &[u8]) {
        let conn = rustix::net::accept(listener).unwrap();
        let mut word = [0u8; 8];
        if recv_exact(&conn, &mut word).is_err() {
            return;
        }
        let mut body = vec![0u8; usize::from_ne_bytes(word).min(4096)];
        if recv_exact(&conn, &mut body).is_err() {
            return;
        }
        let _ = send_all(&conn, &reply.len().to_ne_bytes());
        let _ = send_all(&conn, reply);
    }

    /// The impostor's abstract name, in the environment of the process that plays it.
    const IMPOSTOR_ENV: &str = "PR_HELPER_TEST_MPATHD_IMPOSTOR";
    const IMPOSTOR_READY: &str = "IMPOSTOR-LISTENING";

    /// The impostor, in a child run of [`an_unprivileged_impostor_is_refused`] (this test
    /// binary again, under another user): listens on the name it is given and answers one
    /// command with a key.
    fn play_impostor(name: &str) {
        let listener = listen_abstract(name);
        println!("{IMPOSTOR_READY}");
        serve_one(&listener, b"0xdeadbeef\n\0");
    }

    /// Starts [`play_impostor`] on abstract name `name`, as nobody when this process is
    /// root (otherwise as this user, who is not root either), and waits until it listens.
    fn start_impostor(name: &str) -> Impostor {
        use std::io::BufRead as _;
        use std::os::unix::process::CommandExt as _;
        let root = rustix::process::getuid().is_root();
        // As nobody, this binary may be out of reach (a clone in root's 0700 home): a copy in
        // a directory anyone can enter is run instead.
        let copy = root.then(|| copy_for_anyone(&std::env::current_exe().unwrap()));
        let exe = copy.as_ref().map_or_else(
            || std::env::current_exe().unwrap(),
            |dir| dir.join("impostor"),
        );
        let mut cmd = std::process::Command::new(exe);
        cmd.args(["--exact", "--nocapture", "--test-threads=1"])
            .arg("backend::multipath::multipathd::tests::an_unprivileged_impostor_is_refused")
            .env(IMPOSTOR_ENV, name)
            .stdout(std::process::Stdio::piped());
        if cfg!(panic = "abort") {
            cmd.args(["-Z", "unstable-options", "--force-run-in-process"])
                .env("RUSTC_BOOTSTRAP", "1");
        }
        if root {
            cmd.uid(65534).gid(65534);
        }
        let mut child = cmd.spawn().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains(IMPOSTOR_READY) {
            line.clear();
            let n = out.read_line(&mut line).unwrap();
            assert_ne!(n, 0, "the impostor ended before listening");
        }
        Impostor { child, out, copy }
    }

    /// A directory (mode 0755, in the temporary directory) holding `exe` as `impostor`.
    fn copy_for_anyone(exe: &std::path::Path) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("pr-helper-impostor.{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.join("impostor");
        std::fs::copy(exe, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    struct Impostor {
        child: std::process::Child,
        out: std::io::BufReader<std::process::ChildStdout>,
        /// The directory of the binary's copy, removed with the impostor.
        copy: Option<std::path::PathBuf>,
    }

    impl Drop for Impostor {
        fn drop(&mut self) {
            if let Some(dir) = &self.copy {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    impl Impostor {
        /// Whether it ended well (its output read to the end: it writes its test summary).
        fn succeeded(mut self) -> bool {
            use std::io::Read as _;
            let mut rest = Vec::new();
            let _ = self.out.read_to_end(&mut rest);
            self.child.wait().unwrap().success()
        }
    }

    #[test]
    fn an_unprivileged_impostor_is_refused() {
        if let Ok(name) = std::env::var(IMPOSTOR_ENV) {
            play_impostor(&name);
            return;
        }
        let name = format!("pr-helper-test-impostor-{}", std::process::id());
        let impostor = start_impostor(&name);
        // It would answer key 0xdeadbeef: no command reaches it.
        let refused = command_at(&[format!("@{name}")], "getprkey map mpatha").unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
        let message = refused.to_string();
        assert!(message.contains("not by root"), "{message}");
        assert!(message.contains(&format!("@{name}")), "{message}");
        assert!(impostor.succeeded());
        // Said once: a second impostor is refused with a bare EPERM.
        let impostor = start_impostor(&name);
        let refused = command_at(&[format!("@{name}")], "getprkey map mpatha").unwrap_err();
        assert_eq!(refused.raw_os_error(), Some(libc::EPERM));
        assert!(impostor.succeeded());
    }

    #[test]
    fn a_root_multipathd_is_trusted() {
        if !rustix::process::getuid().is_root() {
            // This process plays multipathd: only root can.
            return;
        }
        let name = format!("pr-helper-test-root-mpathd-{}", std::process::id());
        let listener = listen_abstract(&name);
        std::thread::scope(|s| {
            s.spawn(|| serve_one(&listener, b"0x1234\n\0"));
            let reply = command_at(&[format!("@{name}")], "getprkey map mpatha").unwrap();
            assert_eq!(reply, "0x1234\n");
        });
    }
}
