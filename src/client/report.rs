//! What a reply means: the sg3_utils exit status, status and sense in words, and a small
//! hand-written JSON writer (no serde).

use std::fmt::Write as _;

use super::Reply;
use crate::scsi::sense::{self, SenseCode};
use crate::scsi::status;

/// Exit statuses, sg3_utils(8) "EXIT STATUS".
pub mod exit {
    pub const GOOD: u8 = 0;
    pub const SYNTAX: u8 = 1;
    pub const NOT_READY: u8 = 2;
    pub const MEDIUM_HARDWARE: u8 = 3;
    pub const ILLEGAL_REQUEST: u8 = 5;
    pub const UNIT_ATTENTION: u8 = 6;
    pub const DATA_PROTECT: u8 = 7;
    pub const INVALID_OP: u8 = 9;
    pub const COPY_ABORTED: u8 = 10;
    pub const ABORTED_COMMAND: u8 = 11;
    pub const MISCOMPARE: u8 = 14;
    /// Cannot open or use the device, the socket, or the helper closed the connection.
    pub const FILE_ERROR: u8 = 15;
    pub const NO_SENSE: u8 = 20;
    pub const RESERVATION_CONFLICT: u8 = 24;
    pub const CONDITION_MET: u8 = 25;
    pub const BUSY: u8 = 26;
    pub const TASK_SET_FULL: u8 = 27;
    pub const ACA_ACTIVE: u8 = 28;
    pub const TASK_ABORTED: u8 = 29;
    /// Options that contradict each other.
    pub const CONTRADICT: u8 = 31;
    pub const TIMEOUT: u8 = 33;
    pub const MALFORMED: u8 = 97;
    pub const OTHER_SENSE: u8 = 98;
    pub const OTHER: u8 = 99;
}

/// The exit status table `--help` prints.
pub const EXIT_HELP: &str = "Exit status (sg3_utils(8) categories):
   0  GOOD (recovered errors too)     1  syntax error in the options
   2  NOT READY                        3  MEDIUM ERROR or HARDWARE ERROR
   5  ILLEGAL REQUEST                  6  UNIT ATTENTION
   7  DATA PROTECT                     9  ILLEGAL REQUEST, invalid opcode
  10  COPY ABORTED                    11  ABORTED COMMAND
  14  MISCOMPARE                      15  cannot open DEVICE or the socket,
  20  CHECK CONDITION with NO SENSE       or the helper closed the connection
  24  RESERVATION CONFLICT            25  CONDITION MET
  26  BUSY                            27  TASK SET FULL
  28  ACA ACTIVE                      29  TASK ABORTED
  31  contradictory or missing options 33  the helper did not answer in time
  97  malformed response               98  other CHECK CONDITION
  99  any other failure (protocol error, probe found a misbehaving helper)
";

/// The exit status for a status byte and its sense (`sg_err_category_sense`).
pub fn exit_status(status_byte: u8, code: Option<SenseCode>) -> u8 {
    match status_byte {
        status::GOOD => exit::GOOD,
        status::CHECK_CONDITION => match code {
            None => exit::OTHER_SENSE,
            Some(c) => match c.key {
                0x0 if c.asc == 0 && c.ascq == 0 => exit::GOOD,
                0x0 => exit::NO_SENSE,
                0x1 => exit::GOOD,
                0x2 => exit::NOT_READY,
                0x3 | 0x4 | 0x8 => exit::MEDIUM_HARDWARE,
                0x5 if c.asc == 0x20 && c.ascq == 0 => exit::INVALID_OP,
                0x5 => exit::ILLEGAL_REQUEST,
                0x6 => exit::UNIT_ATTENTION,
                0x7 => exit::DATA_PROTECT,
                0xa => exit::COPY_ABORTED,
                0xb => exit::ABORTED_COMMAND,
                0xe => exit::MISCOMPARE,
                _ => exit::OTHER_SENSE,
            },
        },
        status::CONDITION_MET => exit::CONDITION_MET,
        status::BUSY => exit::BUSY,
        status::RESERVATION_CONFLICT => exit::RESERVATION_CONFLICT,
        status::TASK_SET_FULL => exit::TASK_SET_FULL,
        status::ACA_ACTIVE => exit::ACA_ACTIVE,
        status::TASK_ABORTED => exit::TASK_ABORTED,
        _ => exit::OTHER,
    }
}

/// The sense code of a CHECK CONDITION reply, if the sense decodes.
pub fn sense_code(reply: &Reply) -> Option<SenseCode> {
    (reply.status() == status::CHECK_CONDITION)
        .then(|| sense::decode(&reply.header.sense))
        .flatten()
}

