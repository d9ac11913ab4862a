//! The algorithm's decisions against a scripted set of paths and a fake multipathd.

use std::io;
use std::sync::Mutex;

use super::*;
use crate::backend::multipath::keys::{Key, KeySource, MapConfig};

type Answer = Box<dyn Fn(usize, OutSa, &ProutParams) -> Mpr + Sync>;

/// One PR OUT as a path saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    path: usize,
    sa: OutSa,
    key: u64,
    sa_key: u64,
    flags: u8,
    len: usize,
}

struct FakePaths {
    up: Vec<bool>,
    answer: Answer,
    /// What READ RESERVATION reports: key, scope/type byte.
    reservation: Mutex<Option<(u64, u8)>>,
    /// Per-path PR IN answers (default SUCCESS).
    prin_answer: Vec<Mpr>,
    sent: Mutex<Vec<Sent>>,
    events: Mutex<Vec<&'static str>>,
}

impl FakePaths {
    fn new(
        up: &[bool],
        answer: impl Fn(usize, OutSa, &ProutParams) -> Mpr + Sync + 'static,
    ) -> Self {
        FakePaths {
            up: up.to_vec(),
            answer: Box::new(answer),
            reservation: Mutex::new(None),
            prin_answer: vec![Mpr::Success; up.len()],
            sent: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
        }
    }
    fn all_ok(up: &[bool]) -> Self {
        Self::new(up, |_, _, _| Mpr::Success)
    }
    /// Every PR OUT answers `r`.
    fn all_answer(up: &[bool], r: Mpr) -> Self {
        Self::new(up, move |_, _, _| r)
    }
    /// PR OUT on `path` answers `r`, on the others SUCCESS.
    fn path_answers(up: &[bool], path: usize, r: Mpr) -> Self {
        Self::new(up, move |p, _, _| if p == path { r } else { Mpr::Success })
    }
    /// READ RESERVATION reports this key and scope/type byte.
    fn reserved(self, key: u64, st: u8) -> Self {
        *self.reservation.lock().unwrap() = Some((key, st));
        self
    }
    fn events(&self) -> Vec<&'static str> {
        self.events.lock().unwrap().clone()
    }
    fn sent(&self) -> Vec<Sent> {
        let mut s = self.sent.lock().unwrap().clone();
        // Parallel fan-out: order by path within the same service action run.
        s.sort_by_key(|x| (x.sa as u8, x.path));
        s
    }
    fn sent_in_order(&self) -> Vec<(usize, OutSa)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|s| (s.path, s.sa))
            .collect()
    }
}

impl PathExecutor for FakePaths {
    fn check(&self, path: usize) -> bool {
        self.up[path]
    }
    fn prout(&self, path: usize, cdb: &[u8; 10], param: &[u8]) -> Mpr {
        let sa = OutSa::from_byte(cdb[1]).unwrap();
        let p = ProutParams::decode(cdb[1], param).unwrap();
        self.sent.lock().unwrap().push(Sent {
            path,
            sa,
            key: p.reservation_key,
            sa_key: p.service_action_key,
            flags: param[20],
            len: param.len(),
        });
        (self.answer)(path, sa, &p)
    }
    fn prin(&self, path: usize, cdb: &[u8; 10], buf: &mut [u8]) -> (Mpr, usize) {
        let r = self.prin_answer[path];
        if r != Mpr::Success {
            return (r, 0);
        }
        buf[..8].fill(0);
        if cdb[1] == InSa::ReadReservation as u8 {
            if let Some((key, st)) = *self.reservation.lock().unwrap() {
                buf[7] = 16;
                buf[8..16].copy_from_slice(&key.to_be_bytes());
                buf[21] = st;
                return (Mpr::Success, 24);
            }
        }
        (Mpr::Success, 8)
    }
    fn suspend(&self) -> bool {
        self.events.lock().unwrap().push("suspend");
        true
    }
    fn resume(&self) -> bool {
        self.events.lock().unwrap().push("resume");
        true
    }
}

struct FakeDaemon {
    running: bool,
    prhold: &'static str,
    prkey: &'static str,
    /// Answers `fail` to the commands multipathd before 0.13 does not know.
    old: bool,
    log: Mutex<Vec<String>>,
}

