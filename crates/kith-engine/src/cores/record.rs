//! This device's user record in the DHT: when to publish it, what addresses it advertises,
//! and how it recovers when no DHT peer stored it. A core with no I/O: the actor tells it
//! what happened, with the time, and signs and sends what it decides.
//!
//! Data flow:
//!
//! 1. The record needs publishing ([`Publisher::changed`]) when the node starts, when its
//!    listen addresses or reachability change, when it registers with a new mailbox, and
//!    every `REPUBLISH_EVERY` (the actor's timer).
//! 2. On each tick the actor asks [`Publisher::due`]; if it is, the actor builds the record
//!    ([`advertised`] picks the addresses), signs it, sends it to the DHT with a tag and
//!    tells the core ([`Publisher::sent`]).
//! 3. The DHT answers for that tag ([`Publisher::outcome`]): stored by at least one peer,
//!    or by none. A record nobody stored leaves this user unreachable by identity for anyone
//!    who does not already know its addresses, so it is published again soon — after
//!    [`retry_after`] (2 s, doubling to [`MAX_RECORD_RETRY`]) — rather than at the next
//!    half-hourly republication.

use std::time::{Duration, Instant};

use kith_net::{Multiaddr, Protocol};

/// Most addresses one device advertises (the record's limit).
pub const MAX_DEVICE_ADDRS: usize = kith_proto::record::MAX_ADDRS;
/// Longest wait before publishing the user record again after no DHT peer stored it.
pub const MAX_RECORD_RETRY: Duration = Duration::from_secs(300);

/// The wait before publishing the user record again after `failures` publications in a row
/// that no DHT peer stored: 2 s, doubling, at most [`MAX_RECORD_RETRY`].
pub fn retry_after(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.clamp(1, 16)).min(MAX_RECORD_RETRY)
}

/// What the answer to one publication means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not the publication the core waits for (an older one, or a caller's own tag).
    Other,
    /// At least one DHT peer stored it.
    Stored,
    /// No DHT peer stored it: it goes out again at `retry_at`. `first` is true for the first
    /// failure in a row (worth one log line).
    Failed {
        /// When it is published again.
        retry_at: Instant,
        /// The first failure in a row.
        first: bool,
    },
}

/// Where the user record stands, as `kith status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    /// A change waits for the next tick, or a publication is under way.
    Publishing,
    /// The last publication was stored by at least one DHT peer, and nothing changed since.
    Published,
    /// No DHT peer stored the last publication; it goes out again later.
    Retrying,
    /// Not published yet (no address to advertise, or nothing answered yet).
    NotPublished,
}

impl RecordState {
    /// The word `kith status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publishing => "publishing",
            Self::Published => "published",
            Self::Retrying => "retrying",
            Self::NotPublished => "not published",
        }
    }
}

/// When the user record is published.
#[derive(Debug)]
pub struct Publisher {
    dirty: bool,
    /// The last publication that had an answer was stored.
    stored: bool,
    /// The tag of the publication whose outcome is awaited.
    in_flight: Option<u64>,
    /// Publications in a row that no DHT peer stored.
    failures: u32,
    retry_at: Option<Instant>,
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    /// A publisher whose record is due at once (a node that just started).
    pub fn new() -> Self {
        Self {
            dirty: true,
            stored: false,
            in_flight: None,
            failures: 0,
            retry_at: None,
        }
    }

    /// Something the record says changed: publish at the next tick.
    pub fn changed(&mut self) {
        self.dirty = true;
    }

