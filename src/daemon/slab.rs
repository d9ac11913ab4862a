//! The connection slab: one slot per open connection, indexed by the token its epoll
//! registration carries. A connection is owned by one thread at a time: its slot holds it
//! while it is idle, and the thread that takes it out marks the slot owned. An event for an
//! owned connection only adds its readiness to the slot's `again`, and the owner polls it once
//! more for that readiness before giving it back; so one client's bytes are never read by two
//! threads and no event is lost.
//!
//! The slab lives under the event loop's lock; nothing here waits.

use std::time::Instant;

use rustix::event::epoll::EventFlags;

use super::conn::Conn;

enum Slot {
    Free,
    /// Waiting for an event; any thread may take it.
    Idle(Conn),
    /// A thread has it; `again` is the readiness of the events that arrived meanwhile.
    Owned {
        again: EventFlags,
    },
}

/// The open connections, counted against a limit.
pub struct Slab {
    slots: Vec<Slot>,
    free: Vec<usize>,
    live: usize,
    /// Connections at most, so that descriptors remain for the device fds requests carry.
    limit: usize,
    /// Since when no connection is open.
    idle_since: Instant,
}

impl Slab {
    pub fn new(limit: usize) -> Slab {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            limit,
            idle_since: Instant::now(),
        }
    }

    /// Connections open (or reserved).
    pub fn live(&self) -> usize {
        self.live
    }

    /// Whether the connection limit is reached.
    pub fn full(&self) -> bool {
        self.live >= self.limit
    }

    /// Since when no connection has been open; meaningful when [`Slab::live`] is 0.
    pub fn idle_since(&self) -> Instant {
        self.idle_since
    }

    /// Takes a slot for a new connection, counted as live and owned by the caller.
    pub fn reserve(&mut self) -> usize {
        self.live += 1;
        let slot = self.free.pop().unwrap_or(self.slots.len());
        if slot == self.slots.len() {
            self.slots.push(Slot::Free);
        }
        self.slots[slot] = Slot::Owned {
            again: EventFlags::empty(),
        };
        slot
    }

    /// Frees the slot of a connection that is gone.
    pub fn release(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot) {
            if !matches!(entry, Slot::Free) {
                *entry = Slot::Free;
                self.free.push(slot);
                self.live -= 1;
                if self.live == 0 {
                    self.idle_since = Instant::now();
                }
            }
        }
    }

    /// An event for `slot` with readiness `flags`: its idle connection, now owned by the
    /// caller; `None` when another thread owns it (which will poll it again for `flags`) or the
    /// slot is free.
    pub fn take(&mut self, slot: usize, flags: EventFlags) -> Option<Conn> {
        let entry = self.slots.get_mut(slot)?;
        match std::mem::replace(
            entry,
            Slot::Owned {
                again: EventFlags::empty(),
            },
        ) {
            Slot::Idle(conn) => Some(conn),
            Slot::Owned { again } => {
                *entry = Slot::Owned {
                    again: again | flags,
                };
                None
            }
            Slot::Free => {
                *entry = Slot::Free;
                None
            }
        }
    }

    /// The owner waits for the connection's next event: the slot keeps it (`None`), unless
    /// events came meanwhile, and then the owner keeps it to poll it again for their readiness.
    pub fn park(&mut self, slot: usize, conn: Conn) -> Option<(Conn, EventFlags)> {
        // Not the caller's (a bug): dropping the connection keeps the slab sound.
        let Some(Slot::Owned { again }) = self.slots.get_mut(slot) else {
            return None;
        };
        if again.is_empty() {
            self.slots[slot] = Slot::Idle(conn);
            return None;
        }
        Some((conn, std::mem::replace(again, EventFlags::empty())))
    }

    /// Takes out every idle connection, each left owned by the caller (to close it).
    pub fn take_idle(&mut self) -> Vec<(usize, Conn)> {
        let mut idle = Vec::new();
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            if matches!(entry, Slot::Idle(_)) {
                if let Slot::Idle(conn) = std::mem::replace(
                    entry,
                    Slot::Owned {
                        again: EventFlags::empty(),
                    },
                ) {
                    idle.push((slot, conn));
                }
            }
        }
        idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Conn {
        let (a, _b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        Conn::new(a)
    }

    /// Events for an owned connection are not lost: their readiness comes back to the owner
    /// when it parks, and the next park gives the connection to the slot.
    #[test]
    fn events_for_an_owned_connection_come_back_with_their_readiness() {
        let mut slab = Slab::new(10);
        let slot = slab.reserve();
        assert!(slab.take(slot, EventFlags::IN).is_none(), "owned");
        assert!(slab.take(slot, EventFlags::OUT).is_none(), "owned");
        let (c, again) = slab.park(slot, conn()).expect("events came meanwhile");
        assert_eq!(again, EventFlags::IN | EventFlags::OUT);
        assert!(slab.park(slot, c).is_none(), "nothing came since: idle");
        assert!(slab.take(slot, EventFlags::IN).is_some(), "idle: taken");
        slab.release(slot);
        assert_eq!(slab.live(), 0);
        assert!(slab.take(slot, EventFlags::IN).is_none(), "free");
    }
}