impl FakeDaemon {
    fn up(prhold: &'static str) -> Self {
        FakeDaemon {
            running: true,
            prhold,
            prkey: "none\n",
            old: false,
            log: Mutex::new(Vec::new()),
        }
    }
    fn down() -> Self {
        FakeDaemon {
            running: false,
            ..Self::up("")
        }
    }
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Multipathd for FakeDaemon {
    fn command(&self, cmd: &str) -> io::Result<String> {
        self.log.lock().unwrap().push(cmd.to_owned());
        if !self.running {
            return Err(io::Error::from_raw_os_error(libc::ECONNREFUSED));
        }
        let unknown = cmd.contains("prhold") || cmd.contains(" pathlist ");
        Ok(if self.old && unknown {
            "fail\n".to_owned()
        } else if cmd.starts_with("getprhold") {
            self.prhold.to_owned()
        } else if cmd.starts_with("getprkey") {
            self.prkey.to_owned()
        } else {
            "ok\n".to_owned()
        })
    }
}

fn paths(n: usize) -> Vec<PathInfo> {
    (0..n)
        .map(|i| PathInfo {
            dev: DevNum {
                major: 8,
                minor: 16 * (i as u32 + 1),
            },
            host: Some(i as u32),
            dm_active: true,
        })
        .collect()
}

fn conf_key(key: u64) -> MapConfig {
    MapConfig {
        key_source: KeySource::Value(Key { key, aptpl: false }),
        all_tg_pt: false,
    }
}

fn key(key: u64) -> Key {
    Key { key, aptpl: false }
}

fn params(key: u64, sa_key: u64) -> ProutParams {
    ProutParams::keys(key, sa_key)
}

/// A context for map `mpatha` with this configuration and configured key.
fn ctx<'a, E: PathExecutor>(
    exec: &'a E,
    daemon: &'a FakeDaemon,
    infos: &'a [PathInfo],
    config: MapConfig,
    configured: u64,
) -> Ctx<'a, E, FakeDaemon> {
    let report = Report::default();
    Ctx::new(
        exec,
        daemon,
        infos,
        "mpatha",
        config,
        key(configured),
        report,
    )
}

/// READ KEYS through a fresh context into a 64-byte buffer: the result and byte count, and
/// the report.
fn run_prin(exec: &FakePaths, daemon: &FakeDaemon, infos: &[PathInfo]) -> ((Mpr, usize), Report) {
    let ctx = ctx(exec, daemon, infos, MapConfig::default(), 0);
    let mut buf = [0u8; 64];
    let r = ctx.prin(&cdb10(&pr::pr_in_cdb(InSa::ReadKeys, 8192)), &mut buf);
    (r, ctx.into_report())
}

fn run_prout(
    exec: &FakePaths,
    daemon: &FakeDaemon,
    infos: &[PathInfo],
    config: MapConfig,
    configured: u64,
    sa: OutSa,
    p: ProutParams,
) -> (Mpr, Report) {
    let mut ctx = ctx(exec, daemon, infos, config, configured);
    let r = ctx.prout(sa, 0, 5, p);
    (r, ctx.into_report())
}

/// [`run_prout`] with key 0xab configured.
fn run_on(
    exec: &FakePaths,
    daemon: &FakeDaemon,
    infos: &[PathInfo],
    sa: OutSa,
    p: ProutParams,
) -> (Mpr, Report) {
    run_prout(exec, daemon, infos, conf_key(0xab), 0xab, sa, p)
}

/// [`run_on`] one path per entry of `exec.up`.
fn run(exec: &FakePaths, daemon: &FakeDaemon, sa: OutSa, p: ProutParams) -> (Mpr, Report) {
    run_on(exec, daemon, &paths(exec.up.len()), sa, p)
}

const REG: OutSa = OutSa::Register;
const REG_IGN: OutSa = OutSa::RegisterAndIgnoreExistingKey;
const RES: OutSa = OutSa::Reserve;

