//! The messenger's rules as cores without I/O. Each core owns its state and its rules; it
//! is handed the time (and, where it draws randomness, a seeded generator) and returns what
//! to do instead of doing it. The engine actor (`crate::actor`) feeds the cores what happens
//! on the network and from the user, and carries out what they decide. Cores can be driven
//! directly in tests, with a fake clock and a seeded generator, without tokio or libp2p.
//!
//! - [`calls`]: one-to-one calls: ringing, answer, decline, busy, hang-up, glare, strangers.
//! - [`chat`]: message actions: who may react, edit, delete which message and when; held
//!   actions; disappearing timers.
//! - [`contacts`]: adding, naming and removing contacts; texts to send; read and receipts.
//! - [`delivery`]: when and where the next batch of a device's outbox goes; backoff; lookups.
//! - [`outbox`]: sealing queued bodies into envelopes, delivery answers, resets, pre-key bundles.
//! - [`prekeys`]: the fallback pre-key's rotation and overlap; refusing replayed pre-key messages.
//! - [`record`]: when this device's user record is published, and what it advertises.
//! - [`presence`]: privacy, presence and typing signals, heartbeats, silence, profile versions.
//! - [`mailbox`]: the mailbox service: registration, quotas, retention, wake-ups, claim rate.
//! - [`watch`]: group watching at mailboxes: what to tell them, catch-ups, who may watch, caps.
//! - [`inbound`]: answering envelopes: duplicates, new devices' binding, strangers, blocks.
//! - [`group_ops`]: group ops from peers: which reach a log, invitations from contacts only,
//!   cutting updates.
//! - [`group_frames`]: taking a group frame: members only, dedupe, gaps, waiting for keys.
//! - [`group_sync`]: group catch-up: the round, spacing, marks, answer limits, pruning.
//! - [`group_keys`]: group sender keys: session renewal, who gets which key, early keys.
//! - [`group_receipts`]: group receipts: batching per sender device, read receipts, counts.
//! - [`mentions`]: which members a group text names (`@name`), resolved by the sender.
//! - [`group_typing`]: group typing indicators: the send throttle, what shows until when.

pub mod calls;
pub mod chat;
pub mod contacts;
pub mod delivery;
pub mod group_calls;
pub mod group_frames;
pub mod group_keys;
pub mod group_late;
pub mod group_ops;
pub mod group_receipts;
pub mod group_sync;
pub mod group_typing;
pub mod inbound;
pub mod mailbox;
pub mod mentions;
pub mod outbox;
pub mod prekeys;
pub mod presence;
pub mod record;
pub mod stories;
pub mod watch;
