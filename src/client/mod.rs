//! The client side of the helper protocol, shared by `pr-client` and the tests: connect,
//! negotiate, send a CDB with its fd, read the reply. Blocking I/O with an optional timeout.
//! The submodules are `pr-client`'s: options, decoding, `--direct`, `probe` and `bench`.

pub mod action;
pub mod args;
pub mod bench;
pub mod cli;
pub mod decode;
pub mod direct;
pub mod probe;
pub mod report;

use std::fmt;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::sockopt::Timeout;
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};

use crate::cli::argbytes::path;
use crate::errors::strerror;
use crate::protocol::{
    self, PR_HELPER_CDB_SIZE, PR_HELPER_FEATURES_SIZE, PR_HELPER_REPLY_HEADER_SIZE, ReplyHeader,
};

/// A client-side failure.
#[derive(Debug)]
pub enum ClientError {
    /// connect(2) to the helper's socket failed.
    Connect(PathBuf, io::Error),
    /// The helper closed the connection (it does so for requests it rejects).
    Closed,
    /// A read or write on the socket failed.
    Io(io::Error),
    /// The helper sent something the protocol does not allow.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(p, e) => {
                write!(f, "cannot connect to {}: {}", path(p), strerror(e))
            }
            ClientError::Closed => write!(f, "the helper closed the connection"),
            ClientError::Io(e) if e.kind() == io::ErrorKind::WouldBlock => {
                write!(f, "the helper did not answer in time")
            }
            ClientError::Io(e) => write!(f, "socket error: {}", strerror(e)),
            ClientError::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<Errno> for ClientError {
    fn from(e: Errno) -> Self {
        ClientError::Io(e.into())
    }
}

/// A reply: header and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub header: ReplyHeader,
    pub payload: Vec<u8>,
}

impl Reply {
    /// The SCSI status byte.
    pub fn status(&self) -> u8 {
        self.header.status as u8
    }
}

/// A negotiated connection to a helper.
#[derive(Debug)]
pub struct Connection {
    sock: OwnedFd,
    /// The feature word the helper offered.
    pub helper_features: u32,
}

impl Connection {
    /// Connects to `path` and negotiates no optional feature, as QEMU does.
    ///
    /// # Errors
    /// Connection or negotiation failures.
    pub fn connect(path: &Path, timeout: Option<Duration>) -> Result<Connection, ClientError> {
        let sock = connect_unix(path, timeout)?;
        let mut offered = [0u8; PR_HELPER_FEATURES_SIZE];
        read_exact(sock.as_fd(), &mut offered)?;
        write_all(sock.as_fd(), &protocol::encode_features(0))?;
        Ok(Connection {
            sock,
            helper_features: u32::from_be_bytes(offered),
        })
    }

    /// The socket, for tests that speak raw bytes after negotiating.
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Sends a request (the CDB with `device` attached, then `params`) and reads the reply.
    ///
    /// # Errors
    /// I/O failures, the helper closing the connection, or a malformed reply.
    pub fn request(
        &mut self,
        cdb: &[u8; PR_HELPER_CDB_SIZE],
        device: BorrowedFd<'_>,
        params: &[u8],
    ) -> Result<Reply, ClientError> {
        send_with_fd(self.sock.as_fd(), cdb, device)?;
        if !params.is_empty() {
            write_all(self.sock.as_fd(), params)?;
        }
        self.read_reply(protocol::PR_HELPER_DATA_SIZE)
    }

    /// Reads one reply whose payload may be at most `max_payload` bytes.
    ///
    /// # Errors
    /// As [`Connection::request`].
    pub fn read_reply(&mut self, max_payload: usize) -> Result<Reply, ClientError> {
        let mut header = [0u8; PR_HELPER_REPLY_HEADER_SIZE];
        read_exact(self.sock.as_fd(), &mut header)?;
        let header = ReplyHeader::decode(&header);
        let size = usize::try_from(header.size)
            .ok()
            .filter(|&s| s <= max_payload)
            .ok_or_else(|| {
                ClientError::Protocol(format!("payload size {} out of range", header.size))
            })?;
        let mut payload = vec![0u8; size];
        read_exact(self.sock.as_fd(), &mut payload)?;
        Ok(Reply { header, payload })
    }
}

/// Connects a stream socket to `path`, with send/receive timeouts when given.
///
/// # Errors
/// socket or connect failures.
pub fn connect_unix(path: &Path, timeout: Option<Duration>) -> Result<OwnedFd, ClientError> {
    let err = |e: Errno| ClientError::Connect(path.to_owned(), e.into());
    let addr = SocketAddrUnix::new(path).map_err(err)?;
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(err)?;
    if timeout.is_some() {
        for which in [Timeout::Recv, Timeout::Send] {
            rustix::net::sockopt::set_socket_timeout(&sock, which, timeout).map_err(err)?;
        }
    }
    rustix::net::connect(&sock, &addr).map_err(err)?;
    Ok(sock)
}

/// Sends `bytes` with `fd` in SCM_RIGHTS on the first fragment.
///
/// # Errors
/// sendmsg failures.
pub fn send_with_fd(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fd: BorrowedFd<'_>,
) -> Result<(), ClientError> {
    let fds = [fd];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    let sent = loop {
        match rustix::net::sendmsg(
            sock,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Err(Errno::INTR) => continue,
            other => break other?,
        }
    };
    write_all(sock, &bytes[sent..])
}

/// Writes all of `bytes`.
///
/// # Errors
/// write failures.
pub fn write_all(sock: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<(), ClientError> {
    while !bytes.is_empty() {
        match rustix::net::send(sock, bytes, SendFlags::NOSIGNAL) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(Errno::PIPE | Errno::CONNRESET) => return Err(ClientError::Closed),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Fills `buf`; EOF before it is full is [`ClientError::Closed`].
///
/// # Errors
/// read failures or EOF.
pub fn read_exact(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(), ClientError> {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(sock, &mut buf[got..]) {
            Ok(0) => return Err(ClientError::Closed),
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(Errno::CONNRESET) => return Err(ClientError::Closed),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Refuses paths that exist but are not sockets, with a clearer reason than connect's
/// "Connection refused"; missing paths are left to connect(2) ("No such file or directory").
///
/// # Errors
/// [`ClientError::Connect`] naming the path.
pub fn check_socket_path(path: &Path) -> Result<(), ClientError> {
    use std::os::unix::fs::FileTypeExt as _;
    match std::fs::metadata(path) {
        Ok(m) if !m.file_type().is_socket() => Err(ClientError::Connect(
            path.to_owned(),
            io::Error::other("not a socket"),
        )),
        _ => Ok(()),
    }
}
