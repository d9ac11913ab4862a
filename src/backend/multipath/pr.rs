//! libmpathpersist's persistent-reservation algorithm (multipath-tools 0.14.3,
//! `mpath_persist_int.c`), generic over how a command reaches one path ([`PathExecutor`])
//! and how multipathd is told ([`Multipathd`]), so tests can play conflicts and dead paths.
//!
//! REGISTER follows multipath-tools 0.13 and later: when some paths answer RESERVATION
//! CONFLICT while others registered, those paths are retried with REGISTER AND IGNORE
//! EXISTING KEY (the key is already ours there or is stale), instead of the rollback of
//! 0.12 and earlier, which unregistered the successful paths and reported the conflict.

use std::sync::Mutex;

use super::keys::{self, Key, KeySource, MapConfig};
use super::multipathd::{self, Flag, Multipathd};
use super::table::DevNum;
use crate::scsi::pr::{self, InSa, OutSa, ProutParams, Reservation};

/// libmpathpersist's results (`MPATH_PR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mpr {
    Success = 0,
    SyntaxError = 1,
    SenseNotReady = 2,
    SenseMediumError = 3,
    SenseHardwareError = 4,
    IllegalReq = 5,
    SenseUnitAttention = 6,
    SenseAbortedCommand = 8,
    NoSense = 9,
    ReservConflict = 11,
    DmmpError = 13,
    ThreadError = 14,
    Other = 15,
    /// Internal: try another path.
    Retryable = 16,
    /// Internal: the release workaround already unregistered.
    SuccessUnregister = 17,
}

impl Mpr {
    /// What the result means, for logs.
    pub fn describe(self) -> &'static str {
        match self {
            Mpr::Success | Mpr::SuccessUnregister => "success",
            Mpr::SyntaxError => "syntax error",
            Mpr::SenseNotReady => "not ready",
            Mpr::SenseMediumError => "medium error",
            Mpr::SenseHardwareError => "hardware error",
            Mpr::IllegalReq => "illegal request",
            Mpr::SenseUnitAttention => "unit attention",
            Mpr::SenseAbortedCommand => "aborted command",
            Mpr::NoSense => "no sense",
            Mpr::ReservConflict => "reservation conflict",
            Mpr::DmmpError => "device-mapper error",
            Mpr::ThreadError => "thread error",
            Mpr::Other => "other error",
            Mpr::Retryable => "failed, another path is tried",
        }
    }
}

/// `MPATH_MAX_PARAM_LEN`: PR IN buffer and allocation length.
pub const MAX_PARAM_LEN: usize = 8192;

/// One path of the map, as discovery found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathInfo {
    pub dev: DevNum,
    /// SCSI host number, for ALL_TG_PT (one registration per initiator port).
    pub host: Option<u32>,
    /// The kernel's state in the map (`A`); a conflict through a failed path is tolerated.
    pub dm_active: bool,
}

/// How commands reach single paths and the map.
pub trait PathExecutor: Sync {
    /// The path checker: whether the path is up (or a standby "ghost" path).
    fn check(&self, path: usize) -> bool;
    /// PR OUT with this CDB and parameter list on one path, with libmpathpersist's per-path
    /// retries.
    fn prout(&self, path: usize, cdb: &[u8; 10], param: &[u8]) -> Mpr;
    /// PR IN with this CDB into `buf` on one path: the result and the bytes transferred.
    fn prin(&self, path: usize, cdb: &[u8; 10], buf: &mut [u8]) -> (Mpr, usize);
    /// Suspends the map without flushing (for moving a reservation between paths).
    fn suspend(&self) -> bool;
    /// Resumes the map.
    fn resume(&self) -> bool;
}

/// One command sent to one path, for `pr-client -v` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathCommand {
    pub dev: DevNum,
    /// `0x5e` or `0x5f`.
    pub opcode: u8,
    pub sa: u8,
    pub result: Mpr,
}

/// What multipathd answered to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonExchange {
    pub command: String,
    /// The reply, or the errno of the failure to get one.
    pub reply: Result<String, i32>,
}

