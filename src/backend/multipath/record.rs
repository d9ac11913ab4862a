//! The maps this daemon has suspended, in a file that outlives it: a daemon killed with
//! SIGKILL (or by the OOM killer) between suspending a map and resuming it runs no guard and
//! no panic hook, and device-mapper does not say who suspended a map. So before each suspend
//! the daemon appends `suspend UUID NAME` to its record file, and `resume UUID NAME` once the
//! map is resumed; the next daemon to start resumes what a dead one left suspended.
//!
//! * One file per daemon, `suspended-maps.PID` in [`DIR`], made at start-up while the daemon
//!   is still root (under `-u`/`-g` it could not create it later) and kept open for its life:
//!   libvirt runs one helper per VM, and `Accept=yes` one per connection, so several live at
//!   once.
//! * The file carries an open file description lock (`F_OFD_SETLK`) for as long as its daemon
//!   lives; the kernel drops it when the daemon dies, however it dies. A starting daemon that
//!   can take the lock of another's file knows that daemon is dead, and resumes the maps its
//!   record leaves suspended (found by uuid, as multipathd may have renamed the map), then
//!   removes the file. A map a live daemon holds suspended is left alone.
//! * Appended lines, never rewritten: the running daemon's sandbox allows `write` but not
//!   `ftruncate` or `pwrite`, and an append of one short line is one `write` to an `O_APPEND`
//!   file, whole or not at all. The file grows by about 200 bytes per suspension, which
//!   happens only when a reservation moves between paths.
//! * Any other suspended multipath map found at start-up (an administrator's `dmsetup
//!   suspend`, a daemon older than this record, a map whose resume failed) is not touched, as
//!   before: the caller warns about it.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{Mode, OFlags};

/// Where the daemons' record files live (the systemd unit's `RuntimeDirectory=`).
pub const DIR: &str = "/run/qemu-pr-helper";
/// The record files' names: this, then the daemon's pid.
const PREFIX: &str = "suspended-maps.";
/// The dm uuid prefix of multipathd's maps (warned about when found suspended).
const MPATH_UUID_PREFIX: &str = "mpath-";

/// This daemon's record file, locked for its life.
#[derive(Debug)]
pub struct Record {
    fd: OwnedFd,
    path: PathBuf,
    /// Suspensions recorded and not resumed yet: at a clean exit with none the file goes.
    outstanding: AtomicUsize,
}

static RECORD: OnceLock<Record> = OnceLock::new();

