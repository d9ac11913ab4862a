//! The listening socket: bound by us (appearing at its path only once it accepts), or
//! inherited from systemd socket activation.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use super::Error;
use crate::sys;

/// Longest path `sun_path` holds with its terminating NUL.
pub const UNIX_PATH_MAX: usize = 108;

/// What systemd passed: a listening socket (`Accept=no`) or one connection (`Accept=yes`).
#[derive(Debug)]
pub enum Inherited {
    Listener(Listener),
    Connection(OwnedFd),
}

/// A listening socket and what to clean up when it closes.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    /// Where the socket lives once published, and its inode, for the unlink at exit.
    published: Option<Published>,
    /// The temporary name it was bound under, until published.
    staging: Option<PathBuf>,
}

#[derive(Debug)]
struct Published {
    path: PathBuf,
    ino: u64,
    dev: u64,
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Listener {
    /// Binds and listens on a temporary name next to `path`; [`Listener::publish`] renames it
    /// into place. libvirt connects as soon as the path exists, so it must only ever name a
    /// socket that already accepts.
    ///
    /// # Errors
    /// Path too long, socket, bind or listen failures, with the C helper's wording.
    pub fn bind(path: &Path) -> Result<Listener, Error> {
        if path.as_os_str().len() >= UNIX_PATH_MAX {
            return Err(Error::SocketPathTooLong(path.to_owned()));
        }
        let staging = staging_name(path);
        let addr =
            SocketAddrUnix::new(&staging).map_err(|e| Error::Bind(path.to_owned(), e.into()))?;
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .map_err(|e| Error::Socket(e.into()))?;
        // A stale staging socket from a killed instance with our pid would make bind fail.
        let _ = rustix::fs::unlink(&staging);
        rustix::net::bind(&fd, &addr).map_err(|e| Error::Bind(path.to_owned(), e.into()))?;
        // From here on the value owns the staging name: any failure removes it (Drop).
        let listener = Listener {
            fd,
            published: Some(Published {
                path: path.to_owned(),
                ino: 0,
                dev: 0,
            }),
            staging: Some(staging),
        };
        rustix::net::listen(&listener.fd, libc::SOMAXCONN).map_err(|e| Error::Listen(e.into()))?;
        Ok(listener)
    }

    /// Renames the bound socket to its final path, replacing any stale file there (the C
    /// helper unlinks it before binding), and remembers its inode for the unlink at exit.
    ///
    /// # Errors
    /// The rename failed.
    pub fn publish(&mut self) -> Result<(), Error> {
        let (Some(staging), Some(published)) = (self.staging.take(), self.published.as_mut())
        else {
            return Ok(());
        };
        if let Err(e) = rustix::fs::rename(&staging, &published.path) {
            let _ = rustix::fs::unlink(&staging);
            // Not published: nothing of ours at the path to remove later.
            self.published = None;
            return Err(Error::Publish(staging, e.into()));
        }
        match rustix::fs::stat(&published.path) {
            Ok(st) => {
                published.ino = st.st_ino;
                published.dev = st.st_dev;
            }
            // Renamed but not found: someone else's file may appear there; leave it alone.
            Err(e) => {
                let path = published.path.clone();
                self.published = None;
                return Err(Error::Publish(path, e.into()));
            }
        }
        Ok(())
    }

    /// Adopts the socket systemd passed as fd `3 + index`; systemd owns its path, so nothing
    /// is unlinked. A connected socket (`Accept=yes`) comes back as
    /// [`Inherited::Connection`], to be served as one connection.
    ///
    /// # Errors
    /// The descriptor is not open.
    pub fn inherited(index: u32) -> Result<Inherited, Error> {
        let fd = sys::adopt_inherited_fd(sys::SD_LISTEN_FDS_START + index as i32)
            .map_err(Error::Activation)?;
        // The event loop needs it non-blocking, listening or not.
        let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| Error::Activation(e.into()))?;
        rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)
            .map_err(|e| Error::Activation(e.into()))?;
        let listening = rustix::net::sockopt::socket_acceptconn(&fd).unwrap_or(true);
        Ok(if listening {
            Inherited::Listener(Listener {
                fd,
                published: None,
                staging: None,
            })
        } else {
            Inherited::Connection(fd)
        })
    }

    /// The path clients connect to, when we bound it.
    pub fn path(&self) -> Option<&Path> {
        self.published.as_ref().map(|p| p.path.as_path())
    }

    /// Closes the socket and removes its path, if it still names our socket.
    ///
    /// Returns the unlink error to report, as C prints "Failed to unlink socket".
    pub fn close(mut self) -> Option<(PathBuf, std::io::Error)> {
        self.remove_paths()
    }

    /// Removes the staging name and the published path (when it is still our socket: the
    /// same inode), whichever exist; the unlink error of the published path, if any.
    fn remove_paths(&mut self) -> Option<(PathBuf, std::io::Error)> {
        if let Some(staging) = self.staging.take() {
            let _ = rustix::fs::unlink(&staging);
        }
        let published = self.published.take()?;
        if published.ino == 0 {
            // Never renamed into place: the path is not ours.
            return None;
        }
        match rustix::fs::stat(&published.path) {
            Ok(st) if st.st_ino != published.ino || st.st_dev != published.dev => None,
            Err(rustix::io::Errno::NOENT) => None,
            _ => match rustix::fs::unlink(&published.path) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => None,
                Err(e) => Some((published.path, e.into())),
            },
        }
    }
}

