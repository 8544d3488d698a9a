use kith_proto::record::{DeviceCert, PrekeyBundle};
use kith_proto::wire::Envelope;
use kith_types::{CurveKey, now_ms};
use vodozemac::Curve25519PublicKey;
use vodozemac::olm::{Account, AccountPickle, OlmMessage, SessionConfig};

use crate::seal::{SealKey, seal_secret};
use crate::{CryptoError, Identity, StorageKey};

/// This device's Olm account and certificate.
pub struct Device {
    pub(crate) account: Account,
    cert: DeviceCert,
    /// Opens envelopes sealed to this device ([`crate::seal`]).
    seal: SealKey,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("curve25519", &self.cert.curve25519.short())
            .finish_non_exhaustive()
    }
}

impl Device {
    /// A new device for `identity`, reachable as libp2p peer `peer_id` (encoded).
    pub fn generate(identity: &Identity, peer_id: Vec<u8>) -> Result<Self, CryptoError> {
        let mut account = Account::new();
        account.generate_fallback_key();
        let cert = Self::certify(identity, &account, peer_id)?;
        let seal = seal_secret(&account)?;
        Ok(Self {
            account,
            cert,
            seal,
        })
    }

    fn certify(
        identity: &Identity,
        account: &Account,
        peer_id: Vec<u8>,
    ) -> Result<DeviceCert, CryptoError> {
        let keys = account.identity_keys();
        let mut cert = DeviceCert {
            identity: identity.public(),
            peer_id,
            curve25519: CurveKey(keys.curve25519.to_bytes()),
            ed25519: *keys.ed25519.as_bytes(),
            created_ms: now_ms(),
            signature: Vec::new(),
        };
        let msg = cert
            .signing_bytes()
            .map_err(|e| CryptoError::Encode(e.to_string()))?;
        cert.signature = identity.sign(&msg);
        Ok(cert)
    }

    /// Restores a device from its encrypted pickle and certificate.
    pub fn restore(pickle: &str, cert: DeviceCert, key: &StorageKey) -> Result<Self, CryptoError> {
        let p = AccountPickle::from_encrypted(pickle, &key.0)
            .map_err(|e| CryptoError::Pickle(e.to_string()))?;
        let account = Account::from_pickle(p);
        if account.curve25519_key().to_bytes() != cert.curve25519.0 {
            return Err(CryptoError::Pickle(
                "certificate does not match account".into(),
            ));
        }
        let seal = seal_secret(&account)?;
        Ok(Self {
            account,
            cert,
            seal,
        })
    }

    /// The encrypted pickle to save.
    pub fn pickle(&self, key: &StorageKey) -> String {
        self.account.pickle().encrypt(&key.0)
    }

    /// This device's certificate.
    pub fn cert(&self) -> &DeviceCert {
        &self.cert
    }

    /// Opens an envelope sealed to this device ([`crate::seal`]): the Olm envelope inside and
    /// the sender's key the seal names.
    pub fn open_seal(&self, env: &Envelope) -> Result<crate::seal::Unsealed, CryptoError> {
        self.seal.open(env)
    }

    /// This device's Curve25519 key, which names it in envelopes.
    pub fn curve_key(&self) -> CurveKey {
        self.cert.curve25519
    }

    /// Proves to another device (a mailbox) that this device holds the secret of its
    /// Curve25519 key: an Olm pre-key message to the other device, made from the pre-key
    /// `bundle` it handed out, carrying `binding`. Only the holder of this device's
    /// Curve25519 secret can make one that opens (Olm's triple Diffie-Hellman mixes it in).
    /// The session is thrown away. See docs/protocol.md, "Mailbox registration".
    pub fn prove_key(&self, bundle: &PrekeyBundle, binding: &[u8]) -> Result<Vec<u8>, CryptoError> {
        bundle.validate().map_err(|_| CryptoError::BadSignature)?;
        let mut session = self
            .account
            .create_outbound_session(
                SessionConfig::version_1(),
                Curve25519PublicKey::from_bytes(bundle.cert.curve25519.0),
                Curve25519PublicKey::from_bytes(bundle.one_time_key),
            )
            .map_err(|e| CryptoError::Session(e.to_string()))?;
        match session
            .encrypt(binding)
            .map_err(|e| CryptoError::Session(e.to_string()))?
        {
            OlmMessage::PreKey(m) => Ok(m.to_bytes()),
            OlmMessage::Normal(_) => Err(CryptoError::Session("not a pre-key message".into())),
        }
    }