impl Record {
    /// Makes this daemon's file in `dir` (created 0700 if missing) and locks it. A file that
    /// another starting daemon's recovery removed between our create and our lock is no
    /// longer at its path: made again.
    ///
    /// # Errors
    /// Creating the directory or the file, or locking it.
    pub fn create(dir: &Path) -> io::Result<Record> {
        match rustix::fs::mkdir(dir, Mode::RWXU) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        let flags = OFlags::CREATE
            | OFlags::EXCL
            | OFlags::RDWR
            | OFlags::APPEND
            | OFlags::CLOEXEC
            | OFlags::NOFOLLOW;
        let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
        for n in 0..8 {
            let name = if n == 0 {
                format!("{PREFIX}{pid}")
            } else {
                format!("{PREFIX}{pid}.{n}")
            };
            let path = dir.join(name);
            let fd = match rustix::fs::open(&path, flags, Mode::RUSR | Mode::WUSR) {
                Ok(fd) => fd,
                // A file of a dead daemon with our pid that recovery kept (a failed resume).
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            };
            if !crate::sys::ofd_write_lock(fd.as_fd())? || !still_at(&fd, &path) {
                last = io::Error::other("another daemon's start-up took the file");
                continue;
            }
            return Ok(Record {
                fd,
                path,
                outstanding: AtomicUsize::new(0),
            });
        }
        Err(last)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes this the record [`note_suspend`] and [`note_resume`] write to.
    pub fn install(self) {
        let _ = RECORD.set(self);
    }

    fn append(&self, what: &str, uuid: &str, name: &str) {
        let line = format!("{what} {uuid} {name}\n");
        // Nothing to do about a failure here: the suspend goes on, guarded as before.
        let _ = rustix::io::write(&self.fd, line.as_bytes());
    }
}

/// Whether `path` still names the file open as `fd`.
fn still_at(fd: &OwnedFd, path: &Path) -> bool {
    match (rustix::fs::fstat(fd), rustix::fs::lstat(path)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// Records that the map with `uuid` (named `name`) is about to be suspended: before the ioctl,
/// so that a kill right after it is covered. Nothing without an installed record
/// (`pr-client --direct`).
pub fn note_suspend(uuid: &str, name: &str) {
    if let Some(r) = RECORD.get() {
        r.outstanding.fetch_add(1, Ordering::SeqCst);
        r.append("suspend", uuid, name);
    }
}

/// Records that the map is resumed (or that its suspend failed).
pub fn note_resume(uuid: &str, name: &str) {
    if let Some(r) = RECORD.get() {
        r.append("resume", uuid, name);
        r.outstanding.fetch_sub(1, Ordering::SeqCst);
    }
}

/// This daemon's record file, once installed: the sandbox lets the daemon remove it at exit.
pub fn installed_path() -> Option<&'static Path> {
    RECORD.get().map(Record::path)
}

/// At a clean exit: removes this daemon's file when no map it suspended is left suspended
/// (a failed resume keeps it for the next start). Under `-u` the directory refuses the
/// removal; the next daemon to start removes it then.
pub fn finish() {
    if let Some(r) = RECORD.get() {
        if r.outstanding.load(Ordering::SeqCst) == 0 && still_at(&r.fd, &r.path) {
            let _ = rustix::fs::unlink(&r.path);
        }
    }
}

/// The maps a record leaves suspended: uuid to the name it last recorded.
pub fn outstanding(text: &str) -> BTreeMap<String, String> {
    let mut count: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split(' ');
        let (Some(what), Some(uuid), Some(name)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let step = match what {
            "suspend" => 1,
            "resume" => -1,
            _ => continue,
        };
        let entry = count.entry(uuid.to_owned()).or_insert((0, String::new()));
        entry.0 += step;
        entry.1 = name.to_owned();
    }
    count
        .into_iter()
        .filter(|(_, (n, _))| *n > 0)
        .map(|(uuid, (_, name))| (uuid, name))
        .collect()
}

/// A device-mapper map as start-up sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmMap {
    pub name: String,
    pub uuid: String,
    pub suspended: bool,
}

/// The maps of the system, and resuming one (device-mapper, or a test's stand-in).
pub trait Maps {
    /// Every dm map.
    fn list(&self) -> io::Result<Vec<DmMap>>;
    /// Resumes the map named `name`.
    fn resume(&self, name: &str) -> io::Result<()>;
}

/// The real maps: `/sys/block/dm-*/dm/{name,uuid,suspended}` and `DM_DEV_SUSPEND`.
#[derive(Debug)]
pub struct SysMaps;

impl SysMaps {
    /// The maps under a sysfs `block` directory (`/sys/block`).
    pub fn list_in(block: &Path) -> io::Result<Vec<DmMap>> {
        let mut maps = Vec::new();
        for entry in std::fs::read_dir(block)? {
            let dm = entry?.path().join("dm");
            let read = |f: &str| std::fs::read_to_string(dm.join(f)).map(|s| s.trim().to_owned());
            // Not a dm device, or gone since the listing.
            let (Ok(name), Ok(suspended)) = (read("name"), read("suspended")) else {
                continue;
            };
            maps.push(DmMap {
                name,
                uuid: read("uuid").unwrap_or_default(),
                suspended: suspended == "1",
            });
        }
        maps.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(maps)
    }
}

impl Maps for SysMaps {
    fn list(&self) -> io::Result<Vec<DmMap>> {
        SysMaps::list_in(Path::new("/sys/block"))
    }

    fn resume(&self, name: &str) -> io::Result<()> {
        crate::sys::dm::resume(name)
    }
}

/// What start-up found and did.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Maps a dead daemon left suspended, resumed now: (name, the dead daemon's file).
    pub resumed: Vec<(String, PathBuf)>,
    /// Maps a dead daemon left suspended that would not resume: (name, file, why). Their
    /// record stays for the next start.
    pub failed: Vec<(String, PathBuf, io::Error)>,
    /// Suspended multipath maps no record accounts for: someone else's, left alone.
    pub others: Vec<String>,
    /// Suspended maps a live daemon's record holds (it is moving a reservation).
    pub live: Vec<String>,
    /// Record files that could not be read or removed: (file, why).
    pub problems: Vec<(PathBuf, io::Error)>,
}

/// A dead daemon's record, locked by us while we resume its maps.
struct Dead {
    path: PathBuf,
    _lock: OwnedFd,
    maps: BTreeMap<String, String>,
    failed: bool,
}