/// Everything a command did besides its result: which paths it went to, what multipathd
/// was told and answered. Whether multipathd was reachable follows from the replies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The path checker's verdict on each path, when it ran (true: up).
    pub checked: Vec<(DevNum, bool)>,
    pub paths: Vec<PathCommand>,
    pub daemon: Vec<DaemonExchange>,
    /// The key the map is configured with when the command started.
    pub configured_key: Option<Key>,
    /// What went wrong finding or opening the paths.
    pub problems: Vec<String>,
}

impl Report {
    /// Whether some multipathd command got no reply at all (daemon not running, or the
    /// socket not reachable from the sandbox).
    pub fn multipathd_unreachable(&self) -> bool {
        self.daemon.iter().any(|d| d.reply.is_err())
    }

    /// The record as lines for a log or `pr-client -v`: what failed, the checker's
    /// verdicts, each command sent to a path with its result, each multipathd exchange.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.problems.iter().cloned());
        if !self.checked.is_empty() {
            let verdicts: Vec<String> = self
                .checked
                .iter()
                .map(|(dev, up)| format!("{dev} {}", if *up { "up" } else { "down" }))
                .collect();
            out.push(format!("path check: {}", verdicts.join(", ")));
        }
        for c in &self.paths {
            let is_out = c.opcode == crate::scsi::cdb::PERSISTENT_RESERVE_OUT;
            let io = if is_out { "OUT" } else { "IN" };
            let name = format!("PR {io} {}", pr::sa_name(is_out, c.sa));
            out.push(format!("{name} on path {}: {}", c.dev, c.result.describe()));
        }
        for d in &self.daemon {
            out.push(match &d.reply {
                Ok(reply) => format!("multipathd '{}': {}", d.command, reply.trim_end()),
                Err(errno) => format!(
                    "multipathd '{}': no answer ({})",
                    d.command,
                    crate::errors::strerror_errno(*errno)
                ),
            });
        }
        if self.multipathd_unreachable() {
            out.push(
                "multipathd is not reachable: PR works on the paths, but multipathd will not \
                 register the key on paths that come back"
                    .to_owned(),
            );
        }
        out
    }
}

/// What a PR OUT command needs to know about its map.
pub struct Ctx<'a, E, D> {
    pub exec: &'a E,
    pub daemon: &'a D,
    pub paths: &'a [PathInfo],
    /// The dm name multipathd knows the map by.
    pub alias: &'a str,
    pub config: MapConfig,
    /// The configured key (see [`configured_key`]).
    pub key: Key,
    /// The checker's verdict per path, taken once, when first needed (after the key
    /// checks, as `get_path_info` runs after them).
    usable: std::sync::OnceLock<Vec<bool>>,
    report: Mutex<Report>,
}

/// The map's key: multipathd's `getprkey` answer when it answers (it has the configuration
/// and the prkeys file loaded), else the configuration read here, with the prkeys file for
/// `reservation_key file`. No key anywhere reads as key 0, which libmpathpersist refuses for
/// every PR OUT but an unregister.
pub fn configured_key<D: Multipathd>(
    daemon: &D,
    alias: &str,
    source: KeySource,
    prkeys: impl FnOnce() -> Option<Key>,
    report: &mut Report,
) -> Key {
    let reply = exchange(daemon, format!("getprkey map {alias}"), report);
    if let Some(k) = reply.as_deref().and_then(keys::parse_getprkey_reply) {
        return k;
    }
    match source {
        KeySource::Value(k) => k,
        KeySource::File => prkeys().unwrap_or_default(),
        KeySource::None => Key::default(),
    }
}

/// Sends `cmd` to multipathd and records the exchange; the reply, if one came.
fn exchange<D: Multipathd>(daemon: &D, cmd: String, report: &mut Report) -> Option<String> {
    let reply = daemon.command(&cmd);
    let out = reply.as_ref().ok().cloned();
    let reply = reply.map_err(|e| {
        // An error with words of its own (an impostor on multipathd's socket) says them.
        e.raw_os_error().unwrap_or_else(|| {
            report.problems.push(e.to_string());
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                libc::EPERM
            } else {
                libc::EIO
            }
        })
    });
    report.daemon.push(DaemonExchange {
        command: cmd,
        reply,
    });
    out
}

