use kith_proto::record::PrekeyBundle;
use kith_proto::wire::Envelope;
use kith_types::CurveKey;
use sha2::{Digest, Sha256};
use vodozemac::Curve25519PublicKey;
use vodozemac::olm::{OlmMessage, Session, SessionConfig, SessionPickle};

use crate::{CryptoError, Device, StorageKey};

/// Most Olm sessions kept with one remote device. Two appear when both sides open a session
/// at once; more only after resets. The least recently used is dropped.
pub const MAX_SESSIONS_PER_DEVICE: usize = 4;

/// The Olm sessions with one remote device, most recently used first.
pub struct PeerSessions {
    remote: CurveKey,
    sessions: Vec<Session>,
}

impl std::fmt::Debug for PeerSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSessions")
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// A decrypted message.
#[derive(Debug)]
pub struct Decrypted {
    /// The plaintext (a `Sealed` encoding).
    pub plaintext: Vec<u8>,
    /// Whether a new inbound session was created (the account changed and must be saved).
    pub new_session: bool,
}

impl PeerSessions {
    /// No sessions yet with the device whose Curve25519 key is `remote`.
    pub fn new(remote: CurveKey) -> Self {
        Self {
            remote,
            sessions: Vec::new(),
        }
    }

    /// Restores sessions saved by [`PeerSessions::pickles`].
    pub fn restore(
        remote: CurveKey,
        pickles: &[String],
        key: &StorageKey,
    ) -> Result<Self, CryptoError> {
        let mut sessions = Vec::with_capacity(pickles.len());
        for p in pickles.iter().take(MAX_SESSIONS_PER_DEVICE) {
            let p = SessionPickle::from_encrypted(p, &key.0)
                .map_err(|e| CryptoError::Pickle(e.to_string()))?;
            sessions.push(Session::from_pickle(p));
        }
        Ok(Self { remote, sessions })
    }

    /// Encrypted pickles of every session, most recently used first.
    pub fn pickles(&self, key: &StorageKey) -> Vec<String> {
        self.sessions
            .iter()
            .map(|s| s.pickle().encrypt(&key.0))
            .collect()
    }

    /// The remote device's Curve25519 key.
    pub fn remote(&self) -> CurveKey {
        self.remote
    }

    /// Whether there is a session to encrypt with.
    pub fn has_session(&self) -> bool {
        !self.sessions.is_empty()
    }

    /// Whether the session in use has heard from the other side (so it no longer needs to
    /// carry our device certificate).
    pub fn answered(&self) -> bool {
        self.sessions
            .first()
            .is_some_and(|s| s.has_received_message())
    }

    /// Opens an outbound session from the remote device's validated pre-key bundle.
    pub fn open_outbound(
        &mut self,
        device: &Device,
        bundle: &PrekeyBundle,
    ) -> Result<(), CryptoError> {
        bundle.validate().map_err(|_| CryptoError::BadSignature)?;
        if bundle.cert.curve25519 != self.remote {
            return Err(CryptoError::BadKey);
        }
        let session = device
            .account
            .create_outbound_session(
                SessionConfig::version_1(),
                Curve25519PublicKey::from_bytes(self.remote.0),
                Curve25519PublicKey::from_bytes(bundle.one_time_key),
            )
            .map_err(|e| CryptoError::Session(e.to_string()))?;
        self.push_front(session);
        Ok(())
    }

    fn push_front(&mut self, s: Session) {
        self.sessions.insert(0, s);
        self.sessions.truncate(MAX_SESSIONS_PER_DEVICE);
    }

