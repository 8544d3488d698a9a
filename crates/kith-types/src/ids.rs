use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch by the local clock (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A unique, time-sortable message id: 48 bits of milliseconds since the epoch, then 80 random
/// bits (the ULID layout), shown as a 26-character ULID string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(pub u128);

impl MessageId {
    /// Milliseconds since the epoch at which the id was made (by the sender's clock).
    pub fn timestamp_ms(&self) -> u64 {
        (self.0 >> 80) as u64
    }

    /// Parses the 26-character ULID text form.
    pub fn parse(s: &str) -> Option<Self> {
        ulid::Ulid::from_string(s).ok().map(|u| MessageId(u.0))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&ulid::Ulid(self.0), f)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// Makes message ids that are strictly increasing within one process, even when the clock
/// stands still or steps back.
#[derive(Debug, Default)]
pub struct MessageIdGen {
    last: u128,
}

impl MessageIdGen {
    /// A new generator.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next id for the given time and 80 random bits.
    pub fn next_with(&mut self, now_ms: u64, random: u128) -> MessageId {
        let rand80 = random & ((1u128 << 80) - 1);
        let candidate = ((now_ms as u128 & ((1u128 << 48) - 1)) << 80) | rand80;
        let id = if candidate > self.last {
            candidate
        } else {
            self.last.saturating_add(1)
        };
        self.last = id;
        MessageId(id)
    }

    /// The next id from the system clock and the thread RNG.
    pub fn next_id(&mut self) -> MessageId {
        self.next_with(now_ms(), rand::random::<u128>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_even_when_clock_steps_back() {
        let mut g = MessageIdGen::new();
        let a = g.next_with(1_000, u128::MAX);
        let b = g.next_with(1_000, 0);
        let c = g.next_with(500, 7);
        assert!(a < b && b < c);
        assert_eq!(a.timestamp_ms(), 1_000);
    }

    #[test]
    fn id_text_roundtrip() {
        let mut g = MessageIdGen::new();
        let id = g.next_id();
        let s = id.to_string();
        assert_eq!(s.len(), 26);
        assert_eq!(MessageId::parse(&s), Some(id));
        assert_eq!(MessageId::parse("not an id"), None);
    }
}