/// What RELEASE does after releasing (plain, or as the first half of an unregister).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    None,
    Release,
    ReleaseUnregister,
}

/// One PR OUT for one path: the path, the service action, the parameter list.
type Job<'p> = (usize, OutSa, &'p [u8]);

/// What a REGISTER fan-out came to, as `mpath_prout_reg` counts it.
struct Tally {
    /// Some path answered RESERVATION CONFLICT.
    conflict: bool,
    /// Some path could not be used.
    retryable: bool,
    /// Some path registered (in the first round).
    success: bool,
    /// The first result that is none of those, else SUCCESS.
    status: Mpr,
}

impl Tally {
    /// `after_retry`: the conflicts were retried, and one that stands is then an error like
    /// any other (the first such result decides).
    fn of(results: &[Mpr], after_retry: bool) -> Tally {
        let counted = |r: &Mpr| matches!(r, Mpr::ReservConflict) && !after_retry;
        Tally {
            conflict: results.iter().any(counted),
            retryable: results.contains(&Mpr::Retryable),
            success: results.contains(&Mpr::Success),
            status: results
                .iter()
                .copied()
                .find(|r| !matches!(r, Mpr::Success | Mpr::Retryable) && !counted(r))
                .unwrap_or(Mpr::Success),
        }
    }

    /// Some paths conflicted while others registered, and nothing else went wrong.
    fn only_conflicts_beside_success(&self) -> bool {
        self.conflict && self.success && self.status == Mpr::Success
    }

    /// The REGISTER's result when it failed: a conflict that stands, another error, or no
    /// path registered at all.
    fn failure(&self) -> Option<Mpr> {
        if self.conflict {
            Some(Mpr::ReservConflict)
        } else if self.status != Mpr::Success {
            Some(self.status)
        } else if !self.success {
            Some(Mpr::Other)
        } else {
            None
        }
    }
}

fn scope_type(scope: u8, prtype: u8) -> u8 {
    ((scope & 0x0f) << 4) | (prtype & 0x0f)
}

impl<'a, E: PathExecutor, D: Multipathd> Ctx<'a, E, D> {
    /// A context for one command; the path checker runs on every path when a path is
    /// first needed.
    pub fn new(
        exec: &'a E,
        daemon: &'a D,
        paths: &'a [PathInfo],
        alias: &'a str,
        config: MapConfig,
        key: Key,
        report: Report,
    ) -> Self {
        Ctx {
            exec,
            daemon,
            paths,
            alias,
            config,
            key,
            usable: std::sync::OnceLock::new(),
            report: Mutex::new(report),
        }
    }

    /// The record of what was done.
    pub fn into_report(self) -> Report {
        self.report.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `get_path_info`: the checker's verdict on every path.
    fn usable(&self) -> &[bool] {
        self.usable.get_or_init(|| {
            let verdicts: Vec<bool> = (0..self.paths.len()).map(|i| self.exec.check(i)).collect();
            let devs = self.paths.iter().map(|p| p.dev);
            self.report().checked = devs.zip(verdicts.clone()).collect();
            verdicts
        })
    }

    fn usable_paths(&self) -> impl Iterator<Item = usize> + '_ {
        let usable = self.usable();
        (0..self.paths.len()).filter(move |&i| usable[i])
    }

    fn note(&self, path: usize, opcode: u8, sa: u8, result: Mpr) {
        let dev = self.paths[path].dev;
        self.report().paths.push(PathCommand {
            dev,
            opcode,
            sa,
            result,
        });
    }

    fn tell(&self, cmd: String) -> Option<String> {
        exchange(self.daemon, cmd, &mut self.report())
    }

    /// A set/unset message; whether multipathd said `ok`.
    fn update(&self, cmd: String) -> bool {
        self.tell(cmd).is_some_and(|r| multipathd::is_ok(&r))
    }

