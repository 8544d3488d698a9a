//! The one place that knows the byte encoding (bincode 2, standard config, varint integers).
//!
//! `decode` refuses input longer than the caller's limit before it looks at it, and bincode is
//! told the same limit so a length prefix inside the input cannot make it allocate more.
//! Trailing bytes after a value are an error: one value, one encoding.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest value any Kith decoder accepts (1 MiB). Callers pass tighter limits.
pub const HARD_LIMIT: usize = 1 << 20;

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than the limit for this kind of value.
    #[error("input of {len} bytes is over the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    /// The bytes are not a valid encoding of the expected value.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// The value decoded but bytes were left over.
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
    /// A version this node does not speak.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The value decoded but breaks a rule (a field out of range, a bad key).
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// A signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// A record whose validity period is over (or not yet begun).
    #[error("expired or not yet valid")]
    Expired,
}

/// Why a value could not be encoded (serde refused it; sizes are checked by decoders and by
/// the frame writer, not here).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode: {0}")]
pub struct EncodeError(String);

impl EncodeError {
    /// An encoding refused for a reason of the caller's.
    pub(crate) fn other(why: &str) -> Self {
        Self(why.to_string())
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<HARD_LIMIT>()
}

/// Encodes a value. Sizes are not checked here: decoders and the frame writer enforce limits.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| EncodeError(e.to_string()))
}

/// Decodes exactly one value from `bytes`, which must be at most `limit` bytes long.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, DecodeError> {
    let limit = limit.min(HARD_LIMIT);
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_checked_before_decoding() {
        let bytes = encode(&vec![0u8; 100]).unwrap();
        assert!(matches!(
            decode::<Vec<u8>>(&bytes, 50),
            Err(DecodeError::TooLarge { .. })
        ));
        assert_eq!(decode::<Vec<u8>>(&bytes, 200).unwrap().len(), 100);
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // A Vec<u8> claiming u64::MAX elements, in 10 bytes.
        let mut bytes = vec![255u8];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<Vec<u8>>(&bytes, 1024).is_err());
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut bytes = encode(&7u32).unwrap();
        bytes.push(0);
        assert_eq!(decode::<u32>(&bytes, 16), Err(DecodeError::Trailing(1)));
    }
}

/// Serde helper for `Vec<Vec<u8>>` fields: each entry is encoded as a byte string (one length
/// and a copy) rather than as a sequence of single bytes.
pub mod byte_list {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    /// Serializes a list of byte strings.
    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| Bytes::new(b)))
    }

    /// Deserializes a list of byte strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v: Vec<ByteBuf> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(ByteBuf::into_vec).collect())
    }
}