#[test]
fn register_goes_to_every_usable_path_and_tells_multipathd() {
    let exec = FakePaths::all_ok(&[true, false, true]);
    let daemon = FakeDaemon::up("unset\n");
    let (r, report) = run(&exec, &daemon, REG, params(0, 0xab));
    assert_eq!(r, Mpr::Success);
    let sent = exec.sent();
    assert_eq!(sent.iter().map(|s| s.path).collect::<Vec<_>>(), [0, 2]);
    assert!(
        sent.iter()
            .all(|s| s.sa == REG && s.sa_key == 0xab && s.len == 24)
    );
    assert_eq!(
        daemon.log(),
        [
            "unsetprhold map mpatha",
            "setprstatus map mpatha pathlist \"8:16 8:48\""
        ]
    );
    let devs: Vec<_> = report.paths.iter().map(|p| p.dev.to_string()).collect();
    assert_eq!(devs.len(), 2);
    assert!(devs.contains(&"8:16".to_owned()) && devs.contains(&"8:48".to_owned()));
    assert!(!report.multipathd_unreachable());
}

#[test]
fn all_tg_pt_registers_once_per_host_and_spec_i_pt_once() {
    let exec = FakePaths::all_ok(&[true; 4]);
    let daemon = FakeDaemon::up("unset\n");
    let mut infos = paths(4);
    for (i, p) in infos.iter_mut().enumerate() {
        p.host = Some(i as u32 / 2);
    }
    let p = ProutParams {
        all_tg_pt: true,
        transport_ids: vec![6, 0, 0, 0],
        ..params(0, 0xab)
    };
    let (r, _) = run_on(&exec, &daemon, &infos, REG, p);
    assert_eq!(r, Mpr::Success);
    let sent = exec.sent();
    assert_eq!(sent.iter().map(|s| s.path).collect::<Vec<_>>(), [0, 2]);
    assert_eq!((sent[0].flags, sent[0].len), (0x0c, 32));
    assert_eq!((sent[1].flags, sent[1].len), (0x04, 24));
    // all_tg_pt from multipath.conf does the same without the flag.
    let exec = FakePaths::all_ok(&[true; 4]);
    let config = MapConfig {
        all_tg_pt: true,
        ..conf_key(0xab)
    };
    run_prout(&exec, &daemon, &infos, config, 0xab, REG, params(0, 0xab));
    assert_eq!(exec.sent().len(), 2);
}

#[test]
fn register_conflicts_are_retried_with_register_and_ignore() {
    let exec = FakePaths::new(&[true, true, true], |path, sa, _| {
        if path == 1 && sa == REG {
            Mpr::ReservConflict
        } else {
            Mpr::Success
        }
    });
    let daemon = FakeDaemon::up("unset\n");
    let (r, _) = run(&exec, &daemon, REG, params(0, 0xab));
    assert_eq!(r, Mpr::Success);
    let sent = exec.sent();
    assert_eq!(sent.len(), 4);
    assert_eq!(
        (sent[3].path, sent[3].sa, sent[3].sa_key),
        (1, REG_IGN, 0xab)
    );
    // No rollback: nothing was unregistered.
    assert!(sent.iter().all(|s| s.sa_key == 0xab));
}

#[test]
fn register_conflicting_everywhere_is_a_conflict() {
    let exec = FakePaths::all_answer(&[true, true], Mpr::ReservConflict);
    let daemon = FakeDaemon::up("unset\n");
    let (r, _) = run(&exec, &daemon, REG, params(0, 0xab));
    assert_eq!(r, Mpr::ReservConflict);
    assert_eq!(exec.sent().len(), 2);
    assert!(!daemon.log().iter().any(|c| c.starts_with("setprstatus")));
}

#[test]
fn register_with_a_path_that_failed_but_is_alive_is_an_error() {
    // Path 1 gives a transport error; the checker still says it is up.
    let exec = FakePaths::path_answers(&[true, true], 1, Mpr::Retryable);
    let daemon = FakeDaemon::up("unset\n");
    let (r, _) = run(&exec, &daemon, REG, params(0, 0xab));
    assert_eq!(r, Mpr::Other);
    let exec = FakePaths::all_answer(&[true], Mpr::Retryable);
    let (r, _) = run(&exec, &daemon, REG, params(0, 0xab));
    assert_eq!(r, Mpr::Other);
}