    fn prhold(&self) -> Flag {
        Flag::from_reply(
            self.tell(format!("getprhold map {}", self.alias))
                .as_deref(),
        )
    }

    fn set_prkey(&self, key: Key) -> bool {
        if key.key == 0 {
            self.update(format!("unsetprkey map {}", self.alias))
        } else {
            self.update(format!(
                "setprkey map {} key {}",
                self.alias,
                keys::format_key(key)
            ))
        }
    }

    fn prout_path(&self, path: usize, sa: OutSa, st: u8, param: &[u8]) -> Mpr {
        let len = u32::try_from(param.len()).unwrap_or(u32::MAX);
        let r = self
            .exec
            .prout(path, &cdb10(&pr::pr_out_cdb(sa, st >> 4, st, len)), param);
        self.note(path, crate::scsi::cdb::PERSISTENT_RESERVE_OUT, sa as u8, r);
        r
    }

    // ---- PR IN -----------------------------------------------------------------------

    /// `mpath_prin_activepath`: the first usable path that answers SUCCESS or ILLEGAL
    /// REQUEST decides; otherwise the next path is tried.
    pub fn prin(&self, cdb: &[u8; 10], buf: &mut [u8]) -> (Mpr, usize) {
        let mut last = None;
        for i in self.usable_paths() {
            let (r, n) = self.exec.prin(i, cdb, buf);
            self.note(i, cdb[0], cdb[1] & 0x1f, r);
            if matches!(r, Mpr::Success | Mpr::IllegalReq) {
                return (r, n);
            }
            last = Some(r);
        }
        match last {
            None => (Mpr::DmmpError, 0),
            Some(Mpr::Retryable) => (Mpr::Other, 0),
            Some(r) => (r, 0),
        }
    }

    /// READ RESERVATION through the map: the reservation, if any.
    fn read_reservation(&self) -> Result<Option<Reservation>, Mpr> {
        let cdb = cdb10(&pr::pr_in_cdb(InSa::ReadReservation, MAX_PARAM_LEN as u16));
        let mut buf = vec![0u8; MAX_PARAM_LEN];
        match self.prin(&cdb, &mut buf) {
            (Mpr::Success, n) => pr::decode_read_reservation(&buf[..n.min(buf.len())])
                .map(|rr| rr.reservation)
                .map_err(|_| Mpr::Other),
            (r, _) => Err(r),
        }
    }

    /// `check_holding_reservation`: the key is ours, multipathd says we hold the
    /// reservation, and the device says its holder has this key. Gives the reservation.
    fn holding_reservation(&self, key: u64) -> Option<Reservation> {
        if key == 0 || self.prhold() != Flag::Set {
            return None;
        }
        self.read_reservation()
            .ok()
            .flatten()
            .filter(|r| r.key == key)
    }

    // ---- PR OUT ----------------------------------------------------------------------

    /// `do_mpath_persistent_reserve_out`: prologue, the service action, bookkeeping.
    pub fn prout(&mut self, sa: OutSa, scope: u8, prtype: u8, mut params: ProutParams) -> Mpr {
        let old_key = self.key;
        let unregistering = params.service_action_key == 0;
        let register = matches!(sa, OutSa::Register | OutSa::RegisterAndIgnoreExistingKey);
        if matches!(sa, OutSa::RegisterAndMove | OutSa::ReplaceLostReservation) {
            return Mpr::Other;
        }
        // With `reservation_key file`, registering sets the key multipathd keeps.
        let mut prkey_changed = false;
        if self.config.key_source == KeySource::File
            && (sa == OutSa::RegisterAndIgnoreExistingKey
                || (sa == OutSa::Register
                    && (old_key.key == 0
                        || params.reservation_key == 0
                        || params.reservation_key == old_key.key)))
        {
            let new = Key {
                key: params.service_action_key,
                aptpl: params.aptpl,
            };
            if !self.set_prkey(new) {
                return Mpr::DmmpError;
            }
            self.key = new;
            prkey_changed = true;
        }
        let key_ok = if register {
            unregistering || (self.key.key != 0 && self.key.key == params.service_action_key)
        } else {
            self.key.key != 0 && self.key.key == params.reservation_key
        };
        let result = if !key_ok {
            Mpr::SyntaxError
        } else {
            self.service_action(sa, scope, prtype, &mut params, old_key.key, unregistering)
        };
        if result != Mpr::Success && prkey_changed {
            self.set_prkey(old_key);
            self.key = old_key;
        }
        if result == Mpr::Retryable {
            Mpr::Other
        } else {
            result
        }
    }

