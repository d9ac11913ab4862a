//! Small helpers for messages a sysadmin reads: errno text without Rust's "(os error N)".
//!
//! The text is glibc's, whatever C library the binary is linked with. The C helper prints
//! glibc's `strerror` wording, and musl's differs for 73 of 133 errno values ("Not a tty" for
//! "Inappropriate ioctl for device", "I/O error" for "Input/output error", ...), so a static
//! musl build would otherwise say things the C helper never says, and that sysadmins and
//! scripts do not expect.

use std::borrow::Cow;
use std::io;

/// The `strerror` text glibc gives for an I/O error ("No such file or directory"); errors that
/// carry no errno print as they are.
pub fn strerror(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(errno) => strerror_errno(errno).into_owned(),
        None => err.to_string(),
    }
}

/// glibc's `strerror` text for an errno value; "Unknown error N" as glibc says it for values
/// it has no text for.
pub fn strerror_errno(errno: i32) -> Cow<'static, str> {
    if errno == 0 {
        return Cow::Borrowed("Success");
    }
    match GLIBC_STRERROR.iter().find(|(value, _)| *value == errno) {
        Some((_, text)) => Cow::Borrowed(text),
        None => Cow::Owned(format!("Unknown error {errno}")),
    }
}

/// glibc 2.36's messages (`_sys_errlist_internal`), by the errno names of the target's Linux ABI,
/// so the numbers are right on every architecture. Aliases (EWOULDBLOCK, EDEADLOCK, ENOTSUP)
/// have the value of the name listed.
const GLIBC_STRERROR: &[(i32, &str)] = &[
    (libc::EPERM, "Operation not permitted"),
    (libc::ENOENT, "No such file or directory"),
    (libc::ESRCH, "No such process"),
    (libc::EINTR, "Interrupted system call"),
    (libc::EIO, "Input/output error"),
    (libc::ENXIO, "No such device or address"),
    (libc::E2BIG, "Argument list too long"),
    (libc::ENOEXEC, "Exec format error"),
    (libc::EBADF, "Bad file descriptor"),
    (libc::ECHILD, "No child processes"),
    (libc::EAGAIN, "Resource temporarily unavailable"),
    (libc::ENOMEM, "Cannot allocate memory"),
    (libc::EACCES, "Permission denied"),
    (libc::EFAULT, "Bad address"),
    (libc::ENOTBLK, "Block device required"),
    (libc::EBUSY, "Device or resource busy"),
    (libc::EEXIST, "File exists"),
    (libc::EXDEV, "Invalid cross-device link"),
    (libc::ENODEV, "No such device"),
    (libc::ENOTDIR, "Not a directory"),
    (libc::EISDIR, "Is a directory"),
    (libc::EINVAL, "Invalid argument"),
    (libc::ENFILE, "Too many open files in system"),
    (libc::EMFILE, "Too many open files"),
    (libc::ENOTTY, "Inappropriate ioctl for device"),
    (libc::ETXTBSY, "Text file busy"),
    (libc::EFBIG, "File too large"),
    (libc::ENOSPC, "No space left on device"),
    (libc::ESPIPE, "Illegal seek"),
    (libc::EROFS, "Read-only file system"),
    (libc::EMLINK, "Too many links"),
    (libc::EPIPE, "Broken pipe"),
    (libc::EDOM, "Numerical argument out of domain"),
    (libc::ERANGE, "Numerical result out of range"),
    (libc::EDEADLK, "Resource deadlock avoided"),
    (libc::ENAMETOOLONG, "File name too long"),
    (libc::ENOLCK, "No locks available"),
    (libc::ENOSYS, "Function not implemented"),
    (libc::ENOTEMPTY, "Directory not empty"),
    (libc::ELOOP, "Too many levels of symbolic links"),
    (libc::ENOMSG, "No message of desired type"),
    (libc::EIDRM, "Identifier removed"),
    (libc::ECHRNG, "Channel number out of range"),
    (libc::EL2NSYNC, "Level 2 not synchronized"),
    (libc::EL3HLT, "Level 3 halted"),
    (libc::EL3RST, "Level 3 reset"),
    (libc::ELNRNG, "Link number out of range"),
    (libc::EUNATCH, "Protocol driver not attached"),
    (libc::ENOCSI, "No CSI structure available"),
    (libc::EL2HLT, "Level 2 halted"),
    (libc::EBADE, "Invalid exchange"),
    (libc::EBADR, "Invalid request descriptor"),
    (libc::EXFULL, "Exchange full"),
    (libc::ENOANO, "No anode"),
    (libc::EBADRQC, "Invalid request code"),
    (libc::EBADSLT, "Invalid slot"),
    (libc::EBFONT, "Bad font file format"),
    (libc::ENOSTR, "Device not a stream"),
    (libc::ENODATA, "No data available"),
    (libc::ETIME, "Timer expired"),
    (libc::ENOSR, "Out of streams resources"),
    (libc::ENONET, "Machine is not on the network"),
    (libc::ENOPKG, "Package not installed"),
    (libc::EREMOTE, "Object is remote"),
    (libc::ENOLINK, "Link has been severed"),
    (libc::EADV, "Advertise error"),
    (libc::ESRMNT, "Srmount error"),
    (libc::ECOMM, "Communication error on send"),
    (libc::EPROTO, "Protocol error"),
    (libc::EMULTIHOP, "Multihop attempted"),
    (libc::EDOTDOT, "RFS specific error"),
    (libc::EBADMSG, "Bad message"),
    (libc::EOVERFLOW, "Value too large for defined data type"),
    (libc::ENOTUNIQ, "Name not unique on network"),
    (libc::EBADFD, "File descriptor in bad state"),
    (libc::EREMCHG, "Remote address changed"),
    (libc::ELIBACC, "Can not access a needed shared library"),
    (libc::ELIBBAD, "Accessing a corrupted shared library"),
    (libc::ELIBSCN, ".lib section in a.out corrupted"),
    (
        libc::ELIBMAX,
        "Attempting to link in too many shared libraries",
    ),
    (libc::ELIBEXEC, "Cannot exec a shared library directly"),
    (
        libc::EILSEQ,
        "Invalid or incomplete multibyte or wide character",
    ),
    (
        libc::ERESTART,
        "Interrupted system call should be restarted",
    ),
    (libc::ESTRPIPE, "Streams pipe error"),
    (libc::EUSERS, "Too many users"),
    (libc::ENOTSOCK, "Socket operation on non-socket"),
    (libc::EDESTADDRREQ, "Destination address required"),
    (libc::EMSGSIZE, "Message too long"),
    (libc::EPROTOTYPE, "Protocol wrong type for socket"),
    (libc::ENOPROTOOPT, "Protocol not available"),
    (libc::EPROTONOSUPPORT, "Protocol not supported"),
    (libc::ESOCKTNOSUPPORT, "Socket type not supported"),
    (libc::EOPNOTSUPP, "Operation not supported"),
    (libc::EPFNOSUPPORT, "Protocol family not supported"),
    (
        libc::EAFNOSUPPORT,
        "Address family not supported by protocol",
    ),
    (libc::EADDRINUSE, "Address already in use"),
    (libc::EADDRNOTAVAIL, "Cannot assign requested address"),
    (libc::ENETDOWN, "Network is down"),
    (libc::ENETUNREACH, "Network is unreachable"),
    (libc::ENETRESET, "Network dropped connection on reset"),
    (libc::ECONNABORTED, "Software caused connection abort"),
    (libc::ECONNRESET, "Connection reset by peer"),
    (libc::ENOBUFS, "No buffer space available"),
    (libc::EISCONN, "Transport endpoint is already connected"),
    (libc::ENOTCONN, "Transport endpoint is not connected"),
    (
        libc::ESHUTDOWN,
        "Cannot send after transport endpoint shutdown",
    ),
    (libc::ETOOMANYREFS, "Too many references: cannot splice"),
    (libc::ETIMEDOUT, "Connection timed out"),
    (libc::ECONNREFUSED, "Connection refused"),
    (libc::EHOSTDOWN, "Host is down"),
    (libc::EHOSTUNREACH, "No route to host"),
    (libc::EALREADY, "Operation already in progress"),
    (libc::EINPROGRESS, "Operation now in progress"),
    (libc::ESTALE, "Stale file handle"),
    (libc::EUCLEAN, "Structure needs cleaning"),
    (libc::ENOTNAM, "Not a XENIX named type file"),
    (libc::ENAVAIL, "No XENIX semaphores available"),
    (libc::EISNAM, "Is a named type file"),
    (libc::EREMOTEIO, "Remote I/O error"),
    (libc::EDQUOT, "Disk quota exceeded"),
    (libc::ENOMEDIUM, "No medium found"),
    (libc::EMEDIUMTYPE, "Wrong medium type"),
    (libc::ECANCELED, "Operation canceled"),
    (libc::ENOKEY, "Required key not available"),
    (libc::EKEYEXPIRED, "Key has expired"),
    (libc::EKEYREVOKED, "Key has been revoked"),
    (libc::EKEYREJECTED, "Key was rejected by service"),
    (libc::EOWNERDEAD, "Owner died"),
    (libc::ENOTRECOVERABLE, "State not recoverable"),
    (libc::ERFKILL, "Operation not possible due to RF-kill"),
    (libc::EHWPOISON, "Memory page has hardware error"),
    // powerpc alone gives EDEADLOCK a number of its own (58).
    #[cfg(any(target_arch = "powerpc", target_arch = "powerpc64"))]
    (libc::EDEADLOCK, "File locking deadlock error"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_os_error_suffix() {
        assert_eq!(strerror_errno(2), "No such file or directory");
        assert_eq!(strerror_errno(32), "Broken pipe");
        assert_eq!(
            strerror(&io::Error::from_raw_os_error(libc::EACCES)),
            "Permission denied"
        );
    }

    /// Where musl's wording differs, ours is glibc's whatever we link with.
    #[test]
    fn glibc_wording_where_musl_differs() {
        assert_eq!(
            strerror_errno(libc::ENOTTY),
            "Inappropriate ioctl for device"
        );
        assert_eq!(strerror_errno(libc::EIO), "Input/output error");
        assert_eq!(strerror_errno(libc::EBUSY), "Device or resource busy");
        assert_eq!(strerror_errno(libc::EADDRINUSE), "Address already in use");
        assert_eq!(strerror_errno(libc::ETIMEDOUT), "Connection timed out");
        assert_eq!(strerror_errno(libc::ENOMEM), "Cannot allocate memory");
        assert_eq!(
            strerror_errno(libc::EAGAIN),
            "Resource temporarily unavailable"
        );
        assert_eq!(strerror_errno(0), "Success");
        assert_eq!(strerror_errno(4242), "Unknown error 4242");
    }

    /// Built against glibc, the table must say exactly what glibc's own strerror says, for
    /// every value (the table was generated from it; this keeps it honest).
    #[cfg(target_env = "gnu")]
    #[test]
    fn same_as_the_running_glibc() {
        for errno in 0..=200 {
            let text = io::Error::from_raw_os_error(errno).to_string();
            let glibc = text
                .rsplit_once(" (os error ")
                .map_or(text.as_str(), |(t, _)| t);
            assert_eq!(strerror_errno(errno), glibc, "errno {errno}");
        }
    }
}