    /// Whether the record should be published now (a change, or a retry whose time came);
    /// the caller publishes it when this says so.
    pub fn due(&mut self, now: Instant) -> bool {
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.dirty = true;
        }
        std::mem::take(&mut self.dirty)
    }

    /// The record went to the DHT under `tag` (published outside [`Publisher::due`] too,
    /// when a caller waits for it).
    pub fn sent(&mut self, tag: u64) {
        self.dirty = false;
        self.in_flight = Some(tag);
    }

    /// The DHT answered publication `tag`.
    pub fn outcome(&mut self, tag: u64, stored: bool, now: Instant) -> Outcome {
        if self.in_flight != Some(tag) {
            return Outcome::Other;
        }
        self.in_flight = None;
        self.stored = stored;
        if stored {
            self.failures = 0;
            self.retry_at = None;
            return Outcome::Stored;
        }
        self.failures = self.failures.saturating_add(1);
        let retry_at = now + retry_after(self.failures);
        self.retry_at = Some(retry_at);
        Outcome::Failed {
            retry_at,
            first: self.failures == 1,
        }
    }
}

impl Publisher {
    /// Where the record stands: a change or a publication under way comes first, then the
    /// last publication's outcome.
    pub fn state(&self) -> RecordState {
        if self.dirty || self.in_flight.is_some() {
            RecordState::Publishing
        } else if self.retry_at.is_some() {
            RecordState::Retrying
        } else if self.stored {
            RecordState::Published
        } else {
            RecordState::NotPublished
        }
    }
}

