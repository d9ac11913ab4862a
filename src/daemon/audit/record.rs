//! One audit record: what is kept of a request before it runs ([`Pending`]), the record
//! ([`Record`]), its fields in order, and its two encodings: the text line (`-v`'s format,
//! and the journal's MESSAGE) and the journal's native datagram.

use std::fmt::{self, Write as _};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::cgroup::pod_uid_from_cgroup;
use super::device::DeviceInfo;
use super::journal;
use super::peer::{Peer, VmSource};
use crate::protocol::CheckedCdb;
use crate::scsi::{pr, sense, status};

/// `MESSAGE_ID=` of every audit record, so `journalctl MESSAGE_ID=...` finds them all.
pub const MESSAGE_ID: &str = "5a0e1f3c7b9d4e2a8c6b1d0f3e5a7c92";

/// What is taken from a request before it runs (its device fd closes with the command, and
/// its parameter list shares the reply buffer).
#[derive(Debug, Clone)]
pub struct Pending {
    pub cdb: [u8; 16],
    /// PR OUT's parameter list, decoded once from its first 24 bytes (zeros where a shorter
    /// list ended); `None` for PR IN.
    pub params: Option<pr::ProutParams>,
    /// The descriptor's device number, if it is a device.
    pub rdev: Option<u64>,
    /// Whether that is a block device (whose /sys files name it).
    pub block: bool,
    pub started: Instant,
}

impl Pending {
    /// Notes a request about to run.
    pub fn capture(cdb: &CheckedCdb, device: BorrowedFd<'_>, params: &[u8]) -> Pending {
        let params = cdb.is_pr_out().then(|| {
            let mut fixed = [0u8; pr::PR_OUT_FIXED_PARAM_SIZE];
            let n = cdb.parameter_length().min(fixed.len()).min(params.len());
            fixed[..n].copy_from_slice(&params[..n]);
            pr::ProutParams::decode(cdb.cdb[1] & 0x1f, &fixed).unwrap_or_default()
        });
        use rustix::fs::FileType;
        let st = rustix::fs::fstat(device).ok();
        let (rdev, block) = match st.map(|st| FileType::from_raw_mode(st.st_mode)) {
            Some(FileType::BlockDevice) => (st.map(|st| st.st_rdev), true),
            Some(FileType::CharacterDevice) => (st.map(|st| st.st_rdev), false),
            _ => (None, false),
        };
        Pending {
            cdb: cdb.cdb,
            params,
            rdev,
            block,
            started: Instant::now(),
        }
    }
}

/// One audit record.
#[derive(Debug)]
pub struct Record<'a> {
    pub peer: &'a Peer,
    pub pending: &'a Pending,
    pub device: Option<&'a DeviceInfo>,
    pub status: u8,
    pub sense: Option<sense::SenseCode>,
    /// The paths a multipath map's command went to.
    pub paths: Vec<String>,
    pub duration: Duration,
}

/// A field value written straight into the output, with no allocation of its own.
type Visit<'v> = dyn FnMut(&'static str, &dyn fmt::Display) + 'v;

