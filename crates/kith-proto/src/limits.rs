//! Caps that more than one part of the protocol depends on.
//!
//! A one-to-one envelope and a group frame carry the same ciphertext and text sizes; a group
//! sync travels inside a `/kith/msg/1` request; a contact code lists the same peer id and
//! addresses as a signed record. Their shared caps live here, so that the modules that define
//! those messages depend on this one and never on each other for a number. Caps that only one
//! message needs stay beside it (for example [`crate::wire::MAX_BATCH`]), and each module
//! re-exports the caps below that belong to its messages, so `kith_proto::wire::MAX_TEXT` and
//! `kith_proto::limits::MAX_TEXT` are the same constant.

/// Largest ciphertext in one envelope or group frame.
pub const MAX_CIPHERTEXT: usize = 64 * 1024;
/// Longest message text, in bytes of UTF-8 (one-to-one and group).
pub const MAX_TEXT: usize = 48 * 1024;

/// Most sender marks in one group sync request (every device of every member).
pub const MAX_SYNC_MARKS: usize = 4096;
/// Most frames in one group sync answer.
pub const MAX_SYNC_FRAMES: usize = 512;
/// Most frame bytes in one group sync answer (well inside the 1 MiB request-response frame).
pub const MAX_SYNC_BYTES: usize = 768 * 1024;

/// Longest encoded libp2p peer id accepted.
pub const MAX_PEER_ID: usize = 64;
/// Longest encoded multiaddr accepted.
pub const MAX_ADDR: usize = 256;
/// Most addresses listed for one device.
pub const MAX_ADDRS: usize = 16;
