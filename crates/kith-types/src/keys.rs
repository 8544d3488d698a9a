//! Fixed-size byte ids: a person's identity key, a device's store key, a device's Curve25519
//! key, a group id, an envelope hash and a group op's hash.
//!
//! Each is a `Copy` newtype over its bytes, so the compiler tells a device key from a
//! Curve25519 key where both are 32 bytes. All six are serialised as one serde byte string
//! (what `#[serde(with = "serde_bytes")]` makes of a byte array: in bincode a length and the
//! bytes), so a field that was a `serde_bytes` array can take the newtype without changing its
//! encoding (a plain array field, a serde tuple of 32 numbers, would not: it has no length).
//! `Debug` shows the type and
//! the first 8 bytes as hex; `Display` shows all the bytes as lowercase hex, except for
//! [`IdentityKey`], whose `Display` is the short form people see.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// How many bytes `Debug` shows (as hex).
const SHORT: usize = 8;

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:literal) => {
        byte_id!(@common $(#[$doc])* $name, $len);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $len:literal, display = short) => {
        byte_id!(@common $(#[$doc])* $name, $len);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.short())
            }
        }
    };
    (@common $(#[$doc:meta])* $name:ident, $len:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        /// Stored as its bytes, under the type name of a byte array of its length, so a
        /// table keyed by the raw array opens as one keyed by the id (and the other way).
        #[cfg(feature = "redb")]
        impl redb::Value for $name {
            type SelfType<'a> = $name;
            type AsBytes<'a> = [u8; $len];

            fn fixed_width() -> Option<usize> {
                Some($len)
            }

            fn from_bytes<'a>(data: &'a [u8]) -> $name
            where
                Self: 'a,
            {
                // redb hands a fixed-width value exactly its width.
                Self::from_slice(data).unwrap_or_default()
            }

            fn as_bytes<'a, 'b: 'a>(value: &'a $name) -> [u8; $len]
            where
                Self: 'b,
            {
                value.0
            }

            fn type_name() -> redb::TypeName {
                <&[u8; $len] as redb::Value>::type_name()
            }
        }

        #[cfg(feature = "redb")]
        impl redb::Key for $name {
            fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
                a.cmp(b)
            }
        }

        impl $name {
            /// The length in bytes.
            pub const LEN: usize = $len;

            /// The id with these bytes.
            pub const fn new(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// The bytes, by value.
            pub const fn to_bytes(self) -> [u8; $len] {
                self.0
            }

            /// The id from a slice of exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(bytes).ok().map(Self)
            }

            /// The first 8 bytes as hex, for logs.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..SHORT])
            }

            /// All the bytes as lowercase hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses the hex form (exactly the right length).
            pub fn from_hex(s: &str) -> Option<Self> {
                hex::decode(s).ok().and_then(|b| Self::from_slice(&b))
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl From<$name> for [u8; $len] {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.short())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_bytes(ArrayVisitor::<$len>).map(Self)
            }
        }
    };
}

/// Reads a byte array of length `N` from a byte string (binary formats) or a sequence of
/// numbers (text formats), as `serde_bytes` does for arrays.
struct ArrayVisitor<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for ArrayVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a byte string of length {N}")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        <[u8; N]>::try_from(v).map_err(|_| E::invalid_length(v.len(), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.visit_bytes(v.as_bytes())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &self))?;
        }
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(N + 1, &self));
        }
        Ok(out)
    }
}

byte_id!(
    /// A person's long-term ed25519 identity public key.
    ///
    /// Contacts are keyed by it; it never changes for the life of an identity. Shown to people
    /// as the short hex fingerprint or, for comparison, as part of a safety number; unlike the
    /// other ids, `Display` shows only that short form (the first 8 bytes as hex).
    IdentityKey,
    32,
    display = short
);

byte_id!(
    /// The key a device is filed under in the store: SHA-256 of its encoded libp2p peer id
    /// (`kith_store::device_key`). Outboxes, sessions, mailbox quotas and delivery state are
    /// keyed by it.
    DeviceKey,
    32
);

byte_id!(
    /// A device's Curve25519 (Olm identity) public key: what an envelope is addressed to.
    CurveKey,
    32
);

byte_id!(
    /// A group's id: the first 16 bytes of the hash of the op that created it.
    GroupId,
    16
);

byte_id!(
    /// The SHA-256 of an encoded envelope, by which a device drops one it already took.
    EnvelopeHash,
    32
);

byte_id!(
    /// The SHA-256 of an encoded group op (`kith_proto::group::GroupOp::hash`): how ops name
    /// their parents and how members ask each other for ops they miss.
    OpHash,
    32
);

/// A `#[serde(with = "kith_types::plain_array")]` adapter: writes a 32-byte id as a plain
/// array (a serde tuple of 32 numbers, no length), as a bare `[u8; 32]` field is written. For
/// stored types that held the raw array before the id was typed, so their encoding stays.
pub mod plain_array {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the bytes as a plain array.
    pub fn serialize<T, S>(id: &T, s: S) -> Result<S::Ok, S::Error>
    where
        T: Copy + Into<[u8; 32]>,
        S: Serializer,
    {
        let bytes: [u8; 32] = (*id).into();
        bytes.serialize(s)
    }

