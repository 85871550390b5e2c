//! The live websocket sessions, bounded without letting idle ones lock
//! everyone out: a new session is always let in, and when that would pass a
//! bound an older one is told to stop instead.
//!
//! - At most [`PER_SOURCE`] sessions per client address (an IPv6 client's
//!   whole /64, which one host usually has to itself): the next one from
//!   that address ends that address's oldest.
//! - At most [`MAX_WEBSOCKETS`] in all: the next one ends the oldest session
//!   of the address that holds the most, so a flood from a few hosts evicts
//!   its own sessions, not the other people's dashboards.
//!
//! The choice of whom to stop is a pure function of the table; the table
//! only holds a stop token per session.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::locks::lock;

/// Websocket sessions at once, in all.
pub const MAX_WEBSOCKETS: usize = 256;

/// Websocket sessions at once from one client address.
pub const PER_SOURCE: usize = 64;

/// The table of live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    /// Oldest first.
    live: Vec<Live>,
}

#[derive(Debug)]
struct Live {
    id: u64,
    source: IpAddr,
    stop: CancellationToken,
}

/// One admitted session: its stop token; leaves the table when dropped.
#[derive(Debug)]
pub struct Admitted {
    id: u64,
    /// Fires when a newer session took this one's place.
    pub stop: CancellationToken,
    sessions: Arc<Sessions>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        lock(&self.sessions.table).live.retain(|s| s.id != self.id);
    }
}

impl Sessions {
    /// Lets a session from `source` (unknown: `None`) in, stopping the one it
    /// displaces, if any.
    pub fn admit(self: &Arc<Self>, source: Option<IpAddr>) -> Admitted {
        let source = source.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), network);
        let mut table = lock(&self.table);
        let sources: Vec<IpAddr> = table.live.iter().map(|s| s.source).collect();
        if let Some(i) = displaced(&sources, source, PER_SOURCE, MAX_WEBSOCKETS) {
            let gone = table.live.remove(i);
            gone.stop.cancel();
        }
        let id = table.next;
        table.next += 1;
        let stop = CancellationToken::new();
        table.live.push(Live {
            id,
            source,
            stop: stop.clone(),
        });
        Admitted {
            id,
            stop,
            sessions: Arc::clone(self),
        }
    }

    /// Sessions in the table.
    pub fn len(&self) -> usize {
        lock(&self.table).live.len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The address a session counts against: an IPv4 address as it is, an
/// IPv6 one as its /64 network.
pub fn network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Which of the live sessions (their sources, oldest first) a new one from
/// `source` displaces: the source's oldest when it holds `per_source`
/// already, else when `total` are live the oldest of the source holding the
/// most (the oldest such session on a tie); `None` while both bounds hold.
pub fn displaced(
    live: &[IpAddr],
    source: IpAddr,
    per_source: usize,
    total: usize,
) -> Option<usize> {
    let count = |ip: IpAddr| live.iter().filter(|s| **s == ip).count();
    if count(source) >= per_source {
        return live.iter().position(|s| *s == source);
    }
    if live.len() < total {
        return None;
    }
    let heaviest = live.iter().map(|s| count(*s)).max()?;
    live.iter().position(|s| count(*s) == heaviest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network(c));
        assert_eq!(network("2001:db8:1:2::".parse().unwrap()), network(a));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(network(mapped), ip(1));
        assert_eq!(network(ip(1)), ip(1));
    }

    #[test]
    fn within_the_bounds_nobody_is_displaced() {
        assert_eq!(displaced(&[], ip(1), 2, 4), None);
        assert_eq!(displaced(&[ip(1), ip(2)], ip(1), 2, 4), None);
    }

    #[test]
    fn a_source_at_its_cap_loses_its_own_oldest() {
        let live = [ip(2), ip(1), ip(3), ip(1)];
        assert_eq!(displaced(&live, ip(1), 2, 8), Some(1));
    }

    #[test]
    fn at_the_total_the_heaviest_source_loses_its_oldest() {
        let live = [ip(9), ip(1), ip(2), ip(1), ip(2), ip(2)];
        assert_eq!(displaced(&live, ip(7), 4, 6), Some(2));
        // A tie: the oldest of the tied sources' sessions.
        let live = [ip(9), ip(1), ip(2), ip(1), ip(2)];
        assert_eq!(displaced(&live, ip(7), 4, 5), Some(1));
    }

    #[tokio::test]
    async fn admitting_past_the_cap_stops_the_oldest_and_drop_leaves() {
        let sessions = Arc::new(Sessions::default());
        let first: Vec<Admitted> = (0..PER_SOURCE)
            .map(|_| sessions.admit(Some(ip(1))))
            .collect();
        let other = sessions.admit(Some(ip(2)));
        let newest = sessions.admit(Some(ip(1)));
        assert!(first[0].stop.is_cancelled());
        assert!(first[1..].iter().all(|a| !a.stop.is_cancelled()));
        assert!(!other.stop.is_cancelled() && !newest.stop.is_cancelled());
        assert_eq!(sessions.len(), PER_SOURCE + 1);
        drop(first);
        drop(other);
        assert_eq!(sessions.len(), 1);
        drop(newest);
        assert!(sessions.is_empty());
    }
}
