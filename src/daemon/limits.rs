//! Descriptor limits: how many connections the daemon takes, and raising the soft limit.

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
