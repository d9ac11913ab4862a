//! multipathd's control socket, as libmpathcmd speaks it: one command per connection, each
//! message a native-endian `size_t` length then that many bytes, the text NUL-terminated.
//! The socket is `/run/multipathd.socket` (since multipath-tools 0.12), then the abstract
//! `@/org/kernel/linux/storage/multipathd`, or only `$MULTIPATH_SOCKET_NAME` when set.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use std::time::Duration;

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

/// The pathname socket, tried first.
pub const PATH_SOCKET: &str = "/run/multipathd.socket";
/// The abstract socket, without its leading `@`.
pub const ABSTRACT_SOCKET: &str = "/org/kernel/linux/storage/multipathd";
/// `DEFAULT_REPLY_TIMEOUT`: libmpathpersist's wait for each send and reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_millis(4000);
/// `MAX_REPLY_LEN`: longer replies are refused.
pub const MAX_REPLY_LEN: usize = 32 * 1024 * 1024;

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

/// A reply's length word, checked as libmpathcmd checks it.
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
        let n = rustix::net::send(fd, bytes, SendFlags::NOSIGNAL)?;
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
        let (n, _) = rustix::net::recv(fd, &mut buf[got..], RecvFlags::empty())?;
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::ECONNRESET));
        }
        got += n;
    }
    Ok(())
}

impl Multipathd for Socket {
    fn command(&self, cmd: &str) -> io::Result<String> {
        let mut last = io::Error::from_raw_os_error(libc::ENOENT);
        let mut connected = None;
        for name in socket_names() {
            match connect(name) {
                Ok(fd) => {
                    connected = Some(fd);
                    break;
                }
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
}