    /// Checks a proof made by [`Self::prove_key`] for this device: it opens as a pre-key
    /// message from `holder` (using up the one-time key it names, if not the fallback key)
    /// and carries exactly `binding`. Any failure is `false`.
    pub fn check_key_proof(&mut self, holder: CurveKey, proof: &[u8], binding: &[u8]) -> bool {
        let Ok(OlmMessage::PreKey(pre)) = OlmMessage::from_parts(0, proof) else {
            return false;
        };
        if pre.identity_key().to_bytes() != holder.0 {
            return false;
        }
        self.account
            .create_inbound_session(
                SessionConfig::version_1(),
                Curve25519PublicKey::from_bytes(holder.0),
                &pre,
            )
            .is_ok_and(|created| created.plaintext == binding)
    }

    /// The current fallback pre-key (the one published in the user record).
    pub fn fallback_key(&self) -> Option<[u8; 32]> {
        self.account
            .fallback_key()
            .values()
            .next()
            .map(|k| k.to_bytes())
    }

    /// Makes a new fallback pre-key; the one it replaces keeps opening sessions until
    /// [`Device::retire_previous_fallback`] (vodozemac keeps one previous fallback key).
    /// Returns the new key. The account changed and must be saved.
    pub fn rotate_fallback(&mut self) -> Option<[u8; 32]> {
        self.account.generate_fallback_key();
        self.fallback_key()
    }

    /// Drops the previous fallback pre-key: pre-key messages on it no longer open a session.
    /// Whether there was one. The account changed and must be saved.
    pub fn retire_previous_fallback(&mut self) -> bool {
        self.account.forget_fallback_key()
    }

    /// Makes a fresh one-time key and returns it signed, for a peer that wants to open a
    /// session. With `fallback_only` (the peer has claimed too many), the fallback key is
    /// given instead, which does not use up account state.
    ///
    /// Keys are never marked published: Kith hands them out one at a time, so the account's
    /// "unpublished" list is only a convenient way to read the current fallback key back.
    pub fn claim_prekey(&mut self, fallback_only: bool) -> PrekeyBundle {
        let fallback = self.account.fallback_key().values().next().copied();
        let fresh = if fallback_only && fallback.is_some() {
            None
        } else {
            self.account
                .generate_one_time_keys(1)
                .created
                .first()
                .copied()
        };
        let (key, is_fallback) = match (fresh, fallback) {
            (Some(k), _) => (k, false),
            (None, Some(k)) => (k, true),
            (None, None) => {
                self.account.generate_fallback_key();
                let k = self.account.fallback_key().values().next().copied();
                (k.unwrap_or_else(|| self.account.curve25519_key()), true)
            }
        };
        let bytes = key.to_bytes();
        let sig = self
            .account
            .sign(PrekeyBundle::signing_bytes(&bytes, is_fallback))
            .to_bytes()
            .to_vec();
        PrekeyBundle {
            cert: self.cert.clone(),
            one_time_key: bytes,
            is_fallback,
            signature: sig,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(peer: u8) -> Device {
        Device::generate(&Identity::generate(), vec![peer; 3]).unwrap()
    }

    /// Issue 14, hole 2: only the holder of a Curve25519 key can prove it to a mailbox, for
    /// exactly the binding it was made for.
    #[test]
    fn only_the_holder_of_a_key_can_prove_it() {
        let alice = device(1);
        let mallory = device(2);
        let mut mailbox = device(3);
        let binding = b"alice at this mailbox".to_vec();
        let proof = alice
            .prove_key(&mailbox.claim_prekey(false), &binding)
            .unwrap();
        assert!(!mailbox.check_key_proof(alice.curve_key(), &proof, b"another binding"));
        let proof = alice
            .prove_key(&mailbox.claim_prekey(false), &binding)
            .unwrap();
        assert!(mailbox.check_key_proof(alice.curve_key(), &proof, &binding));
        // Mallory's own proof names Mallory's key, never Alice's.
        let forged = mallory
            .prove_key(&mailbox.claim_prekey(true), &binding)
            .unwrap();
        assert!(!mailbox.check_key_proof(alice.curve_key(), &forged, &binding));
        assert!(!mailbox.check_key_proof(alice.curve_key(), b"junk", &binding));
        assert!(!mailbox.check_key_proof(alice.curve_key(), &[], &binding));
        // A proof made from the fallback key opens too (it uses up no key).
        let proof = alice
            .prove_key(&mailbox.claim_prekey(true), &binding)
            .unwrap();
        assert!(mailbox.check_key_proof(alice.curve_key(), &proof, &binding));
    }
}