impl Drop for Listener {
    /// Whatever way start-up or serving ends (an error returned from any step, the event
    /// loop's end), no path we created outlives the socket: a path that exists is a socket
    /// that accepts. [`Listener::close`] is the same with the error reported.
    fn drop(&mut self) {
        let _ = self.remove_paths();
    }
}

/// A hidden name in the same directory, so that rename(2) stays atomic:
/// `.NAME.PID` (or `.prh-PID` when that would not fit `sun_path`). `ss -xl` keeps showing this
/// name, the address the socket was bound to.
fn staging_name(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let pid = rustix::process::getpid().as_raw_nonzero().to_string();
    let mut descriptive = OsString::from(".");
    descriptive.push(path.file_name().unwrap_or_default());
    descriptive.push(".");
    descriptive.push(&pid);
    let mut short = OsString::from(".prh-");
    short.push(&pid);
    [dir.join(descriptive), dir.join(short)]
        .into_iter()
        .find(|candidate| candidate.as_os_str().as_bytes().len() < UNIX_PATH_MAX)
        .unwrap_or_else(|| path.to_owned())
}

/// systemd socket activation, by the rules of QEMU's `check_socket_activation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// Not activated: bind the path.
    None,
    /// `n` descriptors from fd 3 on, with their LISTEN_FDNAMES names when given.
    Fds(u32, Vec<String>),
}

/// Reads LISTEN_PID/LISTEN_FDS; when they are for this process, unsets them and marks the
/// passed descriptors close-on-exec, as QEMU does. LISTEN_FDS=0 means not activated.
///
/// # Errors
/// A passed descriptor that is not open.
pub fn check_socket_activation() -> Result<Activation, Error> {
    fn number<T: std::str::FromStr>(name: &str) -> Option<T> {
        std::env::var(name).ok()?.parse().ok()
    }
    let ours = rustix::process::getpid().as_raw_nonzero().get();
    if number::<i32>("LISTEN_PID") != Some(ours) {
        return Ok(Activation::None);
    }
    let Some(nfds) = number::<u32>("LISTEN_FDS") else {
        return Ok(Activation::None);
    };
    let names = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(String::from).collect())
        .unwrap_or_default();
    for name in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        sys::remove_env_single_threaded(name);
    }
    for i in 0..nfds {
        let fd = sys::SD_LISTEN_FDS_START + i as i32;
        sys::set_cloexec_by_number(fd).map_err(|e| Error::ActivationFd(fd, e))?;
    }
    Ok(if nfds == 0 {
        Activation::None
    } else {
        Activation::Fds(nfds, names)
    })
}

/// Opens `/dev/null` for the daemon's standard streams.
pub fn open_dev_null() -> std::io::Result<OwnedFd> {
    rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).map_err(Into::into)
}
