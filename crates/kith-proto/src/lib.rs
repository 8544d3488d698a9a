//! Kith's wire frames and signed records.
//!
//! Everything that crosses a process boundary (the network, a contact code typed by a person,
//! a record in the DHT) is defined here and encoded only through [`codec`], so the byte format
//! can change in one place. Every decoder takes a size limit that is checked before any
//! allocation and returns a typed [`DecodeError`]; nothing here panics on bad input. Caps that
//! several kinds of message share (text and ciphertext sizes, sync sizes, peer ids and
//! addresses) are in [`limits`]; the others sit beside the message they bound.
//!
//! The format is described for people in `docs/protocol.md`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod chat;
pub mod codec;
pub mod contact;
pub mod group;
pub mod group_call;
pub mod groupwire;
pub mod history;
pub mod limits;
pub mod link;
pub mod media;
pub mod push_endpoint;
pub mod record;
pub mod signal;
pub mod wire;

pub use codec::{DecodeError, EncodeError};
