//! Contact codes: the text (and QR code) a person hands to someone so they can be added.
//!
//! A code is `kith1` followed by base58 of `[card bytes][4-byte checksum]`, where the card is
//! the encoded [`ContactCard`] and the checksum is the first 4 bytes of its SHA-256. The
//! checksum catches typing and copy errors; trust comes from the person who gave the code,
//! and the device keys learned later must be signed by the identity key it names.

use kith_types::IdentityKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, DecodeError, EncodeError};
use crate::limits::{MAX_ADDR, MAX_ADDRS, MAX_PEER_ID};

/// The text prefix of every contact code.
pub const PREFIX: &str = "kith1";
/// Longest contact code accepted, in characters.
pub const MAX_CODE_LEN: usize = 4096;

/// What a contact code carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactCard {
    /// Format version (1).
    pub version: u8,
    /// The person's ed25519 identity key (a byte string, as `serde_bytes` wrote it).
    pub identity: IdentityKey,
    /// The peer id of the device that made the code (encoded).
    #[serde(with = "serde_bytes")]
    pub peer_id: Vec<u8>,
    /// Addresses the device listened on when the code was made (encoded multiaddrs).
    #[serde(with = "crate::codec::byte_list")]
    pub addrs: Vec<Vec<u8>>,
}

impl ContactCard {
    /// The text form.
    pub fn to_code(&self) -> Result<String, EncodeError> {
        let mut bytes = codec::encode(self)?;
        let sum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&sum[..4]);
        Ok(format!("{PREFIX}{}", bs58::encode(bytes).into_string()))
    }

    /// Parses and checks a code as a person typed or pasted it (surrounding spaces allowed).
    pub fn from_code(code: &str) -> Result<Self, DecodeError> {
        let code = code.trim();
        if code.len() > MAX_CODE_LEN {
            return Err(DecodeError::TooLarge {
                len: code.len(),
                limit: MAX_CODE_LEN,
            });
        }
        let body = code
            .strip_prefix(PREFIX)
            .ok_or(DecodeError::Invalid("a contact code starts with kith1"))?;
        let bytes = bs58::decode(body)
            .into_vec()
            .map_err(|_| DecodeError::Invalid("not base58"))?;
        if bytes.len() < 5 {
            return Err(DecodeError::Invalid("too short"));
        }
        let (card, sum) = bytes.split_at(bytes.len() - 4);
        if Sha256::digest(card)[..4] != *sum {
            return Err(DecodeError::Invalid("checksum mismatch (typo?)"));
        }
        let card: ContactCard = codec::decode(card, MAX_CODE_LEN)?;
        if card.version != 1 {
            return Err(DecodeError::UnsupportedVersion(card.version));
        }
        if card.peer_id.is_empty() || card.peer_id.len() > MAX_PEER_ID {
            return Err(DecodeError::Invalid("peer id length"));
        }
        if card.addrs.len() > MAX_ADDRS || card.addrs.iter().any(|a| a.len() > MAX_ADDR) {
            return Err(DecodeError::Invalid("addresses"));
        }
        Ok(card)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn card() -> ContactCard {
        ContactCard {
            version: 1,
            identity: IdentityKey([9; 32]),
            peer_id: vec![1, 2, 3],
            addrs: vec![vec![4, 5]],
        }
    }

    #[test]
    fn roundtrip() {
        let code = card().to_code().unwrap();
        assert!(code.starts_with(PREFIX));
        assert_eq!(
            ContactCard::from_code(&format!("  {code}\n")).unwrap(),
            card()
        );
    }

    #[test]
    fn typo_is_caught() {
        let code = card().to_code().unwrap();
        let mut chars: Vec<char> = code.chars().collect();
        let i = chars.len() - 3;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        let bad: String = chars.into_iter().collect();
        assert!(ContactCard::from_code(&bad).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,300}") {
            let _ = ContactCard::from_code(&s);
            let _ = ContactCard::from_code(&format!("kith1{s}"));
        }
    }
}