fn has(a: &Multiaddr, f: impl Fn(&Protocol<'_>) -> bool) -> bool {
    a.iter().any(|p| f(&p))
}

/// The listen addresses worth telling others: no unspecified ones; loopback ones only when
/// there is nothing else; relay circuit addresses always get up to half the room (behind NAT
/// they are the only ones that work), direct ones the rest, up to [`MAX_DEVICE_ADDRS`].
pub fn advertised(listen: Vec<Multiaddr>) -> Vec<Multiaddr> {
    let all: Vec<Multiaddr> = listen
        .into_iter()
        .filter(|a| {
            !has(a, |p| {
                matches!(p, Protocol::Ip4(ip) if ip.is_unspecified())
                    || matches!(p, Protocol::Ip6(ip) if ip.is_unspecified())
            })
        })
        .collect();
    let loopback = |a: &Multiaddr| {
        has(a, |p| {
            matches!(p, Protocol::Ip4(ip) if ip.is_loopback())
                || matches!(p, Protocol::Ip6(ip) if ip.is_loopback())
        })
    };
    let non_loop: Vec<Multiaddr> = all.iter().filter(|a| !loopback(a)).cloned().collect();
    let pool = if non_loop.is_empty() { all } else { non_loop };
    let (mut circuits, mut direct): (Vec<Multiaddr>, Vec<Multiaddr>) =
        pool.into_iter().partition(kith_net::reach::is_circuit);
    circuits.truncate(MAX_DEVICE_ADDRS / 2);
    direct.truncate(MAX_DEVICE_ADDRS - circuits.len());
    direct.extend(circuits);
    direct
}

#[cfg(test)]
mod tests {
    use super::*;

    // The addresses below are documentation ranges (RFC 5737), only parsed and filtered:
    // nothing in these tests opens a socket.
    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    /// What `kith status` shows of the record follows its publications: under way while a
    /// change waits or a publication is out, then the outcome of the last one.
    #[test]
    fn the_record_state_follows_publications() {
        let t0 = Instant::now();
        let mut p = Publisher::new();
        assert_eq!(
            p.state(),
            RecordState::Publishing,
            "a new node's record is due"
        );
        assert!(p.due(t0));
        assert_eq!(p.state(), RecordState::NotPublished, "due, but not sent");
        p.sent(1);
        assert_eq!(p.state(), RecordState::Publishing);
        p.outcome(1, false, t0);
        assert_eq!(p.state(), RecordState::Retrying);
        assert!(p.due(t0 + MAX_RECORD_RETRY));
        p.sent(2);
        p.outcome(2, true, t0);
        assert_eq!(p.state(), RecordState::Published);
        // A new mailbox: publishing again until the new record is stored.
        p.changed();
        assert_eq!(p.state(), RecordState::Publishing);
        assert!(p.due(t0));
        p.sent(3);
        assert_eq!(p.state(), RecordState::Publishing);
        p.outcome(3, true, t0);
        assert_eq!(p.state(), RecordState::Published);
    }

    #[test]
    fn a_failed_record_is_published_again_soon_then_less_often() {
        assert_eq!(retry_after(0), Duration::from_secs(2));
        assert_eq!(retry_after(1), Duration::from_secs(2));
        assert_eq!(retry_after(2), Duration::from_secs(4));
        assert_eq!(retry_after(7), Duration::from_secs(128));
        assert_eq!(retry_after(8), Duration::from_secs(256));
        assert_eq!(retry_after(9), MAX_RECORD_RETRY);
        assert_eq!(retry_after(u32::MAX), MAX_RECORD_RETRY);
    }

    /// A record no DHT peer stores is published again at 2 s, 4 s, 8 s … after each
    /// failure, to the millisecond, and never before; one stored publication ends it.
    #[test]
    fn publications_nobody_stored_retry_on_schedule_until_one_is_stored() {
        let t0 = Instant::now();
        let mut p = Publisher::new();
        assert!(p.due(t0), "a new node publishes at once");
        assert!(!p.due(t0), "once");
        let mut now = t0;
        for (n, secs) in [2u64, 4, 8, 16, 32].iter().enumerate() {
            let tag = n as u64 + 1;
            p.sent(tag);
            let Outcome::Failed { retry_at, first } = p.outcome(tag, false, now) else {
                panic!("failure {n} not seen");
            };
            assert_eq!(first, n == 0);
            assert_eq!(retry_at - now, Duration::from_secs(*secs));
            assert!(!p.due(retry_at - Duration::from_millis(1)));
            assert!(p.due(retry_at));
            now = retry_at;
        }
        p.sent(99);
        assert_eq!(
            p.outcome(98, true, now),
            Outcome::Other,
            "an older answer is not ours"
        );
        assert_eq!(p.outcome(99, true, now), Outcome::Stored);
        assert!(
            !p.due(now + MAX_RECORD_RETRY),
            "no retry after a stored record"
        );
        p.changed();
        assert!(p.due(now));
        p.sent(100);
        let Outcome::Failed { retry_at, first } = p.outcome(100, false, now) else {
            panic!("failure not seen");
        };
        assert!(first, "failures start again from one after a success");
        assert_eq!(retry_at - now, Duration::from_secs(2));
    }

    #[test]
    fn advertised_addresses_skip_unspecified_and_prefer_non_loopback() {
        let got = advertised(vec![
            ma("/ip4/0.0.0.0/tcp/1"),
            ma("/ip4/127.0.0.1/tcp/2"),
            ma("/ip4/192.0.2.7/tcp/3"),
        ]);
        assert_eq!(got, vec![ma("/ip4/192.0.2.7/tcp/3")]);
        let got = advertised(vec![ma("/ip4/0.0.0.0/tcp/1"), ma("/ip4/127.0.0.1/tcp/2")]);
        assert_eq!(
            got,
            vec![ma("/ip4/127.0.0.1/tcp/2")],
            "loopback when nothing else"
        );
        assert!(advertised(vec![ma("/ip6/::/tcp/1")]).is_empty());
    }

    #[test]
    fn relay_addresses_keep_half_the_room() {
        let relay = "/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit";
        let mut listen: Vec<Multiaddr> = (0..3 * MAX_DEVICE_ADDRS)
            .map(|i| ma(&format!("/ip4/198.51.100.{}/tcp/{}", i % 250, 1000 + i)))
            .collect();
        for _ in 0..MAX_DEVICE_ADDRS {
            listen.push(ma(relay));
        }
        let got = advertised(listen);
        assert_eq!(got.len(), MAX_DEVICE_ADDRS);
        let circuits = got
            .iter()
            .filter(|a| kith_net::reach::is_circuit(a))
            .count();
        assert_eq!(circuits, MAX_DEVICE_ADDRS / 2);
    }
}
