//! TURN credentials a mailbox hands to the devices registered with it (the "TURN REST"
//! scheme that coturn's `use-auth-secret` and most WebRTC services use):
//!
//! - the user name is `EXPIRY:USER`, where `EXPIRY` is when the credential stops working
//!   (seconds since the Unix epoch) and `USER` names the device (its peer id);
//! - the credential is `base64(HMAC-SHA1(secret, username))`, with a secret only the mailbox
//!   and the TURN server know.
//!
//! The mailbox issues ([`issue`]) only to a device registered on the connection that asks;
//! the TURN server ([`verify`]) recomputes the credential from the user name, so it needs
//! no list of users and no round trip to the mailbox, and refuses expired user names and
//! ones that claim to last longer than the operator allows. Pure functions: the caller
//! passes the time.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use kith_proto::wire::TurnServer;
use zeroize::Zeroizing;

/// Longest secret accepted (bytes).
pub const MAX_SECRET: usize = 256;

/// What a mailbox tells its registered devices about its operator's TURN server.
#[derive(Clone)]
pub struct TurnOffer {
    /// The URLs devices use (`turn:host:port?transport=udp`, `stun:host:port`).
    pub urls: Vec<String>,
    /// The secret shared with the TURN server.
    pub secret: Zeroizing<Vec<u8>>,
    /// How long an issued credential works.
    pub lifetime: Duration,
}

/// The secret never shows.
impl std::fmt::Debug for TurnOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnOffer")
            .field("urls", &self.urls)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// The credential of `username` under `secret`.
pub fn credential(secret: &[u8], username: &str) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Credentials for `user` (no `:` in it), valid from `now_s` (Unix seconds) for the offer's
/// lifetime.
pub fn issue(offer: &TurnOffer, user: &str, now_s: u64) -> TurnServer {
    let expires_s = now_s.saturating_add(offer.lifetime.as_secs());
    let username = format!("{expires_s}:{user}");
    TurnServer {
        urls: offer.urls.clone(),
        credential: credential(&offer.secret, &username),
        username,
        expires_s,
    }
}

/// Why a TURN server refuses a user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not `EXPIRY:USER`.
    #[error("not a time-limited user name")]
    Malformed,
    /// Its time is over.
    #[error("expired")]
    Expired,
    /// It claims to last longer than any credential this server's mailbox issues.
    #[error("lasts too long")]
    TooLong,
}

/// Checks a user name at the TURN server: returns the user part and the credential to
/// compare with. `max_lifetime` is the longest the mailbox issues for.
pub fn verify<'a>(
    secret: &[u8],
    username: &'a str,
    now_s: u64,
    max_lifetime: Duration,
) -> Result<(&'a str, String), VerifyError> {
    let (expiry, user) = username.split_once(':').ok_or(VerifyError::Malformed)?;
    let expiry: u64 = expiry.parse().map_err(|_| VerifyError::Malformed)?;
    if user.is_empty() || user.len() > 128 {
        return Err(VerifyError::Malformed);
    }
    if expiry <= now_s {
        return Err(VerifyError::Expired);
    }
    // A minute of slack for clocks that differ between the mailbox and the TURN server.
    if expiry
        > now_s
            .saturating_add(max_lifetime.as_secs())
            .saturating_add(60)
    {
        return Err(VerifyError::TooLong);
    }
    Ok((user, credential(secret, username)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn offer() -> TurnOffer {
        TurnOffer {
            urls: vec!["turn:turn.example.org:3478?transport=udp".into()], // parse only
            secret: Zeroizing::new(b"s3cret".to_vec()),
            lifetime: Duration::from_secs(3600),
        }
    }

    /// The credential is the TURN REST one: base64 of HMAC-SHA1 (a known answer computed
    /// with `printf %s 1700000000:alice | openssl dgst -sha1 -hmac s3cret -binary | base64`).
    #[test]
    fn credential_is_the_turn_rest_hmac() {
        assert_eq!(
            credential(b"s3cret", "1700000000:alice"),
            "TtElzSjT0GdnTQ9xdcRNxx96yQs="
        );
    }

    #[test]
    fn issued_credentials_verify_until_they_expire() {
        let o = offer();
        let t = issue(&o, "peer1", 1_000);
        assert_eq!(t.username, "4600:peer1");
        assert_eq!(t.expires_s, 4600);
        let (user, cred) = verify(&o.secret, &t.username, 1_000, o.lifetime).unwrap();
        assert_eq!((user, cred.as_str()), ("peer1", t.credential.as_str()));
        assert_eq!(
            verify(&o.secret, &t.username, 4600, o.lifetime),
            Err(VerifyError::Expired)
        );
        // Another secret gives another credential: the server refuses it.
        let (_, other) = verify(b"other", &t.username, 1_000, o.lifetime).unwrap();
        assert_ne!(other, t.credential);
        assert!(!format!("{o:?}").contains("s3cret"));
        assert!(!format!("{t:?}").contains(&t.credential));
    }

    #[test]
    fn bad_user_names_are_refused() {
        let s = b"k";
        let l = Duration::from_secs(3600);
        for bad in ["", "alice", "x:alice", "100:", ":alice", "-5:alice"] {
            assert_eq!(verify(s, bad, 10, l), Err(VerifyError::Malformed), "{bad}");
        }
        assert_eq!(
            verify(s, "999999:alice", 10, l),
            Err(VerifyError::TooLong),
            "a forged far expiry"
        );
    }
}
