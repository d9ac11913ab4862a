//! Small helpers for messages a sysadmin reads: errno text without Rust's "(os error N)".

use std::io;

/// The C library's `strerror` text for an I/O error ("No such file or directory").
pub fn strerror(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(i) if err.raw_os_error().is_some() => text[..i].to_owned(),
        _ => text,
    }
}

/// The `strerror` text for an errno value.
pub fn strerror_errno(errno: i32) -> String {
    strerror(&io::Error::from_raw_os_error(errno))
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_os_error_suffix() {
        assert_eq!(super::strerror_errno(2), "No such file or directory");
        assert_eq!(super::strerror_errno(32), "Broken pipe");
    }
}