#[test]
fn key_rules() {
    let daemon = FakeDaemon::up("unset\n");
    // (case, configured key, service action, RESERVATION KEY, SERVICE ACTION KEY, result)
    let cases = [
        ("no key: register", 0, REG, 0, 0xab, Mpr::SyntaxError),
        ("no key: unregister", 0, REG, 0xab, 0, Mpr::Success),
        ("other key: register", 0xab, REG, 0, 0xcd, Mpr::SyntaxError),
        ("other key: reserve", 0xab, RES, 0xcd, 0, Mpr::SyntaxError),
    ];
    for (case, configured, sa, k, sa_k, want) in cases {
        let exec = FakePaths::all_ok(&[true, true]);
        let config = if configured == 0 {
            MapConfig::default()
        } else {
            conf_key(configured)
        };
        let p = params(k, sa_k);
        let (r, _) = run_prout(&exec, &daemon, &paths(2), config, configured, sa, p);
        assert_eq!(r, want, "{case}");
        // Refused ones reach no path; the unregister goes to both.
        let reached = if want == Mpr::Success { 2 } else { 0 };
        assert_eq!(exec.sent().len(), reached, "{case}");
    }
}

#[test]
fn prkeys_file_source_updates_multipathd_first() {
    let file = MapConfig {
        key_source: KeySource::File,
        all_tg_pt: false,
    };
    let infos = paths(1);
    let exec = FakePaths::all_ok(&[true]);
    let daemon = FakeDaemon::up("unset\n");
    let p = ProutParams {
        aptpl: true,
        ..params(0, 0x12)
    };
    let (r, _) = run_prout(&exec, &daemon, &infos, file, 0, REG, p);
    assert_eq!(r, Mpr::Success);
    assert_eq!(daemon.log()[0], "setprkey map mpatha key 12:aptpl");
    // Without multipathd nothing reaches the device.
    let exec = FakePaths::all_ok(&[true]);
    let daemon = FakeDaemon::down();
    let (r, report) = run_prout(&exec, &daemon, &infos, file, 0, REG, params(0, 0x12));
    assert_eq!(r, Mpr::DmmpError);
    assert!(exec.sent().is_empty());
    assert!(report.multipathd_unreachable());
    // A failed REGISTER puts the old key back.
    let exec = FakePaths::all_answer(&[true], Mpr::ReservConflict);
    let daemon = FakeDaemon::up("unset\n");
    let (r, _) = run_prout(&exec, &daemon, &infos, file, 0x5, REG_IGN, params(0, 0x12));
    assert_eq!(r, Mpr::ReservConflict);
    let log = daemon.log();
    assert_eq!(log.first().unwrap(), "setprkey map mpatha key 12");
    assert_eq!(log.last().unwrap(), "setprkey map mpatha key 5");
    // CLEAR forgets the key.
    let exec = FakePaths::all_ok(&[true]);
    let daemon = FakeDaemon::up("unset\n");
    let p = params(0x5, 0);
    let (r, _) = run_prout(&exec, &daemon, &infos, file, 0x5, OutSa::Clear, p);
    assert_eq!(r, Mpr::Success);
    assert_eq!(
        daemon.log(),
        ["unsetprstatus map mpatha", "unsetprkey map mpatha"]
    );
}

#[test]
fn without_multipathd_a_configured_key_still_works() {
    let exec = FakePaths::all_ok(&[true, true]);
    let daemon = FakeDaemon::down();
    let (r, report) = run(&exec, &daemon, REG, params(0, 0xab));
    assert_eq!(r, Mpr::Success);
    assert!(report.multipathd_unreachable());
}

#[test]
fn reserve_tolerates_conflicts_and_goes_to_one_path() {
    let exec = FakePaths::path_answers(&[true, true, true], 0, Mpr::ReservConflict);
    let daemon = FakeDaemon::up("unset\n");
    let (r, _) = run(&exec, &daemon, RES, params(0xab, 0));
    assert_eq!(r, Mpr::Success);
    assert_eq!(exec.sent_in_order(), [(0, RES), (1, RES)]);
    assert_eq!(daemon.log(), ["setprhold map mpatha"]);
}

