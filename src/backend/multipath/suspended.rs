//! The maps this process has suspended and not resumed yet, for the panic hook.
//!
//! A PREEMPT of our own key runs with the map suspended ([`super::pr::Suspension`]), and a
//! suspended map holds every write of the VM until it is resumed. The guard resumes it on
//! every way out that runs destructors; the release build aborts on a panic
//! (`panic = "abort"`), which runs none, so the panic hook installed here resumes every map
//! recorded as suspended by this process before the abort.
//!
//! A daemon killed with SIGKILL (or by the OOM killer) in the window runs neither; the record
//! file of [`super::record`] tells the next daemon to start which maps it left suspended.
//! Other maps found suspended are not touched, because device-mapper does not say who
//! suspended them (an administrator's `dmsetup suspend`, LVM or multipathd reloading a
//! table); resuming those would undo someone else's work.

use std::sync::{Mutex, Once, PoisonError, TryLockError};

/// Names of maps suspended, one entry per suspension (two commands may suspend one map).
#[derive(Debug, Default)]
pub struct Registry {
    names: Mutex<Vec<String>>,
}

impl Registry {
    pub const fn new() -> Registry {
        Registry {
            names: Mutex::new(Vec::new()),
        }
    }

    /// Records `name` as about to be suspended (before the ioctl: a panic on another thread
    /// right after it still sees it; resuming a map that is not suspended does nothing).
    pub fn record(&self, name: &str) {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        names.push(name.to_owned());
    }

    /// Forgets one suspension of `name` (resumed, or the suspend failed).
    pub fn forget(&self, name: &str) {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = names.iter().position(|n| n == name) {
            names.swap_remove(i);
        }
    }

    /// Resumes every recorded map with `resume` (each name once) and forgets them: the names
    /// and whether each resumed. Never waits for long on the lock: a panicking thread may
    /// hold it (it is held only to push or remove a name, so another thread frees it at once).
    pub fn resume_all(&self, resume: impl Fn(&str) -> bool) -> Vec<(String, bool)> {
        let mut names = None;
        for _ in 0..10_000 {
            match self.names.try_lock() {
                Ok(guard) => names = Some(guard),
                Err(TryLockError::Poisoned(p)) => names = Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => {
                    std::thread::yield_now();
                    continue;
                }
            }
            break;
        }
        let Some(mut names) = names else {
            return Vec::new();
        };
        let mut taken: Vec<String> = std::mem::take(&mut *names);
        drop(names);
        taken.sort();
        taken.dedup();
        taken
            .into_iter()
            .map(|name| {
                let ok = resume(&name);
                (name, ok)
            })
            .collect()
    }
}

/// The maps the real executor suspended.
pub static SUSPENDED: Registry = Registry::new();

/// Installs (once) the panic hook that resumes the maps in [`SUSPENDED`] before the previous
/// hook prints the panic (and the release build aborts).
pub fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            for (name, ok) in SUSPENDED.resume_all(|n| crate::sys::dm::resume(n).is_ok()) {
                let what = if ok {
                    "resumed"
                } else {
                    "could not resume (run `dmsetup resume` on it)"
                };
                eprintln!("pr-helper: panic with map {name} suspended: {what}");
            }
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_all_resumes_each_recorded_map_once_and_forgets_them() {
        let r = Registry::new();
        r.record("mpatha");
        r.record("mpathb");
        r.record("mpatha");
        r.forget("mpathb");
        let resumed = Mutex::new(Vec::new());
        let got = r.resume_all(|n| {
            resumed.lock().unwrap().push(n.to_owned());
            n == "mpatha"
        });
        assert_eq!(got, [("mpatha".to_owned(), true)]);
        assert_eq!(*resumed.lock().unwrap(), ["mpatha"]);
        assert!(r.resume_all(|_| true).is_empty());
    }

    #[test]
    #[cfg(panic = "unwind")]
    fn resume_all_works_with_a_poisoned_lock() {
        let r = Registry::new();
        r.record("mpatha");
        let _ = std::panic::catch_unwind(|| {
            let _held = r.names.lock().unwrap();
            panic!("poison");
        });
        assert_eq!(r.resume_all(|_| true), [("mpatha".to_owned(), true)]);
    }

    /// The release build's case: a panic (which aborts there) with a map recorded as
    /// suspended runs the hook, which tries to resume the map before the panic is printed.
    /// Runs in a child process (this test binary again); without device-mapper here the
    /// resume fails, and the hook says so.
    #[test]
    fn a_panic_resumes_the_recorded_maps_before_the_panic_is_reported() {
        const CHILD: &str = "PRH_SUSPENDED_PANIC_CHILD";
        const MAP: &str = "pr-helper-test-no-such-map";
        if std::env::var_os(CHILD).is_some() {
            install_panic_hook();
            SUSPENDED.record(MAP);
            panic!("a deliberate panic with a map suspended");
        }
        let name = "backend::multipath::suspended::tests::a_panic_resumes_the_recorded_maps_before_the_panic_is_reported";
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", name, "--test-threads=1", "--nocapture"]);
        if cfg!(panic = "abort") {
            cmd.args(["-Z", "unstable-options", "--force-run-in-process"])
                .env("RUSTC_BOOTSTRAP", "1");
        }
        let child = cmd.env(CHILD, "1").output().unwrap();
        let out = String::from_utf8_lossy(&[child.stdout, child.stderr].concat()).into_owned();
        assert!(!child.status.success(), "{out}");
        let hook = out
            .find(&format!("panic with map {MAP} suspended"))
            .unwrap_or_else(|| panic!("the hook did not try to resume {MAP}: {out}"));
        let report = out.find("a deliberate panic with a map suspended").unwrap();
        assert!(hook < report, "{out}");
    }
}
