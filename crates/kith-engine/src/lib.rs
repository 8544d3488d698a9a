//! The messenger logic of a Kith node: identity and keys on disk, contacts, the outbox and its
//! retries, sealing and opening messages, receipts, and the DHT user record.
//!
//! One actor ([`Engine`]) owns the store, the Olm state and the network handle. Data flow of
//! a message:
//!
//! 1. `send` → the actor appends the message to the conversation and an outbox item per
//!    recipient device, sealing it now if a session exists, all in one store transaction;
//!    the reply (with the message id) goes out after the commit.
//! 2. The outbox pump hands sealed items to the network in order, up to a batch at a time per
//!    device. With no session yet, it first claims a pre-key from the device.
//! 3. The receiver's actor opens each envelope, stores messages and receipts, remembers the
//!    envelope hash (so a retry is acknowledged without being stored twice), commits, and
//!    only then answers `Stored`.
//! 4. The sender raises the message to delivered, in one transaction, and removes the items.
//!
//! Commands and network events that arrive together are applied in one transaction (group
//! commit): durability costs one fsync per batch, not per message. If a commit fails, nothing
//! is acknowledged and the Olm state is reloaded from the store.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod actor;
pub mod command;
pub mod cores;
mod keys;
pub mod media;
mod model;
mod public_ip;
pub mod push;
mod sealed_file;
pub mod search;
pub mod turn;

pub use actor::{
    CallConfig, Engine, EngineConfig, EngineHandle, GROUP_SYNC_EVERY, GroupChange, HEARTBEAT,
    MAILBOX_QUOTA, MAILBOX_QUOTA_BYTES, MAILBOX_TOPIC_BYTES, MAILBOX_TOPIC_FRAMES, MAX_GROUPS,
    MAX_MAILBOX_TOPICS, MailboxConfig, PRESENCE_TIMEOUT, ReachConfig, TYPING_TTL,
    set_story_lifetime_ms,
};
pub use command::Command;
pub use cores::mailbox::{
    MAILBOX_DEVICES_PER_IDENTITY, MAILBOX_MAX_DEVICES, MAILBOX_MEDIA_BYTES, MAILBOX_MEDIA_FILES,
    MAILBOX_MEDIA_RETENTION, MAILBOX_TOPICS_PER_DEVICE, check_invite_tokens,
};
pub use keys::{KDF_DEFAULT, KeyFile, is_protected as key_file_is_protected, open_store};
pub use kith_net::Multiaddr;
pub use kith_net::NetOptions;
pub use kith_net::RelayServerConfig;
pub use kith_net::limits::{self as net_limits, NetLimits};
pub use kith_proto::group::MAX_GROUP_MEMBERS;
pub use kith_store::DEFAULT_CACHE_BYTES as DEFAULT_STORE_CACHE;
pub use model::*;
pub use push::PushPolicy;