/// "Aborted Command, asc/ascq 00/06: I/O process terminated".
pub fn sense_words(c: SenseCode) -> String {
    let (key, asc, ascq) = (sense::key_name(c.key), c.asc, c.ascq);
    let mut s = format!("{key}, asc/ascq {asc:02x}/{ascq:02x}");
    if let Some(text) = sense::asc_name(c.asc, c.ascq) {
        let _ = write!(s, ": {text}");
    }
    s
}

/// "CHECK CONDITION (Aborted Command, asc/ascq 00/06: I/O process terminated)".
pub fn status_words(reply: &Reply) -> String {
    let name = status::name(reply.status());
    match sense_code(reply) {
        Some(c) => format!("{name} ({})", sense_words(c)),
        None => name.to_owned(),
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON object built field by field; values are already JSON.
#[derive(Default)]
pub struct Obj(String);

impl Obj {
    pub fn new() -> Self {
        Obj::default()
    }
    /// Adds `"key": value` (value is raw JSON).
    pub fn raw(mut self, key: &str, value: impl AsRef<str>) -> Self {
        if !self.0.is_empty() {
            self.0.push(',');
        }
        let _ = write!(self.0, "{}:{}", json_str(key), value.as_ref());
        self
    }
    pub fn str(self, key: &str, value: &str) -> Self {
        self.raw(key, json_str(value))
    }
    pub fn num(self, key: &str, value: impl std::fmt::Display) -> Self {
        self.raw(key, value.to_string())
    }
    pub fn bool(self, key: &str, value: bool) -> Self {
        self.raw(key, if value { "true" } else { "false" })
    }
    pub fn finish(self) -> String {
        format!("{{{}}}", self.0)
    }
}

/// `f(value)`, or `null` without a value.
pub fn or_null<T>(value: Option<T>, f: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| "null".to_owned(), f)
}

/// A JSON array of raw JSON values.
pub fn array(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

/// `{"value": n, "name": "..."}`.
pub fn named(value: u8, name: &str) -> String {
    Obj::new().num("value", value).str("name", name).finish()
}

/// The status object of the JSON output.
pub fn status_json(reply: &Reply) -> String {
    named(reply.status(), status::name(reply.status()))
}

/// The sense object (null unless CHECK CONDITION with decodable sense).
pub fn sense_json(reply: &Reply) -> String {
    let Some(c) = sense_code(reply) else {
        return "null".to_owned();
    };
    Obj::new()
        .num("response_code", reply.header.sense[0] & 0x7f)
        .bool("deferred", sense::is_deferred(&reply.header.sense))
        .raw("key", named(c.key, sense::key_name(c.key)))
        .num("asc", c.asc)
        .num("ascq", c.ascq)
        .raw(
            "description",
            or_null(sense::asc_name(c.asc, c.ascq), json_str),
        )
        .finish()
}

/// sg3_utils' hex2stdout layout: offset, 16 bytes in two groups of 8, printable ASCII.
pub fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        let _ = write!(out, " {:02x}    ", i * 16);
        for (j, b) in line.iter().enumerate() {
            let gap = if j == 8 { "  " } else { " " };
            let _ = write!(out, "{gap}{b:02x}");
        }
        for j in line.len()..16 {
            out.push_str(if j == 8 { "    " } else { "   " });
        }
        out.push_str("    ");
        out.extend(line.iter().map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_categories() {
        assert_eq!(exit_status(0, None), 0);
        assert_eq!(exit_status(2, Some(sense::IO_ERROR)), 11);
        assert_eq!(exit_status(2, Some(sense::INVALID_FIELD)), 5);
        assert_eq!(exit_status(2, Some(sense::INVALID_OPCODE)), 9);
        assert_eq!(exit_status(2, Some(sense::NOT_READY)), 2);
        assert_eq!(exit_status(2, Some(sense::RESET)), 6);
        assert_eq!(exit_status(2, Some(sense::SPACE_ALLOC_FAILED)), 7);
        assert_eq!(exit_status(2, Some(sense::TARGET_FAILURE)), 3);
        assert_eq!(exit_status(2, None), 98);
        assert_eq!(exit_status(0x18, None), 24);
        assert_eq!(exit_status(0x08, None), 26);
        assert_eq!(exit_status(0x28, None), 27);
        assert_eq!(exit_status(0x77, None), 99);
    }

    #[test]
    fn json_escapes_and_objects() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        let o = Obj::new()
            .num("a", 1)
            .str("b", "x")
            .bool("c", false)
            .finish();
        assert_eq!(o, r#"{"a":1,"b":"x","c":false}"#);
        assert_eq!(array(vec!["1".into(), "2".into()]), "[1,2]");
    }

    #[test]
    fn hex_dump_layout() {
        let d = hex_dump(b"0123456789abcdefXY");
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(
            lines[0],
            " 00     30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66    0123456789abcdef"
        );
        assert!(lines[1].starts_with(" 10     58 59"));
        assert!(lines[1].ends_with("XY"));
    }
}
