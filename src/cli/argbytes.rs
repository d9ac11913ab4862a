//! Arguments are bytes, not UTF-8: argv reaches the applets as `String`s that carry every
//! byte, and paths and names go back to those bytes at the system call.
//!
//! A byte that is not part of valid UTF-8 becomes the character U+10FF00 + byte (the end of
//! supplementary private use area B). So that the mapping is a bijection, an argument that
//! really contains characters of that range has their UTF-8 bytes mapped the same way. Valid
//! UTF-8 without those characters (every argument in practice) is unchanged, so option
//! parsing, help and messages work on text as before.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

const BASE: u32 = 0x10_FF00;

fn escaped(byte: u8) -> char {
    char::from_u32(BASE + u32::from(byte)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// argv bytes as a `String` that [`decode`] turns back into the same bytes.
pub fn encode(arg: &OsStr) -> String {
    let mut out = String::with_capacity(arg.len());
    for chunk in arg.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if u32::from(c) >= BASE {
                let mut buf = [0u8; 4];
                out.extend(c.encode_utf8(&mut buf).bytes().map(escaped));
            } else {
                out.push(c);
            }
        }
        out.extend(chunk.invalid().iter().copied().map(escaped));
    }
    out
}

/// The bytes an [`encode`]d string stands for.
pub fn decode_bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match u32::from(c).checked_sub(BASE) {
            Some(byte) => out.push(byte as u8),
            None => out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes()),
        }
    }
    out
}

/// An [`encode`]d argument as the path or name it was on the command line.
pub fn decode(s: &str) -> OsString {
    OsString::from_vec(decode_bytes(s))
}

/// A path as a message quotes it: encoded like an argument, so that [`print_error`] prints
/// its bytes as given (C prints the raw bytes; `Path::display` would print U+FFFD).
pub fn path(p: &Path) -> String {
    encode(p.as_os_str())
}

/// Writes a message line to stderr in one write, the bytes that arguments and paths in it
/// stand for as they are (see [`path`]).
pub fn print_error(line: &str) {
    let _ = std::io::stderr().write_all(&decode_bytes(line));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_string_comes_back() {
        let cases: &[&[u8]] = &[
            b"/tmp/x.sock",
            b"/tmp/\xff.sock",
            b"\xc3",
            b"caf\xc3\xa9 \xe9",
            "\u{10FF41}".as_bytes(),
            b"\xf4\x8f\xbc\x80\xff",
            b"",
        ];
        for bytes in cases {
            let encoded = encode(OsStr::from_bytes(bytes));
            assert_eq!(decode_bytes(&encoded), *bytes, "{bytes:?}");
        }
        assert_eq!(encode(OsStr::new("-k/tmp/é")), "-k/tmp/é");
    }
}