    fn service_action(
        &mut self,
        sa: OutSa,
        scope: u8,
        prtype: u8,
        params: &mut ProutParams,
        old_key: u64,
        unregistering: bool,
    ) -> Mpr {
        // Each arm gives its result and what multipathd is told of the map if it succeeded.
        let (r, tell): (Mpr, &[&str]) = match sa {
            OutSa::Register | OutSa::RegisterAndIgnoreExistingKey => {
                if sa == OutSa::RegisterAndIgnoreExistingKey {
                    params.reservation_key = self.ignored_key(old_key);
                }
                let mut r = Mpr::Success;
                if unregistering {
                    if let Some(held) = self.holding_reservation(old_key) {
                        r = self.release(old_key, params, scope, held.prout_type, true);
                        if r == Mpr::SuccessUnregister {
                            return self.registered(Mpr::Success, 0);
                        }
                    }
                }
                if r == Mpr::Success {
                    r = self.register(sa, scope, prtype, params);
                }
                return self.registered(r, params.service_action_key);
            }
            OutSa::Reserve => {
                let (mut r, _, failed_paths) = self.common(sa, scope, prtype, params);
                if r != Mpr::Success
                    && failed_paths
                    && self
                        .holding_reservation(self.key.key)
                        .is_some_and(|h| h.prout_type == prtype)
                {
                    r = Mpr::Success;
                }
                (r, &["setprhold"])
            }
            OutSa::Clear => {
                let r = self.common(sa, scope, prtype, params).0;
                if self.config.key_source == KeySource::File {
                    (r, &["unsetprstatus", "unsetprkey"])
                } else {
                    (r, &["unsetprstatus"])
                }
            }
            OutSa::Preempt | OutSa::PreemptAndAbort => {
                let holder = self.read_reservation().ok().flatten().map(|h| h.key);
                let sa_key = params.service_action_key;
                let preempting = holder == Some(sa_key);
                let own = self.key.key;
                let r = if preempting && sa_key == 0 {
                    self.preempt_self(own, 0, sa, Work::None, scope, prtype)
                } else if sa_key == params.reservation_key {
                    self.preempt_self(own, sa_key, sa, Work::None, scope, prtype)
                } else {
                    self.common(sa, scope, prtype, params).0
                };
                (r, if preempting { &["setprhold"] } else { &[] })
            }
            OutSa::Release => {
                let r = self.release(self.key.key, params, scope, prtype, false);
                (r, &["unsetprhold"])
            }
            OutSa::RegisterAndMove | OutSa::ReplaceLostReservation => (Mpr::Other, &[]),
        };
        if r == Mpr::Success {
            for verb in tell {
                self.update(format!("{verb} map {}", self.alias));
            }
        }
        r
    }

    /// Bookkeeping after REGISTER: multipathd registers the key on paths that come back
    /// (`setprstatus`, with the paths done here listed as `maj:min`) or stops doing so.
    fn registered(&self, r: Mpr, sa_key: u64) -> Mpr {
        if r != Mpr::Success {
            return r;
        }
        if sa_key != 0 {
            let list: Vec<String> = self
                .usable_paths()
                .map(|i| self.paths[i].dev.to_string())
                .collect();
            let with_paths = format!(
                "setprstatus map {} pathlist \"{}\"",
                self.alias,
                list.join(" ")
            );
            if self
                .tell(with_paths)
                .is_some_and(|r| !multipathd::is_ok(&r))
            {
                // multipathd before 0.13 answers `fail` to the pathlist form; its own form
                // still has it register the key on paths that come back.
                self.update(format!("setprstatus map {}", self.alias));
            }
        } else {
            self.update(format!("unsetprstatus map {}", self.alias));
        }
        r
    }

