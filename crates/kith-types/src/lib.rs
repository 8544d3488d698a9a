//! Base types shared by every Kith crate: identity keys, message ids, typed byte ids (device
//! keys, Curve25519 keys, group ids, envelope hashes) and the safety number. Nothing here does
//! I/O or depends on tokio or libp2p.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod bounded;
mod ids;
mod keys;
mod safety;

pub use bounded::{BoundedMap, BoundedSet, RateLimit};
pub use ids::{MessageId, MessageIdGen, now_ms};
pub use keys::{CurveKey, DeviceKey, EnvelopeHash, GroupId, IdentityKey, OpHash, plain_array};
pub use safety::safety_number;
