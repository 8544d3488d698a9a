//! Signed records: a device's certificate, a pre-key bundle and the user record kept in the DHT.
//!
//! Each record is signed over a domain-separated encoding of its other fields. `validate`
//! checks sizes, the signatures and the validity period; a record that fails is refused as a
//! whole.

use ed25519_dalek::{Signature, VerifyingKey};
use kith_types::{CurveKey, IdentityKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, DecodeError, EncodeError};

pub use crate::limits::{MAX_ADDR, MAX_ADDRS, MAX_PEER_ID};

/// Most devices in one user record.
pub const MAX_DEVICES: usize = 8;
/// Longest a user record may be valid for.
pub const MAX_RECORD_LIFETIME_MS: u64 = 48 * 3600 * 1000;
/// How far in the future a record's issue time may be (clock skew).
pub const MAX_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;
/// Largest encoded user record.
pub const MAX_USER_RECORD: usize = 8 * 1024;

pub(crate) fn verify(key: &[u8; 32], msg: &[u8], sig: &[u8]) -> Result<(), DecodeError> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| DecodeError::Invalid("bad public key"))?;
    let sig = Signature::from_slice(sig).map_err(|_| DecodeError::BadSignature)?;
    key.verify_strict(msg, &sig)
        .map_err(|_| DecodeError::BadSignature)
}

pub(crate) fn signable<T: Serialize>(domain: &[u8], value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = domain.to_vec();
    out.extend_from_slice(&codec::encode(value)?);
    Ok(out)
}

fn check_addrs(addrs: &[Vec<u8>]) -> Result<(), DecodeError> {
    if addrs.len() > MAX_ADDRS {
        return Err(DecodeError::Invalid("too many addresses"));
    }
    if addrs.iter().any(|a| a.is_empty() || a.len() > MAX_ADDR) {
        return Err(DecodeError::Invalid("address length"));
    }
    Ok(())
}

/// A device's keys, signed by its owner's identity key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCert {
    /// The owner's ed25519 identity key (a byte string, as `serde_bytes` wrote it).
    pub identity: IdentityKey,
    /// The device's libp2p peer id (encoded).
    #[serde(with = "serde_bytes")]
    pub peer_id: Vec<u8>,
    /// The device's Olm Curve25519 identity key (a byte string).
    pub curve25519: CurveKey,
    /// The device's Olm Ed25519 signing key.
    #[serde(with = "serde_bytes")]
    pub ed25519: [u8; 32],
    /// When the certificate was made.
    pub created_ms: u64,
    /// The identity's signature over the fields above (64 bytes).
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

#[derive(Serialize)]
struct DeviceCertBody<'a> {
    identity: &'a IdentityKey,
    #[serde(with = "serde_bytes")]
    peer_id: &'a [u8],
    curve25519: &'a CurveKey,
    #[serde(with = "serde_bytes")]
    ed25519: &'a [u8; 32],
    created_ms: u64,
}

impl DeviceCert {
    /// The bytes the identity key signs.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        signable(
            b"kith-device-cert-v1",
            &DeviceCertBody {
                identity: &self.identity,
                peer_id: &self.peer_id,
                curve25519: &self.curve25519,
                ed25519: &self.ed25519,
                created_ms: self.created_ms,
            },
        )
    }

    /// Checks sizes and the identity's signature.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.peer_id.is_empty() || self.peer_id.len() > MAX_PEER_ID {
            return Err(DecodeError::Invalid("peer id length"));
        }
        let msg = self
            .signing_bytes()
            .map_err(|_| DecodeError::Invalid("unencodable"))?;
        verify(self.identity.as_bytes(), &msg, &self.signature)
    }
}

/// A one-time (or fallback) Curve25519 key a device hands out so a peer can open an Olm
/// session with it, signed by the device's Olm Ed25519 key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrekeyBundle {
    /// The device's certificate.
    pub cert: DeviceCert,
    /// The one-time key (or the fallback key when none are left).
    #[serde(with = "serde_bytes")]
    pub one_time_key: [u8; 32],
    /// Whether `one_time_key` is the fallback key.
    pub is_fallback: bool,
    /// The device's Ed25519 signature over the key (64 bytes).
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl PrekeyBundle {
    /// The bytes the device key signs.
    pub fn signing_bytes(one_time_key: &[u8; 32], is_fallback: bool) -> Vec<u8> {
        let mut out = b"kith-prekey-v1".to_vec();
        out.extend_from_slice(one_time_key);
        out.push(u8::from(is_fallback));
        out
    }

    /// Checks the certificate and the device's signature over the key.
    pub fn validate(&self) -> Result<(), DecodeError> {
        self.cert.validate()?;
        let msg = Self::signing_bytes(&self.one_time_key, self.is_fallback);
        verify(&self.cert.ed25519, &msg, &self.signature)
    }
}

