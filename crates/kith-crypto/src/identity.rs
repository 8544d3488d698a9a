use ed25519_dalek::{Signer, SigningKey};
use kith_types::IdentityKey;
use zeroize::Zeroizing;

/// A person's long-term ed25519 identity key pair.
pub struct Identity {
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.public().short())
    }
}

impl Identity {
    /// A new random identity.
    pub fn generate() -> Self {
        let secret = Zeroizing::new(rand::random::<[u8; 32]>());
        Self {
            key: SigningKey::from_bytes(&secret),
        }
    }

    /// Restores an identity from its 32 secret bytes.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(secret),
        }
    }

    /// The 32 secret bytes, for the key file only.
    pub fn secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The public identity key.
    pub fn public(&self) -> IdentityKey {
        IdentityKey(self.key.verifying_key().to_bytes())
    }

    /// Signs `msg` (a record's domain-separated signing bytes).
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.key.sign(msg).to_bytes().to_vec()
    }
}

/// The 32-byte key that encrypts this device's pickled Olm state at rest.
pub struct StorageKey(pub(crate) Zeroizing<[u8; 32]>);

impl std::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageKey(..)")
    }
}

impl StorageKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self(Zeroizing::new(rand::random::<[u8; 32]>()))
    }

    /// From the key file.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// For the key file only.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let id = Identity::generate();
        let dbg = format!("{id:?}");
        let secret = id.secret();
        let secret_hex = hex::encode(&secret[..]);
        assert!(!dbg.contains(&secret_hex[..16]));
        assert_eq!(format!("{:?}", StorageKey::generate()), "StorageKey(..)");
    }

    #[test]
    fn secret_roundtrip() {
        let id = Identity::generate();
        let again = Identity::from_secret(&id.secret());
        assert_eq!(id.public(), again.public());
    }
}
