//! Keys and end-to-end encryption for Kith.
//!
//! - [`Identity`]: a person's long-term ed25519 key (ed25519-dalek). It signs device
//!   certificates and user records. Its `Debug` never shows secret bytes.
//! - [`Device`]: one device's Olm account (vodozemac): its Curve25519/Ed25519 keys, one-time and
//!   fallback pre-keys, and its certificate signed by the identity.
//! - [`PeerSessions`]: the Olm double-ratchet sessions with one remote device. Olm is
//!   vodozemac's audited implementation of the Signal double ratchet with X3DH-style session
//!   setup; Kith adds no crypto of its own, only the framing around it.
//! - [`seal`]: the outer seal of every envelope to its recipient device (HPKE, RFC 9180), so
//!   a mailbox carrying it cannot read the sender's key out of an Olm pre-key message.
//!
//! State that changes (the account when a one-time key is used, a session at every message)
//! is pickled, encrypted with the device's storage key, and saved by the caller in the same
//! store transaction as the message it belongs to.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod device;
mod identity;
mod megolm;
pub mod seal;
mod session;

pub use device::Device;
pub use identity::{Identity, StorageKey};
pub use megolm::{InboundGroup, OutboundGroup};
pub use seal::{SEALED_KIND, Unsealed, seal};
pub use session::{Decrypted, PeerSessions};

/// Crypto failures. None of them carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A signature or certificate did not verify.
    #[error("bad signature or certificate")]
    BadSignature,
    /// A key had the wrong form.
    #[error("malformed key")]
    BadKey,
    /// An Olm session could not be created.
    #[error("cannot create session: {0}")]
    Session(String),
    /// A message could not be decrypted by any session.
    #[error("cannot decrypt: {0}")]
    Decrypt(String),
    /// A pickle could not be read (wrong key or damaged data).
    #[error("cannot restore saved crypto state: {0}")]
    Pickle(String),
    /// A value could not be encoded.
    #[error("encoding: {0}")]
    Encode(String),
}