/// A field value that a closure writes into the output.
struct Show<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result>(F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Show<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

/// A name as a field value: upper case, blanks as underscores (`READ_KEYS`, `CHECK_CONDITION`).
fn upper_snake(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    name.chars().try_for_each(|c| {
        f.write_char(if c == ' ' {
            '_'
        } else {
            c.to_ascii_uppercase()
        })
    })
}

/// A field that is there only with a value.
fn some(f: &mut Visit<'_>, name: &'static str, value: Option<&String>) {
    if let Some(value) = value {
        f(name, value);
    }
}

thread_local! {
    /// Each thread's buffers for records: reused, so a record allocates nothing once warm.
    static BUFFERS: std::cell::RefCell<(String, String, Vec<u8>)> =
        const { std::cell::RefCell::new((String::new(), String::new(), Vec::new())) };
}

impl Record<'_> {
    fn is_pr_out(&self) -> bool {
        self.pending.cdb[0] == crate::scsi::cdb::PERSISTENT_RESERVE_OUT
    }

    /// Every field, in order, as (journal field name, value); the line is built from the same.
    pub fn visit(&self, f: &mut Visit<'_>) {
        let (out, cdb) = (self.is_pr_out(), &self.pending.cdb);
        let sa = cdb[1] & 0x1f;
        let action = |w: &mut fmt::Formatter<'_>| {
            let name = pr::sa_name(out, sa);
            upper_snake(w, name)?;
            if name == "reserved" {
                write!(w, "_0x{sa:02x}")?;
            }
            Ok(())
        };
        f("PR_ACTION", &Show(action));
        f("PR_DIRECTION", &if out { "OUT" } else { "IN" });
        if let Some(params) = &self.pending.params {
            let prtype = cdb[2] & 0x0f;
            f(
                "PR_TYPE",
                &Show(|w| match pr::PrType::from_byte(prtype) {
                    Some(t) => w.write_str(t.short_name()),
                    None => write!(w, "{prtype}"),
                }),
            );
            f("PR_SCOPE", &(cdb[2] >> 4));
            let key = |k: u64| Show(move |w| write!(w, "0x{k:016x}"));
            f("PR_KEY", &key(params.reservation_key));
            f("PR_SA_KEY", &key(params.service_action_key));
            f("PR_APTPL", &u8::from(params.aptpl));
        }
        if let Some(rdev) = self.pending.rdev {
            let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
            f("PR_DEVICE", &Show(|w| write!(w, "{major}:{minor}")));
        }
        some(
            f,
            "PR_DEVICE_NAME",
            self.device.and_then(|d| d.name.as_ref()),
        );
        some(
            f,
            "PR_DEVICE_WWID",
            self.device.and_then(|d| d.wwid.as_ref()),
        );
        if let Some((first, rest)) = self.paths.split_first() {
            let joined = |w: &mut fmt::Formatter<'_>| {
                w.write_str(first)?;
                rest.iter().try_for_each(|p| write!(w, ",{p}"))
            };
            f("PR_PATHS", &Show(joined));
        }
        f("PR_PEER_PID", &self.peer.pid);
        f("PR_PEER_UID", &self.peer.uid);
        f("PR_PEER_GID", &self.peer.gid);
        some(f, "PR_PEER_COMM", self.peer.comm.as_ref());
        f("PR_PEER_READ", &self.peer.read.word());
        if let Some(vm) = &self.peer.vm {
            // Only a verified name is PR_VM: `journalctl PR_VM=NAME` never finds a claim.
            let name = match vm.source {
                VmSource::Cgroup => "PR_VM",
                VmSource::Cmdline => "PR_VM_CLAIMED",
            };
            f(name, &vm.name);
            f("PR_VM_SOURCE", &vm.source.word());
        }
        some(f, "PR_PEER_CGROUP", self.peer.cgroup.as_ref());
        let pod = self.peer.cgroup.as_deref().and_then(pod_uid_from_cgroup);
        some(f, "PR_POD_UID", pod.as_ref());
        f(
            "PR_STATUS",
            &Show(|w| upper_snake(w, status::name(self.status))),
        );
        if let Some(s) = self.sense {
            // Sense key, ASC and ASCQ in words: `Illegal Request 05/20/00: Invalid command
            // operation code`.
            let words = |w: &mut fmt::Formatter<'_>| {
                let key = sense::key_name(s.key);
                write!(w, "{key} {:02x}/{:02x}/{:02x}: ", s.key, s.asc, s.ascq)?;
                match sense::asc_name(s.asc, s.ascq) {
                    Some(words) => w.write_str(words),
                    None => write!(w, "ASC 0x{:02x} ASCQ 0x{:02x}", s.asc, s.ascq),
                }
            };
            f("PR_SENSE", &Show(words));
        }
        f("PR_DURATION_US", &self.duration.as_micros());
    }

    /// [`Record::visit`] with each value written out in `scratch`.
    fn visit_text(&self, scratch: &mut String, f: &mut dyn FnMut(&'static str, &str)) {
        self.visit(&mut |name, value| {
            scratch.clear();
            let _ = write!(scratch, "{value}");
            f(name, scratch);
        });
    }

    /// The record as one line into `line`: `ACTION key=value ...`, values with blanks quoted.
    fn write_message(&self, line: &mut String, scratch: &mut String) {
        self.visit_text(scratch, &mut |name, value| match name {
            "PR_ACTION" => line.push_str(value),
            "PR_DIRECTION" => {}
            _ => {
                line.push(' ');
                line.extend(name["PR_".len()..].chars().map(|c| c.to_ascii_lowercase()));
                line.push('=');
                let quote = value.is_empty()
                    || value
                        .chars()
                        .any(|c| c.is_whitespace() || c == '"' || c.is_control());
                if quote {
                    let _ = write!(line, "{value:?}");
                } else {
                    line.push_str(value);
                }
            }
        });
    }

    /// Hands the record to `sink`, made in this thread's reused buffers: as the journal's
    /// datagram (MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, MESSAGE_ID and the PR_ fields), or as
    /// the stderr line `PROG: audit: ...`.
    pub(super) fn encode(
        &self,
        prog: &str,
        journal: bool,
        sink: impl FnOnce(&[u8]) -> bool,
    ) -> bool {
        BUFFERS.with(|b| {
            let Ok(mut b) = b.try_borrow_mut() else {
                return false;
            };
            let (line, scratch, datagram) = &mut *b;
            line.clear();
            if !journal {
                line.push_str(prog);
                line.push_str(": audit: ");
                self.write_message(line, scratch);
                line.push('\n');
                return sink(line.as_bytes());
            }
            let (prefix, priority) = if self.is_pr_out() {
                ("PR OUT ", "5")
            } else {
                ("PR IN ", "6")
            };
            line.push_str(prefix);
            self.write_message(line, scratch);
            datagram.clear();
            journal::field(datagram, "MESSAGE", line);
            journal::field(datagram, "PRIORITY", priority);
            journal::field(datagram, "SYSLOG_IDENTIFIER", prog);
            journal::field(datagram, "MESSAGE_ID", MESSAGE_ID);
            self.visit_text(scratch, &mut |name, value| {
                journal::field(datagram, name, value);
            });
            sink(datagram)
        })
    }
}