#[test]
fn clear_conflict_on_an_active_path_decides() {
    let exec = FakePaths::all_answer(&[true, true], Mpr::ReservConflict);
    let daemon = FakeDaemon::up("unset\n");
    let (r, _) = run(&exec, &daemon, OutSa::Clear, params(0xab, 0));
    assert_eq!(r, Mpr::ReservConflict);
    assert_eq!(exec.sent().len(), 1);
    // Through a failed path (checker up, kernel F) the next path is tried.
    let exec = FakePaths::path_answers(&[true, true], 0, Mpr::ReservConflict);
    let mut infos = paths(2);
    infos[0].dm_active = false;
    let (r, _) = run_on(&exec, &daemon, &infos, OutSa::Clear, params(0xab, 0));
    assert_eq!(r, Mpr::Success);
    assert_eq!(exec.sent().len(), 2);
}

#[test]
fn retryable_everywhere_is_other_and_no_path_is_dmmp_error() {
    let exec = FakePaths::all_answer(&[true, true], Mpr::Retryable);
    let daemon = FakeDaemon::up("unset\n");
    let (r, _) = run(&exec, &daemon, RES, params(0xab, 0));
    assert_eq!(r, Mpr::Other);
    let exec = FakePaths::all_ok(&[false, false]);
    let (r, _) = run(&exec, &daemon, RES, params(0xab, 0));
    assert_eq!(r, Mpr::DmmpError);
    let (r, _) = run(&exec, &daemon, REG, params(0, 0xab));
    assert_eq!(r, Mpr::DmmpError);
}

#[test]
fn release_goes_to_all_paths_and_nothing_more_when_not_held() {
    let exec = FakePaths::all_ok(&[true, true, false]);
    let daemon = FakeDaemon::up("set\n");
    let (r, _) = run(&exec, &daemon, OutSa::Release, params(0xab, 0));
    assert_eq!(r, Mpr::Success);
    let sent = exec.sent();
    assert_eq!(
        sent.iter().map(|s| (s.path, s.sa)).collect::<Vec<_>>(),
        [(0, OutSa::Release), (1, OutSa::Release)]
    );
    assert!(exec.events().is_empty());
    assert_eq!(daemon.log().last().unwrap(), "unsetprhold map mpatha");
}

#[test]
fn release_held_through_a_dead_path_preempts_self() {
    // Still reserved by our key after the broadcast RELEASE: the holder is path 2.
    let exec = FakePaths::all_ok(&[true, true, false]).reserved(0xab, 0x05);
    let daemon = FakeDaemon::up("set\n");
    let (r, _) = run(&exec, &daemon, OutSa::Release, params(0xab, 0));
    assert_eq!(r, Mpr::Success);
    assert_eq!(
        exec.sent_in_order()[2..4],
        [(0, OutSa::Preempt), (0, OutSa::Release)]
    );
    let sent = exec.sent();
    assert_eq!(sent.iter().filter(|s| s.sa == REG_IGN).count(), 2);
    assert!(
        sent.iter()
            .filter(|s| s.sa == REG_IGN)
            .all(|s| s.sa_key == 0xab)
    );
    assert_eq!(exec.events(), ["suspend", "resume"]);
    // A different type held is a conflict, without touching the map.
    let exec = FakePaths::all_ok(&[true, false]).reserved(0xab, 0x01);
    let (r, _) = run(&exec, &daemon, OutSa::Release, params(0xab, 0));
    assert_eq!(r, Mpr::ReservConflict);
    assert!(exec.events().is_empty());
    // multipathd not saying we hold it: no workaround.
    let exec = FakePaths::all_ok(&[true, false]).reserved(0xab, 0x05);
    let daemon = FakeDaemon::down();
    let (r, _) = run(&exec, &daemon, OutSa::Release, params(0xab, 0));
    assert_eq!(r, Mpr::Success);
    assert!(exec.events().is_empty());
}