    /// `set_ignored_key`: the RESERVATION KEY field sent with REGISTER AND IGNORE (which the
    /// device ignores) is the old key when we hold the reservation with it, so that
    /// [`Self::preempt_missing_path`] can move that reservation to the new key.
    fn ignored_key(&self, old_key: u64) -> u64 {
        if old_key == 0 || self.prhold() == Flag::Unset {
            return 0;
        }
        // An unreadable reservation counts as held (`reservation_key_matches` gives
        // "undefined", which only "no" stops).
        match self.read_reservation() {
            Ok(Some(r)) if r.key != old_key => 0,
            Ok(None) => 0,
            _ => old_key,
        }
    }

    /// `mpath_prout_reg`: REGISTER on every usable path in parallel (one per SCSI host with
    /// ALL_TG_PT), conflicting paths retried with REGISTER AND IGNORE.
    fn register(&self, sa: OutSa, scope: u8, prtype: u8, params: &ProutParams) -> Mpr {
        let chosen = self.register_paths(self.config.all_tg_pt || params.all_tg_pt);
        if chosen.is_empty() {
            return Mpr::DmmpError;
        }
        let st = scope_type(scope, prtype);
        let first = params.encode(sa);
        // Transport IDs are registered once: only the first path gets SPEC_I_PT.
        let rest = ProutParams {
            spec_i_pt: false,
            transport_ids: Vec::new(),
            ..params.clone()
        }
        .encode(sa);
        let jobs: Vec<Job<'_>> = chosen
            .iter()
            .enumerate()
            .map(|(n, &i)| (i, sa, if n == 0 { &first[..] } else { &rest[..] }))
            .collect();
        let Ok(mut results) = self.fan_out(st, &jobs) else {
            return Mpr::ThreadError;
        };
        let mut tally = Tally::of(&results, false);
        if sa == OutSa::Register && tally.only_conflicts_beside_success() {
            if self.retry_conflicts(st, &jobs, &mut results).is_err() {
                return Mpr::ThreadError;
            }
            tally = Tally::of(&results, true);
        }
        if let Some(failed) = tally.failure() {
            return failed;
        }
        if tally.retryable && self.failed_path_alive(&jobs, &results) {
            return Mpr::Other;
        }
        self.preempt_missing_path(params.reservation_key, params.service_action_key);
        Mpr::Success
    }

    /// The usable paths REGISTER goes to: every one, or with ALL_TG_PT the first of each
    /// SCSI host (one registration per initiator port).
    fn register_paths(&self, all_tg_pt: bool) -> Vec<usize> {
        let mut hosts = Vec::new();
        self.usable_paths()
            .filter(|&i| match self.paths[i].host.filter(|_| all_tg_pt) {
                Some(h) if hosts.contains(&h) => false,
                Some(h) => {
                    hosts.push(h);
                    true
                }
                None => true,
            })
            .collect()
    }