/// One device listed in a user record, with where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordDevice {
    /// The device's certificate.
    pub cert: DeviceCert,
    /// Its current multiaddrs (encoded), direct or relayed.
    #[serde(with = "crate::codec::byte_list")]
    pub addrs: Vec<Vec<u8>>,
    /// Mailboxes that accept envelopes for it while it is offline.
    pub mailboxes: Vec<MailboxRef>,
    /// Its signed fallback pre-key, so a first message can be sealed while it is offline.
    pub prekey: Option<PrekeyBundle>,
}

/// Most mailboxes listed for one device.
pub const MAX_MAILBOXES: usize = 4;

/// A mailbox peer: where senders deposit envelopes for a device that is offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxRef {
    /// The mailbox's libp2p peer id (encoded).
    #[serde(with = "serde_bytes")]
    pub peer_id: Vec<u8>,
    /// Its addresses (encoded multiaddrs).
    #[serde(with = "crate::codec::byte_list")]
    pub addrs: Vec<Vec<u8>>,
}

impl MailboxRef {
    /// Checks sizes.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.peer_id.is_empty() || self.peer_id.len() > MAX_PEER_ID {
            return Err(DecodeError::Invalid("mailbox peer id length"));
        }
        check_addrs(&self.addrs)
    }
}

/// What a person publishes in the DHT under [`user_record_key`]: their devices and where to
/// reach them. It carries keys and reachability only, never presence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Format version (1).
    pub version: u8,
    /// The person's identity key (a byte string).
    pub identity: IdentityKey,
    /// Their devices.
    pub devices: Vec<RecordDevice>,
    /// When it was issued; a newer record replaces an older one.
    pub issued_ms: u64,
    /// When it stops being valid.
    pub expires_ms: u64,
    /// The identity's signature over the fields above (64 bytes).
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

#[derive(Serialize)]
struct UserRecordBody<'a> {
    version: u8,
    identity: &'a IdentityKey,
    devices: &'a [RecordDevice],
    issued_ms: u64,
    expires_ms: u64,
}

impl UserRecord {
    /// The bytes the identity key signs.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        signable(
            b"kith-user-record-v1",
            &UserRecordBody {
                version: self.version,
                identity: &self.identity,
                devices: &self.devices,
                issued_ms: self.issued_ms,
                expires_ms: self.expires_ms,
            },
        )
    }

    /// Decodes and validates a record fetched from, or put into, the DHT.
    pub fn decode_valid(bytes: &[u8], now_ms: u64) -> Result<Self, DecodeError> {
        let rec: UserRecord = codec::decode(bytes, MAX_USER_RECORD)?;
        rec.validate(now_ms)?;
        Ok(rec)
    }

    /// Checks version, sizes, validity period and every signature.
    pub fn validate(&self, now_ms: u64) -> Result<(), DecodeError> {
        if self.version != 1 {
            return Err(DecodeError::UnsupportedVersion(self.version));
        }
        if self.devices.is_empty() || self.devices.len() > MAX_DEVICES {
            return Err(DecodeError::Invalid("device count"));
        }
        if self.expires_ms <= self.issued_ms
            || self.expires_ms - self.issued_ms > MAX_RECORD_LIFETIME_MS
        {
            return Err(DecodeError::Invalid("validity period"));
        }
        if now_ms >= self.expires_ms || self.issued_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(DecodeError::Expired);
        }
        for d in &self.devices {
            if d.cert.identity != self.identity {
                return Err(DecodeError::Invalid("device of another identity"));
            }
            check_addrs(&d.addrs)?;
            if d.mailboxes.len() > MAX_MAILBOXES {
                return Err(DecodeError::Invalid("too many mailboxes"));
            }
            for m in &d.mailboxes {
                m.validate()?;
            }
            if let Some(p) = &d.prekey {
                if p.cert != d.cert || !p.is_fallback {
                    return Err(DecodeError::Invalid("pre-key of another device"));
                }
                p.validate()?;
            }
            d.cert.validate()?;
        }
        let msg = self
            .signing_bytes()
            .map_err(|_| DecodeError::Invalid("unencodable"))?;
        verify(self.identity.as_bytes(), &msg, &self.signature)
    }
}