#[test]
fn unregister_while_holding_releases_first() {
    let exec = FakePaths::all_ok(&[true, false]).reserved(0xab, 0x05);
    let daemon = FakeDaemon::up("set\n");
    let (r, _) = run(&exec, &daemon, REG, params(0xab, 0));
    assert_eq!(r, Mpr::Success);
    let order = exec.sent_in_order();
    // RELEASE broadcast, PREEMPT self, RELEASE and unregister on the surviving path.
    assert_eq!(
        order,
        [
            (0, OutSa::Release),
            (0, OutSa::Preempt),
            (0, OutSa::Release),
            (0, REG_IGN)
        ]
    );
    assert_eq!(daemon.log().last().unwrap(), "unsetprstatus map mpatha");
}

#[test]
fn preempt_of_own_key_suspends_and_reregisters() {
    let exec = FakePaths::all_ok(&[true, true]);
    let daemon = FakeDaemon::up("unset\n");
    let (r, _) = run(&exec, &daemon, OutSa::Preempt, params(0xab, 0xab));
    assert_eq!(r, Mpr::Success);
    let sent = exec.sent();
    assert_eq!(sent.iter().filter(|s| s.sa == OutSa::Preempt).count(), 1);
    assert_eq!(sent.iter().filter(|s| s.sa == REG_IGN).count(), 2);
    assert_eq!(exec.events(), ["suspend", "resume"]);
    // Preempting another key: one path, setprhold when that key held the reservation.
    let exec = FakePaths::all_ok(&[true, true]).reserved(0xcd, 0x05);
    let (r, _) = run(&exec, &daemon, OutSa::Preempt, params(0xab, 0xcd));
    assert_eq!(r, Mpr::Success);
    assert_eq!(exec.sent_in_order(), [(0, OutSa::Preempt)]);
    assert_eq!(daemon.log().last().unwrap(), "setprhold map mpatha");
}

#[test]
fn key_change_moves_a_reservation_left_with_the_old_key() {
    let exec = FakePaths::all_ok(&[true, true]).reserved(0xab, 0x05);
    let daemon = FakeDaemon::up("set\n");
    let p = params(0xab, 0xcd);
    let (r, _) = run_prout(&exec, &daemon, &paths(2), conf_key(0xcd), 0xcd, REG, p);
    assert_eq!(r, Mpr::Success);
    let sent = exec.sent();
    let preempt: Vec<_> = sent.iter().filter(|s| s.sa == OutSa::Preempt).collect();
    assert_eq!(preempt.len(), 1);
    assert_eq!((preempt[0].key, preempt[0].sa_key), (0xcd, 0xab));
}

#[test]
fn prin_tries_the_next_path() {
    let mut exec = FakePaths::all_ok(&[true, true]);
    exec.prin_answer = vec![Mpr::Retryable, Mpr::Success];
    let daemon = FakeDaemon::up("unset\n");
    let infos = paths(2);
    let (r, report) = run_prin(&exec, &daemon, &infos);
    assert_eq!(r, (Mpr::Success, 8));
    assert_eq!(report.paths.len(), 2);
    assert!(daemon.log().is_empty());

    exec.prin_answer = vec![Mpr::IllegalReq, Mpr::Success];
    assert_eq!(run_prin(&exec, &daemon, &infos).0.0, Mpr::IllegalReq);
    exec.prin_answer = vec![Mpr::Retryable, Mpr::Retryable];
    assert_eq!(run_prin(&exec, &daemon, &infos).0.0, Mpr::Other);
    exec.prin_answer = vec![Mpr::Retryable, Mpr::SenseNotReady];
    assert_eq!(run_prin(&exec, &daemon, &infos).0.0, Mpr::SenseNotReady);
    exec.up = vec![false, false];
    assert_eq!(run_prin(&exec, &daemon, &infos).0.0, Mpr::DmmpError);
}