/// Resumes the maps that dead daemons' records in `dir` leave suspended and removes those
/// records; lists the other suspended multipath maps. Call before [`Record::create`], as
/// root. A missing `dir` is nothing to recover.
pub fn recover(dir: &Path, maps: &impl Maps) -> Recovery {
    let mut out = Recovery::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return out,
        Err(e) => {
            out.problems.push((dir.to_owned(), e));
            return out;
        }
    };
    let mut dead = Vec::new();
    let mut live = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        match read_record(&path) {
            Ok((lock, text, true)) => dead.push(Dead {
                path,
                _lock: lock,
                maps: outstanding(&text),
                failed: false,
            }),
            Ok((_, text, false)) => live.extend(outstanding(&text)),
            Err(e) => out.problems.push((path, e)),
        }
    }
    let all = match maps.list() {
        Ok(all) => all,
        Err(e) => {
            // Without the list nothing is known to be suspended: keep every record.
            out.problems.push((PathBuf::from("/sys/block"), e));
            return out;
        }
    };
    for map in all.iter().filter(|m| m.suspended) {
        if let Some(d) = dead.iter_mut().find(|d| d.maps.contains_key(&map.uuid)) {
            match maps.resume(&map.name) {
                Ok(()) => out.resumed.push((map.name.clone(), d.path.clone())),
                Err(e) => {
                    d.failed = true;
                    out.failed.push((map.name.clone(), d.path.clone(), e));
                }
            }
        } else if live.contains_key(&map.uuid) {
            out.live.push(map.name.clone());
        } else if map.uuid.starts_with(MPATH_UUID_PREFIX) {
            out.others.push(map.name.clone());
        }
    }
    // Removed while still locked, so no other starting daemon reads them half-done.
    for d in dead.into_iter().filter(|d| !d.failed) {
        if let Err(e) = std::fs::remove_file(&d.path) {
            out.problems.push((d.path, e));
        }
    }
    out
}

