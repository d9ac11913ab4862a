//! Limits the daemon sizes itself by: descriptors (how many connections it takes, and
//! raising the soft limit) and CPUs (how many threads are worth keeping).

/// How many connections fit the descriptor limit while leaving room for the device fds that
/// requests bring (a connection accepted into the last free descriptor could never receive
/// one: the kernel would drop it and the request would fail with "No file descriptor").
pub fn connection_limit() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let open_now = std::fs::read_dir("/proc/self/fd").map_or(16, Iterator::count);
    let reserve = (limit / 8).clamp(4, 72);
    limit.saturating_sub(open_now + reserve).max(1)
}

/// Raises the soft descriptor limit to the hard one: each connection holds a descriptor and
/// the usual soft limit of 1024 is far below what a host with many VMs needs.
pub fn raise_descriptor_limit() {
    let mut limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, limit);
    }
}

/// The CPUs this process may use: its affinity mask, lowered by a cgroup v2 CPU quota
/// (`cpu.max` of its cgroup and every parent, as a container's limit is set on one of them).
/// std's `available_parallelism` reads the same and cgroup v1 as well, for 12 KB more of
/// static binary; under cgroup v1 this counts the affinity mask only.
pub fn usable_cpus() -> usize {
    let affinity = rustix::thread::sched_getaffinity(None).map_or(1, |set| set.count() as usize);
    let quota = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|list| cgroup2_path(&list).map(str::to_owned))
        .and_then(|path| {
            let mut dir = std::path::PathBuf::from("/sys/fs/cgroup");
            dir.extend(path.split('/').filter(|part| !part.is_empty()));
            dir.ancestors()
                .take_while(|d| d.starts_with("/sys/fs/cgroup"))
                .filter_map(|d| std::fs::read_to_string(d.join("cpu.max")).ok())
                .filter_map(|max| quota_cpus(&max))
                .min()
        });
    quota.map_or(affinity, |q| q.min(affinity)).max(1)
}

/// The cgroup v2 path in `/proc/self/cgroup` (the `0::PATH` line).
fn cgroup2_path(list: &str) -> Option<&str> {
    list.lines().find_map(|line| line.strip_prefix("0::"))
}

/// CPUs a `cpu.max` (`QUOTA PERIOD`, or `max PERIOD`) allows, rounded up; `None` unlimited.
fn quota_cpus(max: &str) -> Option<usize> {
    let mut fields = max.split_whitespace();
    let quota: u64 = fields.next()?.parse().ok()?;
    let period: u64 = fields.next()?.parse().ok().filter(|&p| p > 0)?;
    usize::try_from(quota.div_ceil(period)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quota_rounds_up_and_max_is_unlimited() {
        assert_eq!(quota_cpus("max 100000\n"), None);
        assert_eq!(quota_cpus("50000 100000\n"), Some(1));
        assert_eq!(quota_cpus("200000 100000"), Some(2));
        assert_eq!(quota_cpus("250000 100000"), Some(3));
        assert_eq!(quota_cpus("100000 0"), None);
        assert_eq!(quota_cpus(""), None);
    }

    #[test]
    fn the_cgroup2_line_gives_the_path() {
        let v1_and_v2 = "12:cpu,cpuacct:/system.slice\n0::/system.slice/qemu-pr-helper.service\n";
        assert_eq!(
            cgroup2_path(v1_and_v2),
            Some("/system.slice/qemu-pr-helper.service")
        );
        assert_eq!(cgroup2_path("0::/\n"), Some("/"));
        assert_eq!(cgroup2_path("4:memory:/x\n1:cpu:/\n"), None);
    }

    #[test]
    fn usable_cpus_is_at_least_one_and_at_most_the_affinity() {
        let affinity = rustix::thread::sched_getaffinity(None).unwrap().count() as usize;
        let cpus = usable_cpus();
        assert!((1..=affinity).contains(&cpus), "{cpus} of {affinity}");
    }
}