/// The DHT key under which a person's user record is kept: SHA-256 of a domain tag and the
/// identity key, so the key itself does not show the identity.
pub fn user_record_key(identity: &IdentityKey) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"kith-user-record-key-v1");
    h.update(identity.as_bytes());
    h.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed_record(key: &SigningKey, issued: u64, expires: u64) -> UserRecord {
        let identity = IdentityKey(key.verifying_key().to_bytes());
        let mut cert = DeviceCert {
            identity,
            peer_id: vec![1, 2, 3],
            curve25519: CurveKey([4; 32]),
            ed25519: [5; 32],
            created_ms: 1,
            signature: Vec::new(),
        };
        cert.signature = key.sign(&cert.signing_bytes().unwrap()).to_bytes().to_vec();
        let mut rec = UserRecord {
            version: 1,
            identity,
            devices: vec![RecordDevice {
                cert,
                addrs: vec![vec![9; 8]],
                mailboxes: Vec::new(),
                prekey: None,
            }],
            issued_ms: issued,
            expires_ms: expires,
            signature: Vec::new(),
        };
        rec.signature = key.sign(&rec.signing_bytes().unwrap()).to_bytes().to_vec();
        rec
    }

    const NOW: u64 = 1_000_000_000;

    #[test]
    fn valid_record_roundtrips() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let rec = signed_record(&key, NOW - 10, NOW + 1000);
        let bytes = codec::encode(&rec).unwrap();
        assert_eq!(UserRecord::decode_valid(&bytes, NOW).unwrap(), rec);
    }

    #[test]
    fn forged_expired_and_foreign_records_are_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);

        let mut forged = signed_record(&key, NOW - 10, NOW + 1000);
        forged.devices[0].addrs = vec![vec![6; 8]];
        assert_eq!(forged.validate(NOW), Err(DecodeError::BadSignature));

        let expired = signed_record(&key, NOW - 1000, NOW - 1);
        assert_eq!(expired.validate(NOW), Err(DecodeError::Expired));

        let too_long = signed_record(&key, NOW, NOW + MAX_RECORD_LIFETIME_MS + 1);
        assert!(matches!(
            too_long.validate(NOW),
            Err(DecodeError::Invalid(_))
        ));

        // A device certified by another identity cannot be listed.
        let mut foreign = signed_record(&key, NOW - 10, NOW + 1000);
        foreign.devices[0].cert = signed_record(&other, NOW - 10, NOW + 1000).devices[0]
            .cert
            .clone();
        foreign.signature = key
            .sign(&foreign.signing_bytes().unwrap())
            .to_bytes()
            .to_vec();
        assert!(matches!(
            foreign.validate(NOW),
            Err(DecodeError::Invalid(_))
        ));

        assert_ne!(
            user_record_key(&IdentityKey([1; 32])),
            user_record_key(&IdentityKey([2; 32]))
        );
    }

    /// `DeviceCert` and `UserRecord` as they were before their keys were typed: every key a
    /// `serde_bytes` array.
    mod old {
        use serde::{Deserialize, Serialize};

        #[derive(Serialize, Deserialize)]
        pub struct DeviceCert {
            #[serde(with = "serde_bytes")]
            pub identity: [u8; 32],
            #[serde(with = "serde_bytes")]
            pub peer_id: Vec<u8>,
            #[serde(with = "serde_bytes")]
            pub curve25519: [u8; 32],
            #[serde(with = "serde_bytes")]
            pub ed25519: [u8; 32],
            pub created_ms: u64,
            #[serde(with = "serde_bytes")]
            pub signature: Vec<u8>,
        }

        #[derive(Serialize, Deserialize)]
        pub struct RecordDevice {
            pub cert: DeviceCert,
            #[serde(with = "crate::codec::byte_list")]
            pub addrs: Vec<Vec<u8>>,
            pub mailboxes: Vec<()>, // empty here
            pub prekey: Option<()>, // none here
        }

        #[derive(Serialize, Deserialize)]
        pub struct UserRecord {
            pub version: u8,
            #[serde(with = "serde_bytes")]
            pub identity: [u8; 32],
            pub devices: Vec<RecordDevice>,
            pub issued_ms: u64,
            pub expires_ms: u64,
            #[serde(with = "serde_bytes")]
            pub signature: Vec<u8>,
        }
    }

    #[test]
    fn typed_keys_keep_the_old_encoding() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let rec = signed_record(&key, NOW - 10, NOW + 1000);
        let c = &rec.devices[0].cert;
        let old_cert = old::DeviceCert {
            identity: key.verifying_key().to_bytes(),
            peer_id: c.peer_id.clone(),
            curve25519: [4; 32],
            ed25519: c.ed25519,
            created_ms: c.created_ms,
            signature: c.signature.clone(),
        };
        let old_rec = old::UserRecord {
            version: 1,
            identity: key.verifying_key().to_bytes(),
            devices: vec![old::RecordDevice {
                cert: old_cert,
                addrs: rec.devices[0].addrs.clone(),
                mailboxes: Vec::new(),
                prekey: None,
            }],
            issued_ms: rec.issued_ms,
            expires_ms: rec.expires_ms,
            signature: rec.signature.clone(),
        };
        let old_bytes = codec::encode(&old_rec).unwrap();
        // Bytes written by the old layout decode (signatures and all) into the typed one and
        // encode back to the same bytes.
        let decoded = UserRecord::decode_valid(&old_bytes, NOW).unwrap();
        assert_eq!(decoded, rec);
        assert_eq!(codec::encode(&decoded).unwrap(), old_bytes);
        let cert_bytes = codec::encode(&old_rec.devices[0].cert).unwrap();
        let cert: DeviceCert = codec::decode(&cert_bytes, MAX_USER_RECORD).unwrap();
        assert_eq!(&cert, c);
        assert_eq!(codec::encode(&cert).unwrap(), cert_bytes);
        // A 32-byte key is a length then the bytes, not 32 bare bytes.
        let mut prefix = vec![32u8];
        prefix.extend_from_slice(key.verifying_key().as_bytes());
        assert_eq!(&cert_bytes[..33], &prefix[..]);
    }
}