/// Opens a record, tries its lock, reads it: (descriptor, text, whether its daemon is dead).
fn read_record(path: &Path) -> io::Result<(OwnedFd, String, bool)> {
    let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
    let fd = rustix::fs::open(path, flags, Mode::empty())?;
    let dead = crate::sys::ofd_write_lock(fd.as_fd())?;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = rustix::io::read(&fd, &mut buf)?;
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    Ok((fd, String::from_utf8_lossy(&text).into_owned(), dead))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    struct FakeMaps {
        maps: Vec<DmMap>,
        resumed: RefCell<Vec<String>>,
        refuse: Option<&'static str>,
    }

    impl FakeMaps {
        fn new(maps: &[(&str, &str, bool)]) -> FakeMaps {
            FakeMaps {
                maps: maps
                    .iter()
                    .map(|&(name, uuid, suspended)| DmMap {
                        name: name.into(),
                        uuid: uuid.into(),
                        suspended,
                    })
                    .collect(),
                resumed: RefCell::new(Vec::new()),
                refuse: None,
            }
        }
    }

    impl Maps for FakeMaps {
        fn list(&self) -> io::Result<Vec<DmMap>> {
            Ok(self.maps.clone())
        }
        fn resume(&self, name: &str) -> io::Result<()> {
            if self.refuse == Some(name) {
                return Err(io::Error::from_raw_os_error(libc::ENXIO));
            }
            self.resumed.borrow_mut().push(name.to_owned());
            Ok(())
        }
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "pr-helper-record-{tag}-{}",
            rustix::process::getpid().as_raw_nonzero()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn outstanding_counts_suspends_against_resumes() {
        let text = "suspend mpath-1 mpatha\nresume mpath-1 mpatha\nsuspend mpath-2 mpathb\n\
                    suspend mpath-1 mpatha\nsuspend mpath-3 x\nresume mpath-3 renamed\n\
                    garbage\nsuspend mpath-2 mpathb2\nresume mpath-2 mpathb2\nsuspend mpath-4";
        let got = outstanding(text);
        let want: BTreeMap<String, String> = [("mpath-1", "mpatha"), ("mpath-2", "mpathb2")]
            .into_iter()
            .map(|(u, n)| (u.to_owned(), n.to_owned()))
            .collect();
        assert_eq!(got, want);
    }

    /// A dead daemon's record (no lock held) has its suspended maps resumed, by uuid under
    /// the map's current name, and goes; a live daemon's (locked by another open of the file,
    /// as OFD locks conflict within one process too) is left alone with its map; another
    /// suspended multipath map is reported, not resumed; a map the record says suspended but
    /// that is not is not touched.
    #[test]
    fn recovery_resumes_only_what_a_dead_daemon_left_suspended() {
        let dir = tempdir("recover");
        std::fs::write(
            dir.join("suspended-maps.100"),
            "suspend mpath-dead mpatha\nsuspend mpath-done mpathd\nresume mpath-done mpathd\n\
             suspend mpath-resumed mpathe\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("suspended-maps.200"),
            "suspend mpath-live mpathb\n",
        )
        .unwrap();
        std::fs::write(dir.join("unrelated"), "suspend mpath-other mpathc\n").unwrap();
        let live = rustix::fs::open(
            dir.join("suspended-maps.200"),
            OFlags::RDWR | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        assert!(crate::sys::ofd_write_lock(live.as_fd()).unwrap());
        let maps = FakeMaps::new(&[
            ("renamed-a", "mpath-dead", true),
            ("mpathb", "mpath-live", true),
            ("mpathc", "mpath-other", true),
            ("mpathd", "mpath-done", true),
            ("mpathe", "mpath-resumed", false),
            ("vg-lv", "LVM-xyz", true),
        ]);
        let r = recover(&dir, &maps);
        assert_eq!(*maps.resumed.borrow(), ["renamed-a"]);
        assert_eq!(r.resumed.len(), 1);
        assert_eq!(r.resumed[0].1, dir.join("suspended-maps.100"));
        assert!(r.failed.is_empty() && r.problems.is_empty(), "{r:?}");
        assert_eq!(r.live, ["mpathb"]);
        assert_eq!(r.others, ["mpathc", "mpathd"]);
        assert_eq!(names(&dir), ["suspended-maps.200", "unrelated"]);
        drop(live);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A resume that fails keeps the dead daemon's record for the next start.
    #[test]
    fn a_failed_resume_keeps_the_record() {
        let dir = tempdir("failed");
        std::fs::write(dir.join("suspended-maps.7"), "suspend mpath-x mpatha\n").unwrap();
        let mut maps = FakeMaps::new(&[("mpatha", "mpath-x", true)]);
        maps.refuse = Some("mpatha");
        let r = recover(&dir, &maps);
        assert_eq!(r.failed.len(), 1, "{r:?}");
        assert_eq!(names(&dir), ["suspended-maps.7"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The record as the daemon writes it: created and locked (a second open cannot take the
    /// lock while it lives, so a starting daemon sees it alive), lines appended, readable by
    /// recovery; once dropped, the lock is gone and recovery removes it.
    #[test]
    fn a_record_is_locked_while_it_lives_and_recovered_after() {
        let dir = tempdir("create").join("sub");
        let rec = Record::create(&dir).unwrap();
        rec.append("suspend", "mpath-q", "mpathq");
        let maps = FakeMaps::new(&[("mpathq", "mpath-q", true)]);
        let r = recover(&dir, &maps);
        assert_eq!(r.live, ["mpathq"], "{r:?}");
        assert!(maps.resumed.borrow().is_empty());
        // A second daemon's record beside it gets its own name and lock.
        let other = Record::create(&dir).unwrap();
        assert_ne!(other.path(), rec.path());
        drop(other);
        drop(rec);
        let r = recover(&dir, &maps);
        assert_eq!(*maps.resumed.borrow(), ["mpathq"], "{r:?}");
        assert!(names(&dir).is_empty(), "{:?}", names(&dir));
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn sysfs_maps_are_read_by_name_uuid_and_suspended() {
        let dir = tempdir("sysfs");
        for (dev, name, uuid, s) in [
            ("dm-0", "mpatha", Some("mpath-36001"), "1"),
            ("dm-1", "vg-lv", None, "0"),
        ] {
            let dm = dir.join(dev).join("dm");
            std::fs::create_dir_all(&dm).unwrap();
            std::fs::write(dm.join("name"), format!("{name}\n")).unwrap();
            std::fs::write(dm.join("suspended"), format!("{s}\n")).unwrap();
            if let Some(u) = uuid {
                std::fs::write(dm.join("uuid"), format!("{u}\n")).unwrap();
            }
        }
        std::fs::create_dir_all(dir.join("sda")).unwrap();
        let got = SysMaps::list_in(&dir).unwrap();
        assert_eq!(
            got,
            [
                DmMap {
                    name: "mpatha".into(),
                    uuid: "mpath-36001".into(),
                    suspended: true
                },
                DmMap {
                    name: "vg-lv".into(),
                    uuid: String::new(),
                    suspended: false
                }
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