    /// multipath-tools ≥ 0.13: the conflicting paths already hold a key of ours (or a stale
    /// one); REGISTER AND IGNORE sets the new key there without a rollback. The paths that
    /// conflicted or failed are retried so; their new results replace the old.
    fn retry_conflicts(
        &self,
        st: u8,
        jobs: &[Job<'_>],
        results: &mut [Mpr],
    ) -> std::io::Result<()> {
        let again: Vec<usize> = (0..jobs.len())
            .filter(|&n| matches!(results[n], Mpr::ReservConflict | Mpr::Retryable))
            .collect();
        let retry: Vec<Job<'_>> = again
            .iter()
            .map(|&n| (jobs[n].0, OutSa::RegisterAndIgnoreExistingKey, jobs[n].2))
            .collect();
        for (&n, r) in again.iter().zip(self.fan_out(st, &retry)?) {
            results[n] = r;
        }
        Ok(())
    }

    /// `check_failed_paths`: whether a path that failed is alive now (it would be left with
    /// the wrong registration).
    fn failed_path_alive(&self, jobs: &[Job<'_>], results: &[Mpr]) -> bool {
        jobs.iter()
            .zip(results)
            .any(|(&(i, _, _), r)| *r == Mpr::Retryable && self.exec.check(i))
    }

    /// Runs PR OUT on several paths at once, results in job order.
    fn fan_out(&self, st: u8, jobs: &[Job<'_>]) -> std::io::Result<Vec<Mpr>> {
        if let [(i, sa, p)] = jobs {
            return Ok(vec![self.prout_path(*i, *sa, st, p)]);
        }
        std::thread::scope(|s| {
            let handles = jobs
                .iter()
                .map(|&(i, sa, p)| {
                    std::thread::Builder::new()
                        .name("mpath-pr".into())
                        .spawn_scoped(s, move || self.prout_path(i, sa, st, p))
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            Ok(handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Mpr::ThreadError))
                .collect())
        })
    }

    /// `mpath_prout_common`: one path at a time, the first that answers decides. Gives the
    /// result, the path that succeeded, and whether some paths were unusable.
    fn common(
        &self,
        sa: OutSa,
        scope: u8,
        prtype: u8,
        params: &ProutParams,
    ) -> (Mpr, Option<usize>, bool) {
        let st = scope_type(scope, prtype);
        let param = params.encode(sa);
        let mut failed_paths = false;
        let mut found = false;
        let mut conflict = false;
        for i in 0..self.paths.len() {
            if !self.usable()[i] {
                failed_paths = true;
                continue;
            }
            found = true;
            match self.prout_path(i, sa, st, &param) {
                Mpr::Success => return (Mpr::Success, Some(i), failed_paths),
                // A RESERVE through another I_T nexus conflicts even when this host holds
                // the reservation through one; a failed path may answer for a stale nexus.
                Mpr::ReservConflict if !self.paths[i].dm_active || sa == OutSa::Reserve => {
                    conflict = true;
                }
                Mpr::Retryable => failed_paths = true,
                other => return (other, None, failed_paths),
            }
        }
        let r = if !found {
            Mpr::DmmpError
        } else if conflict {
            Mpr::ReservConflict
        } else {
            Mpr::Other
        };
        (r, None, failed_paths)
    }

    /// `preempt_missing_path`: after a key change, a reservation still held with the old key
    /// (through a path that could not be re-registered) is moved to the new key.
    /// Its outcome does not change the REGISTER's result (libmpathpersist only logs it).
    fn preempt_missing_path(&self, key: u64, sa_key: u64) {
        if key == 0 || sa_key == 0 {
            self.update(format!("unsetprhold map {}", self.alias));
            return;
        }
        if key == sa_key {
            return;
        }
        let held = match self.read_reservation() {
            Ok(Some(h)) => h,
            Ok(None) => {
                self.update(format!("unsetprhold map {}", self.alias));
                return;
            }
            Err(_) => return,
        };
        if held.key != key {
            if held.key != sa_key {
                self.update(format!("unsetprhold map {}", self.alias));
            }
            return;
        }
        if self.prhold() != Flag::Set {
            return;
        }
        let params = ProutParams::keys(sa_key, key);
        self.common(OutSa::Preempt, held.scope, held.prout_type, &params);
    }

    /// `mpath_prout_rel`: RELEASE (with the caller's parameter list) on every usable path;
    /// if the reservation is still held with our `key`, it is held through an unusable path
    /// and is moved to a usable one and released there.
    fn release(
        &self,
        key: u64,
        params: &ProutParams,
        scope: u8,
        prtype: u8,
        unregister: bool,
    ) -> Mpr {
        let chosen: Vec<usize> = self.usable_paths().collect();
        if chosen.is_empty() {
            return Mpr::DmmpError;
        }
        let param = params.encode(OutSa::Release);
        let jobs: Vec<Job<'_>> = chosen
            .iter()
            .map(|&i| (i, OutSa::Release, &param[..]))
            .collect();
        let Ok(results) = self.fan_out(scope_type(scope, prtype), &jobs) else {
            return Mpr::ThreadError;
        };
        if !results.contains(&Mpr::Success) {
            if results.contains(&Mpr::ReservConflict) {
                return Mpr::ReservConflict;
            }
            return results[0];
        }
        let Some(held) = self.holding_reservation(key) else {
            return Mpr::Success;
        };
        if held.prout_type != prtype {
            return Mpr::ReservConflict;
        }
        let work = if unregister {
            Work::ReleaseUnregister
        } else {
            Work::Release
        };
        self.preempt_self(key, key, OutSa::Preempt, work, scope, prtype)
    }

    /// `do_preempt_self`: with the map suspended, preempt our own key through a usable
    /// path (which moves the reservation there and drops our other registrations), release
    /// there if asked, then register every path again (or unregister the last one).
    /// `key` is our key: the configured one, or the one being unregistered (the prkeys
    /// file may already say 0 then).
    fn preempt_self(
        &self,
        key: u64,
        sa_key: u64,
        sa: OutSa,
        work: Work,
        scope: u8,
        prtype: u8,
    ) -> Mpr {
        let Some(suspended) = Suspension::begin(self.exec) else {
            return Mpr::Other;
        };
        let params = ProutParams::keys(key, sa_key);
        let (r, path, _) = self.common(sa, scope, prtype, &params);
        let Some(path) = path.filter(|_| r == Mpr::Success) else {
            // Resumed as `suspended` goes.
            return r;
        };
        let st = scope_type(scope, prtype);
        let mut release = Mpr::Success;
        if work != Work::None {
            let rel = ProutParams::keys(key, 0).encode(OutSa::Release);
            release = self.prout_path(path, OutSa::Release, st, &rel);
            if release == Mpr::Success && work == Work::ReleaseUnregister {
                let sa = OutSa::RegisterAndIgnoreExistingKey;
                release = self.prout_path(path, sa, st, &ProutParams::keys(key, 0).encode(sa));
            }
        }
        let mut reg = Mpr::Success;
        if work != Work::ReleaseUnregister {
            // As libmpathpersist: RESERVATION KEY and SA flags zero (REGISTER AND IGNORE
            // ignores the former; APTPL was set by the original REGISTER).
            let params = ProutParams::keys(0, key);
            reg = self.register(OutSa::RegisterAndIgnoreExistingKey, scope, prtype, &params);
        }
        let resumed = suspended.resume();
        let r = if release != Mpr::Success {
            release
        } else {
            reg
        };
        match r {
            Mpr::Success if !resumed => Mpr::Other,
            Mpr::Success if work == Work::ReleaseUnregister => Mpr::SuccessUnregister,
            r => r,
        }
    }
}

/// A map suspended by [`PathExecutor::suspend`]: resumed by [`Suspension::resume`], or when
/// dropped, so every way out of the code between (an early return, a panic unwinding) resumes
/// it; a suspended map holds every write of the VM until someone resumes it. With the release
/// profile's `panic = "abort"` nothing unwinds: the real executor's panic hook resumes the
/// maps it suspended ([`super::suspended`]).
pub struct Suspension<'e, E: PathExecutor> {
    exec: &'e E,
    active: bool,
}

impl<'e, E: PathExecutor> Suspension<'e, E> {
    /// Suspends the map; `None` when that failed (nothing to resume then).
    pub fn begin(exec: &'e E) -> Option<Self> {
        // Built only after a suspend that worked: built and dropped, it would resume.
        exec.suspend().then(|| Suspension { exec, active: true })
    }

    /// Resumes the map now: whether that worked.
    pub fn resume(mut self) -> bool {
        self.active = false;
        self.exec.resume()
    }
}

impl<E: PathExecutor> Drop for Suspension<'_, E> {
    fn drop(&mut self) {
        if self.active {
            self.exec.resume();
        }
    }
}

/// The 10 bytes of a PR IN or PR OUT CDB (the helper protocol pads them to 16): what
/// libmpathpersist sends to a path.
pub fn cdb10(cdb: &[u8; 16]) -> [u8; 10] {
    let mut ten = [0u8; 10];
    ten.copy_from_slice(&cdb[..10]);
    ten
}

#[cfg(test)]
mod tests;
