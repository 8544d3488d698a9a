//! Who may see what of this user: the privacy settings and the rules that read them.

use kith_proto::signal::Presence;
use serde::{Deserialize, Serialize};

use crate::model::{EngineError, PrivacyView};

/// Who may see something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Audience {
    /// Contacts and people who wrote first.
    Everyone,
    /// Contacts this user added.
    Contacts,
    /// Nobody.
    Nobody,
}

impl Audience {
    /// Parses `everyone`, `contacts` or `nobody`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "everyone" => Some(Self::Everyone),
            "contacts" => Some(Self::Contacts),
            "nobody" => Some(Self::Nobody),
            _ => None,
        }
    }

    /// The name `parse` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Contacts => "contacts",
            Self::Nobody => "nobody",
        }
    }

    /// Whether a person (added by this user or not) may see it.
    pub fn allows(self, added_by_user: bool) -> bool {
        match self {
            Self::Everyone => true,
            Self::Contacts => added_by_user,
            Self::Nobody => false,
        }
    }
}

/// The privacy settings (kept in the store's meta `privacy`; the field order is the format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privacy {
    /// Who sees when this user was last online.
    pub last_seen: Audience,
    /// Who sees that this user is online now.
    pub online: Audience,
    /// Whether read receipts are sent (and shown: off means neither, as in WhatsApp).
    pub read_receipts: bool,
    /// Who gets the profile photo.
    pub profile_photo: Audience,
}

impl Default for Privacy {
    fn default() -> Self {
        Self {
            last_seen: Audience::Contacts,
            online: Audience::Contacts,
            read_receipts: true,
            profile_photo: Audience::Contacts,
        }
    }
}

impl Privacy {
    /// Whether heartbeats tell this person anything (being online or last seen). Someone
    /// who may see neither (by default, a fellow group member this user did not add) hears
    /// from us when a link opens, not every [`HEARTBEAT`](super::HEARTBEAT): heartbeats would hold a link open
    /// to every group member ever met. A contact this user added always gets them (a hidden
    /// one keeps the link).
    pub fn heartbeats_for(&self, added_by_user: bool) -> bool {
        added_by_user || self.online.allows(false) || self.last_seen.allows(false)
    }

    /// The presence for a person: online only if `online` and they may see it, the last-seen
    /// time only if they may see it.
    pub fn presence_for(
        &self,
        added_by_user: bool,
        online: bool,
        profile_version: u64,
        now_ms: u64,
    ) -> Presence {
        Presence {
            online: online && self.online.allows(added_by_user),
            last_seen_ms: self.last_seen.allows(added_by_user).then_some(now_ms),
            profile_version,
        }
    }

    /// These settings with `key` set to `value` (`privacy.set`).
    pub fn with(&self, key: &str, value: &str) -> Result<Privacy, EngineError> {
        let mut p = self.clone();
        let audience = || {
            Audience::parse(value).ok_or_else(|| {
                EngineError::BadSetting(format!(
                    "{key} must be everyone, contacts or nobody, not {value:?}"
                ))
            })
        };
        match key {
            "last-seen" => p.last_seen = audience()?,
            "online" => p.online = audience()?,
            "profile-photo" => p.profile_photo = audience()?,
            "read-receipts" => {
                p.read_receipts = match value {
                    "on" => true,
                    "off" => false,
                    _ => {
                        return Err(EngineError::BadSetting(format!(
                            "read-receipts must be on or off, not {value:?}"
                        )));
                    }
                }
            }
            _ => {
                return Err(EngineError::BadSetting(format!(
                    "unknown setting {key:?} (last-seen, online, read-receipts, profile-photo)"
                )));
            }
        }
        Ok(p)
    }

    /// As `kith privacy` shows them.
    pub fn view(&self) -> PrivacyView {
        PrivacyView {
            last_seen: self.last_seen.as_str().into(),
            online: self.online.as_str().into(),
            read_receipts: self.read_receipts,
            profile_photo: self.profile_photo.as_str().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_go_to_strangers_only_when_they_may_see_something() {
        let mut p = Privacy::default();
        assert!(p.heartbeats_for(true), "contacts always get heartbeats");
        assert!(!p.heartbeats_for(false), "by default strangers see nothing");
        p.last_seen = Audience::Everyone;
        assert!(p.heartbeats_for(false));
        p.last_seen = Audience::Nobody;
        p.online = Audience::Everyone;
        assert!(p.heartbeats_for(false));
        p.online = Audience::Nobody;
        assert!(!p.heartbeats_for(false));
        assert!(
            p.heartbeats_for(true),
            "a hidden heartbeat keeps a contact's link"
        );
    }

    #[test]
    fn settings_parse_and_refuse() {
        let p = Privacy::default();
        assert_eq!(p.with("online", "nobody").unwrap().online, Audience::Nobody);
        assert!(!p.with("read-receipts", "off").unwrap().read_receipts);
        assert!(p.with("online", "some").is_err());
        assert!(p.with("colour", "blue").is_err());
        assert!(p.with("read-receipts", "maybe").is_err());
    }
}