#[test]
fn configured_key_sources() {
    let mut report = Report::default();
    let mut up = FakeDaemon::up("unset\n");
    up.prkey = "0x1f:aptpl\n";
    let down = FakeDaemon::down();
    let answered = Key {
        key: 0x1f,
        aptpl: true,
    };
    // (case, multipathd, configured source, prkeys file, key)
    let (none, file, value) = (KeySource::None, KeySource::File, KeySource::Value(key(7)));
    let cases = [
        ("multipathd's answer", &up, none, None, answered),
        ("a configured value", &down, value, None, key(7)),
        ("the prkeys file", &down, file, Some(key(9)), key(9)),
        ("no key anywhere", &down, none, Some(key(9)), Key::default()),
    ];
    for (case, daemon, source, prkeys, want) in cases {
        let k = configured_key(daemon, "mpatha", source, || prkeys, &mut report);
        assert_eq!(k, want, "{case}");
    }
    assert!(report.multipathd_unreachable());
}

#[test]
fn cdbs_as_libmpathpersist_builds_them() {
    assert_eq!(
        cdb10(&pr::pr_in_cdb(InSa::ReadReservation, MAX_PARAM_LEN as u16)),
        [0x5e, 1, 0, 0, 0, 0, 0, 0x20, 0, 0]
    );
    assert_eq!(
        cdb10(&pr::pr_out_cdb(REG_IGN, 0, 0x05, 24)),
        [0x5f, 6, 5, 0, 0, 0, 0, 0, 24, 0]
    );
    // TransportIDs go only with SPEC_I_PT.
    let mut list = params(1, 2).encode(REG);
    list[20] = 1;
    list.extend_from_slice(&[0, 0, 0, 4, 9, 9, 9, 9]);
    let e = ProutParams::decode(REG as u8, &list).unwrap().encode(REG);
    assert_eq!(e.len(), 24);
    assert_eq!((e[7], e[15], e[20]), (1, 2, 1));
}

#[test]
fn reserve_held_through_a_dead_path_counts_as_done() {
    let exec = FakePaths::all_answer(&[true, false], Mpr::ReservConflict).reserved(0xab, 0x05);
    let daemon = FakeDaemon::up("set\n");
    let (r, _) = run(&exec, &daemon, RES, params(0xab, 0));
    assert_eq!(r, Mpr::Success);
    // Another type held: the conflict stands.
    *exec.reservation.lock().unwrap() = Some((0xab, 0x01));
    let (r, _) = run(&exec, &daemon, RES, params(0xab, 0));
    assert_eq!(r, Mpr::ReservConflict);
    // All paths up: nothing to fall back on.
    let exec = FakePaths::all_answer(&[true, true], Mpr::ReservConflict).reserved(0xab, 0x05);
    let (r, _) = run(&exec, &daemon, RES, params(0xab, 0));
    assert_eq!(r, Mpr::ReservConflict);
}

#[test]
fn key_errors_touch_no_path() {
    struct NoCheck(FakePaths);
    impl PathExecutor for NoCheck {
        fn check(&self, _: usize) -> bool {
            panic!("the checker ran before the key checks");
        }
        fn prout(&self, p: usize, cdb: &[u8; 10], param: &[u8]) -> Mpr {
            self.0.prout(p, cdb, param)
        }
        fn prin(&self, p: usize, cdb: &[u8; 10], buf: &mut [u8]) -> (Mpr, usize) {
            self.0.prin(p, cdb, buf)
        }
        fn suspend(&self) -> bool {
            true
        }
        fn resume(&self) -> bool {
            true
        }
    }
    let exec = NoCheck(FakePaths::all_ok(&[true]));
    let daemon = FakeDaemon::up("unset\n");
    let infos = paths(1);
    let mut ctx = ctx(&exec, &daemon, &infos, conf_key(0xab), 0xab);
    assert_eq!(
        ctx.prout(OutSa::Clear, 0, 0, params(0xcd, 0)),
        Mpr::SyntaxError
    );
    assert_eq!(
        ctx.prout(OutSa::RegisterAndMove, 0, 0, params(0xab, 0)),
        Mpr::Other
    );
}

#[test]
fn report_lines_name_paths_checks_and_multipathd() {
    let exec = FakePaths::all_ok(&[true, false]);
    let daemon = FakeDaemon::down();
    let (r, report) = run(&exec, &daemon, REG, params(0, 0xab));
    assert_eq!(r, Mpr::Success);
    let lines = report.lines();
    assert_eq!(lines[0], "path check: 8:16 up, 8:32 down");
    assert_eq!(lines[1], "PR OUT Register on path 8:16: success");
    assert!(
        lines[2].starts_with("multipathd 'unsetprhold map mpatha': no answer ("),
        "{lines:?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("multipathd is not reachable")
    );
}