    /// Reads a plain array.
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: From<[u8; 32]>,
        D: Deserializer<'de>,
    {
        <[u8; 32]>::deserialize(d).map(T::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Raw {
        #[serde(with = "serde_bytes")]
        dev: [u8; 32],
        #[serde(with = "serde_bytes")]
        group: [u8; 16],
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Typed {
        dev: DeviceKey,
        group: GroupId,
    }

    fn cfg() -> impl bincode::config::Config {
        bincode::config::standard()
    }

    #[test]
    fn encoding_matches_serde_bytes_arrays() {
        let raw = Raw {
            dev: [7; 32],
            group: [9; 16],
        };
        let typed = Typed {
            dev: DeviceKey([7; 32]),
            group: GroupId([9; 16]),
        };
        let a = bincode::serde::encode_to_vec(&raw, cfg()).unwrap();
        let b = bincode::serde::encode_to_vec(&typed, cfg()).unwrap();
        assert_eq!(a, b);
        let (back, _): (Typed, usize) = bincode::serde::decode_from_slice(&a, cfg()).unwrap();
        assert_eq!(back, typed);
        assert_eq!(
            serde_json::to_string(&raw).unwrap(),
            serde_json::to_string(&typed).unwrap()
        );
        let json = serde_json::to_string(&typed).unwrap();
        assert_eq!(serde_json::from_str::<Typed>(&json).unwrap(), typed);
    }

    #[test]
    fn wrong_length_is_refused() {
        let raw = Raw {
            dev: [7; 32],
            group: [9; 16],
        };
        // A 16-byte string where 32 are expected.
        #[derive(Serialize)]
        struct Short {
            #[serde(with = "serde_bytes")]
            dev: [u8; 16],
            #[serde(with = "serde_bytes")]
            group: [u8; 16],
        }
        let bytes = bincode::serde::encode_to_vec(
            Short {
                dev: [1; 16],
                group: raw.group,
            },
            cfg(),
        )
        .unwrap();
        assert!(bincode::serde::decode_from_slice::<Typed, _>(&bytes, cfg()).is_err());
    }

    #[test]
    fn identity_key_encodes_as_serde_bytes_array() {
        #[derive(Serialize)]
        struct RawId {
            #[serde(with = "serde_bytes")]
            identity: [u8; 32],
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct TypedId {
            identity: IdentityKey,
        }
        let a = bincode::serde::encode_to_vec(RawId { identity: [5; 32] }, cfg()).unwrap();
        // A length, then the bytes (a plain array would be the 32 bytes alone).
        assert_eq!(a.len(), 33);
        let (back, _): (TypedId, usize) = bincode::serde::decode_from_slice(&a, cfg()).unwrap();
        assert_eq!(back.identity, IdentityKey([5; 32]));
        assert_eq!(bincode::serde::encode_to_vec(&back, cfg()).unwrap(), a);
    }

    #[test]
    fn identity_key_displays_short() {
        let k = IdentityKey([0xcd; 32]);
        assert_eq!(k.to_string(), "cd".repeat(8));
        assert_eq!(format!("{k:?}"), "IdentityKey(cdcdcdcdcdcdcdcd)");
        assert_eq!(k.to_hex(), "cd".repeat(32));
        assert_eq!(IdentityKey::from_hex(&k.to_hex()), Some(k));
    }

    #[test]
    fn debug_is_short_display_is_full_hex() {
        let k = CurveKey([0xab; 32]);
        assert_eq!(format!("{k:?}"), "CurveKey(abababababababab)");
        assert_eq!(k.to_string(), "ab".repeat(32));
        assert_eq!(CurveKey::from_hex(&k.to_hex()), Some(k));
        assert_eq!(GroupId::from_hex("abcd"), None);
        assert_eq!(GroupId::from_slice(&[1; 16]), Some(GroupId([1; 16])));
        assert_eq!(<[u8; 32]>::from(EnvelopeHash::from([3; 32])), [3; 32]);
        let h = OpHash([0x0f; 32]);
        assert_eq!(h.to_string(), "0f".repeat(32));
        assert_eq!(format!("{h:?}"), "OpHash(0f0f0f0f0f0f0f0f)");
    }

    #[test]
    fn plain_adapter_matches_a_bare_array() {
        #[derive(Serialize)]
        struct RawPlain {
            dev: [u8; 32],
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct TypedPlain {
            #[serde(with = "plain_array")]
            dev: CurveKey,
        }
        let a = bincode::serde::encode_to_vec(RawPlain { dev: [6; 32] }, cfg()).unwrap();
        // No length: the 32 bytes alone.
        assert_eq!(a.len(), 32);
        let (back, _): (TypedPlain, usize) = bincode::serde::decode_from_slice(&a, cfg()).unwrap();
        assert_eq!(back.dev, CurveKey([6; 32]));
        assert_eq!(bincode::serde::encode_to_vec(&back, cfg()).unwrap(), a);
    }
}
