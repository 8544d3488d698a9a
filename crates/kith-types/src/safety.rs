//! Safety numbers: 60 digits two people compare to be sure no one sits between them.
//!
//! Each side's half is 30 digits derived from its identity key by 5,200 rounds of SHA-512
//! (the cost makes it expensive to grind a key whose number looks alike); the two halves are
//! ordered by value so both people see the same 60 digits.

use sha2::{Digest, Sha512};

use crate::IdentityKey;

const ROUNDS: usize = 5_200;
const VERSION: &[u8] = b"kith-safety-number-v1";

fn half(key: &IdentityKey) -> String {
    let mut h = Sha512::new();
    h.update(VERSION);
    h.update(key.0);
    let mut digest = h.finalize();
    for _ in 1..ROUNDS {
        let mut h = Sha512::new();
        h.update(digest);
        h.update(key.0);
        digest = h.finalize();
    }
    let mut out = String::with_capacity(30);
    for chunk in digest[..30].chunks_exact(5) {
        let mut v: u64 = 0;
        for b in chunk {
            v = (v << 8) | u64::from(*b);
        }
        out.push_str(&format!("{:05}", v % 100_000));
    }
    out
}

/// The 60-digit safety number for a pair of identities, grouped in twelve blocks of five.
/// It is the same whichever side computes it.
pub fn safety_number(a: &IdentityKey, b: &IdentityKey) -> String {
    let (x, y) = (half(a), half(b));
    let joined = if x <= y { x + &y } else { y + &x };
    joined
        .as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_distinct() {
        let a = IdentityKey([1; 32]);
        let b = IdentityKey([2; 32]);
        let c = IdentityKey([3; 32]);
        let ab = safety_number(&a, &b);
        assert_eq!(ab, safety_number(&b, &a));
        assert_ne!(ab, safety_number(&a, &c));
        assert_eq!(ab.replace(' ', "").len(), 60);
        assert!(ab.replace(' ', "").chars().all(|c| c.is_ascii_digit()));
    }
}

#[cfg(test)]
mod known_answer {
    use super::*;

    /// The safety number is compared by people across versions: it must never change for
    /// the same pair of keys.
    #[test]
    fn pinned() {
        let a = IdentityKey([1; 32]);
        let b = IdentityKey([2; 32]);
        assert_eq!(safety_number(&a, &b), EXPECTED);
    }

    const EXPECTED: &str =
        "14420 44198 71533 27280 07738 78928 25517 16987 58202 20141 00510 73193";
}