#[test]
fn an_older_multipathd_is_told_the_pr_status_in_its_own_form() {
    let exec = FakePaths::all_ok(&[true, true]);
    let daemon = FakeDaemon {
        old: true,
        ..FakeDaemon::up("")
    };
    let (r, _) = run(&exec, &daemon, REG, params(0, 0xab));
    assert_eq!(r, Mpr::Success);
    let log = daemon.log();
    assert_eq!(
        &log[log.len() - 2..],
        [
            "setprstatus map mpatha pathlist \"8:16 8:32\"",
            "setprstatus map mpatha"
        ]
    );
}

#[test]
fn preempt_self_resumes_the_map_after_an_early_return() {
    // PREEMPT of our own key answered with a conflict on every path: the command ends before
    // re-registering, and the map is resumed all the same.
    let exec = FakePaths::new(&[true, true], |_, sa, _| {
        if sa == OutSa::Preempt {
            Mpr::ReservConflict
        } else {
            Mpr::Success
        }
    });
    let infos = paths(2)
        .into_iter()
        .map(|p| PathInfo {
            dm_active: false,
            ..p
        })
        .collect::<Vec<_>>();
    let daemon = FakeDaemon::up("unset\n");
    let (r, _) = run_on(&exec, &daemon, &infos, OutSa::Preempt, params(0xab, 0xab));
    assert_eq!(r, Mpr::ReservConflict);
    assert_eq!(exec.events(), ["suspend", "resume"]);
}

#[test]
#[cfg(panic = "unwind")]
fn preempt_self_resumes_the_map_when_a_panic_unwinds() {
    // A bug between suspend and resume: the PREEMPT on the path panics.
    let exec = FakePaths::new(&[true, true], |_, sa, _| {
        assert_ne!(sa, OutSa::Preempt, "a bug while the map is suspended");
        Mpr::Success
    });
    let daemon = FakeDaemon::up("unset\n");
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(&exec, &daemon, OutSa::Preempt, params(0xab, 0xab))
    }));
    assert!(unwound.is_err());
    assert_eq!(exec.events(), ["suspend", "resume"]);
}

#[test]
fn a_failed_suspend_is_not_resumed() {
    struct NoSuspend(Mutex<Vec<&'static str>>);
    impl PathExecutor for NoSuspend {
        fn check(&self, _: usize) -> bool {
            true
        }
        fn prout(&self, _: usize, _: &[u8; 10], _: &[u8]) -> Mpr {
            Mpr::Success
        }
        fn prin(&self, _: usize, _: &[u8; 10], _: &mut [u8]) -> (Mpr, usize) {
            (Mpr::Success, 0)
        }
        fn suspend(&self) -> bool {
            self.0.lock().unwrap().push("suspend");
            false
        }
        fn resume(&self) -> bool {
            self.0.lock().unwrap().push("resume");
            true
        }
    }
    let exec = NoSuspend(Mutex::new(Vec::new()));
    assert!(Suspension::begin(&exec).is_none());
    assert_eq!(*exec.0.lock().unwrap(), ["suspend"]);
}

#[test]
fn an_impostor_counts_as_no_multipathd_and_is_named_in_the_report() {
    struct Impostor;
    impl Multipathd for Impostor {
        fn command(&self, _: &str) -> io::Result<String> {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the multipathd socket @x is served by pid 9 as uid 1000, not by root",
            ))
        }
    }
    let mut report = Report::default();
    let k = configured_key(
        &Impostor,
        "mpatha",
        KeySource::Value(key(7)),
        || None,
        &mut report,
    );
    assert_eq!(k, key(7));
    assert_eq!(report.daemon[0].reply, Err(libc::EPERM));
    let lines = report.lines();
    assert!(lines[0].contains("not by root"), "{lines:?}");
    assert!(report.multipathd_unreachable());
}