    /// Encrypts with the session in use.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Envelope, CryptoError> {
        let session = self
            .sessions
            .first_mut()
            .ok_or_else(|| CryptoError::Session("no session".into()))?;
        let msg = session
            .encrypt(plaintext)
            .map_err(|e| CryptoError::Session(e.to_string()))?;
        let (kind, ciphertext) = msg.to_parts();
        Ok(Envelope {
            to_device: self.remote,
            kind: kind as u8,
            ciphertext,
        })
    }

    /// The sender's Curve25519 key named inside a pre-key envelope (normal envelopes name no
    /// sender).
    pub fn prekey_sender(env: &Envelope) -> Option<CurveKey> {
        match OlmMessage::from_parts(usize::from(env.kind), &env.ciphertext) {
            Ok(OlmMessage::PreKey(m)) => Some(CurveKey(m.identity_key().to_bytes())),
            _ => None,
        }
    }

    /// The sender's Olm ratchet key an envelope carries (in clear, in normal and pre-key
    /// messages alike): what a relayed envelope is indexed by.
    pub fn ratchet_key(env: &Envelope) -> Option<[u8; 32]> {
        match OlmMessage::from_parts(usize::from(env.kind), &env.ciphertext) {
            Ok(OlmMessage::Normal(m)) => Some(m.ratchet_key().to_bytes()),
            Ok(OlmMessage::PreKey(m)) => Some(m.message().ratchet_key().to_bytes()),
            Err(_) => None,
        }
    }

    /// For a pre-key envelope: the session it would open (a SHA-256 of its identity, base
    /// and one-time keys, the same for every pre-key message of one session) and the pre-key
    /// of ours it used.
    pub fn prekey_session(env: &Envelope) -> Option<([u8; 32], [u8; 32])> {
        match OlmMessage::from_parts(usize::from(env.kind), &env.ciphertext) {
            Ok(OlmMessage::PreKey(m)) => {
                let mut h = Sha256::new();
                h.update(b"kith prekey session");
                h.update(m.identity_key().as_bytes());
                h.update(m.base_key().as_bytes());
                h.update(m.one_time_key().as_bytes());
                Some((h.finalize().into(), m.one_time_key().to_bytes()))
            }
            _ => None,
        }
    }

    /// Whether a pre-key envelope belongs to a session already held here (then it opens, or
    /// not, in that session, and opens no new one).
    pub fn holds_session_of(&self, env: &Envelope) -> bool {
        match OlmMessage::from_parts(usize::from(env.kind), &env.ciphertext) {
            Ok(OlmMessage::PreKey(m)) => {
                let id = m.session_id();
                self.sessions.iter().any(|s| s.session_id() == id)
            }
            _ => false,
        }
    }

    /// Decrypts an envelope from this remote device, creating an inbound session (and using up
    /// one of our one-time keys) for a new pre-key message.
    pub fn decrypt(
        &mut self,
        device: &mut Device,
        env: &Envelope,
    ) -> Result<Decrypted, CryptoError> {
        let msg = OlmMessage::from_parts(usize::from(env.kind), &env.ciphertext)
            .map_err(|e| CryptoError::Decrypt(e.to_string()))?;
        if let OlmMessage::PreKey(pre) = &msg {
            if pre.identity_key().to_bytes() != self.remote.0 {
                return Err(CryptoError::BadKey);
            }
            let id = pre.session_id();
            if let Some(i) = self.sessions.iter().position(|s| s.session_id() == id) {
                let plaintext = self.sessions[i]
                    .decrypt(&msg)
                    .map_err(|e| CryptoError::Decrypt(e.to_string()))?;
                self.touch(i);
                return Ok(Decrypted {
                    plaintext,
                    new_session: false,
                });
            }
            let created = device
                .account
                .create_inbound_session(
                    SessionConfig::version_1(),
                    Curve25519PublicKey::from_bytes(self.remote.0),
                    pre,
                )
                .map_err(|e| CryptoError::Decrypt(e.to_string()))?;
            self.push_front(created.session);
            return Ok(Decrypted {
                plaintext: created.plaintext,
                new_session: true,
            });
        }
        let mut last_err = String::from("no session");
        for i in 0..self.sessions.len() {
            match self.sessions[i].decrypt(&msg) {
                Ok(plaintext) => {
                    self.touch(i);
                    return Ok(Decrypted {
                        plaintext,
                        new_session: false,
                    });
                }
                Err(e) => last_err = e.to_string(),
            }
        }
        Err(CryptoError::Decrypt(last_err))
    }

    fn touch(&mut self, i: usize) {
        if i > 0 {
            let s = self.sessions.remove(i);
            self.sessions.insert(0, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    fn device() -> (Identity, Device) {
        let id = Identity::generate();
        let d = Device::generate(&id, vec![1, 2, 3]).unwrap();
        (id, d)
    }

    #[test]
    fn first_message_then_reply_then_replay_refused() {
        let (_, alice) = device();
        let (_, mut bob) = device();
        let mut a2b = PeerSessions::new(bob.curve_key());
        let bundle = bob.claim_prekey(false);
        assert!(!bundle.is_fallback);
        a2b.open_outbound(&alice, &bundle).unwrap();
        let e1 = a2b.encrypt(b"one").unwrap();
        let e2 = a2b.encrypt(b"two").unwrap();
        assert_eq!(e1.kind, 0);
        assert_eq!(PeerSessions::prekey_sender(&e1), Some(alice.curve_key()));

        let mut b2a = PeerSessions::new(alice.curve_key());
        let d1 = b2a.decrypt(&mut bob, &e1).unwrap();
        assert!(d1.new_session);
        assert_eq!(d1.plaintext, b"one");
        // A second pre-key message of the same session reuses it.
        let d2 = b2a.decrypt(&mut bob, &e2).unwrap();
        assert!(!d2.new_session);
        assert_eq!(d2.plaintext, b"two");
        // Replaying a message is refused (its key is used up).
        assert!(b2a.decrypt(&mut bob, &e2).is_err());

        let r = b2a.encrypt(b"reply").unwrap();
        assert_eq!(r.kind, 1);
        let mut alice = alice;
        assert_eq!(a2b.decrypt(&mut alice, &r).unwrap().plaintext, b"reply");
        assert!(a2b.answered());
    }

    #[test]
    fn pickles_survive_restore() {
        let (_, alice) = device();
        let (_, mut bob) = device();
        let key = StorageKey::generate();
        let mut a2b = PeerSessions::new(bob.curve_key());
        a2b.open_outbound(&alice, &bob.claim_prekey(false)).unwrap();
        let e1 = a2b.encrypt(b"x").unwrap();
        let mut restored =
            PeerSessions::restore(bob.curve_key(), &a2b.pickles(&key), &key).unwrap();
        let e2 = restored.encrypt(b"y").unwrap();
        let bob_pickle = bob.pickle(&key);
        let mut bob = Device::restore(&bob_pickle, bob.cert().clone(), &key).unwrap();
        let mut b2a = PeerSessions::new(alice.curve_key());
        assert_eq!(b2a.decrypt(&mut bob, &e1).unwrap().plaintext, b"x");
        assert_eq!(b2a.decrypt(&mut bob, &e2).unwrap().plaintext, b"y");
        // Wrong storage key is a typed error, not a panic.
        assert!(
            PeerSessions::restore(
                CurveKey([0; 32]),
                &a2b.pickles(&key),
                &StorageKey::generate()
            )
            .is_err()
        );
    }

    #[test]
    fn forged_bundle_refused() {
        let (_, alice) = device();
        let (_, mut bob) = device();
        let mut bundle = bob.claim_prekey(false);
        bundle.one_time_key[0] ^= 1;
        let mut s = PeerSessions::new(bob.curve_key());
        assert!(s.open_outbound(&alice, &bundle).is_err());
    }

    #[test]
    fn garbage_envelopes_are_errors() {
        let (_, mut bob) = device();
        let mut s = PeerSessions::new(CurveKey([5; 32]));
        for kind in 0..3u8 {
            let env = Envelope {
                to_device: bob.curve_key(),
                kind,
                ciphertext: vec![kind; 90],
            };
            assert!(s.decrypt(&mut bob, &env).is_err());
        }
    }

    /// The ratchet key an envelope carries is the same along one sending chain, pre-key
    /// messages included, and changes after a reply: what the relayed-envelope index keys on.
    #[test]
    fn the_ratchet_key_names_a_sending_chain() {
        let (_, alice) = device();
        let (_, mut bob) = device();
        let mut a2b = PeerSessions::new(bob.curve_key());
        a2b.open_outbound(&alice, &bob.claim_prekey(false)).unwrap();
        let e1 = a2b.encrypt(b"one").unwrap();
        let e2 = a2b.encrypt(b"two").unwrap();
        let chain = PeerSessions::ratchet_key(&e1);
        assert!(chain.is_some());
        assert_eq!(PeerSessions::ratchet_key(&e2), chain);
        let mut b2a = PeerSessions::new(alice.curve_key());
        b2a.decrypt(&mut bob, &e1).unwrap();
        let r = b2a.encrypt(b"reply").unwrap();
        let mut alice = alice;
        a2b.decrypt(&mut alice, &r).unwrap();
        let e3 = a2b.encrypt(b"three").unwrap();
        let e4 = a2b.encrypt(b"four").unwrap();
        assert_eq!(e3.kind, 1);
        assert_ne!(PeerSessions::ratchet_key(&e3), chain, "a new chain");
        assert_eq!(
            PeerSessions::ratchet_key(&e4),
            PeerSessions::ratchet_key(&e3)
        );
        let junk = Envelope {
            to_device: bob.curve_key(),
            kind: 1,
            ciphertext: vec![1, 2, 3],
        };
        assert_eq!(PeerSessions::ratchet_key(&junk), None);
    }
}
