//! The person's own state kept in step between their devices: contacts added or removed,
//! blocks, privacy settings, the profile (a photo too large for one envelope follows in
//! [`DeviceSync::ProfilePhoto`] parts).
//!
//! A change made on one device goes, as a [`DeviceSync::State`] inside the pairwise
//! (Olm) sessions, to the person's other devices only; `on_own_sync` takes it only from a
//! device bound to this same identity (`inbound.rs` routes by the sending device's owner).
//! Each item (a contact, a block, the privacy settings) has a version: the changing
//! device's clock in ms, raised above the last version it held for the item. A device
//! applies an item only when its version is newer than the one it holds ([`newer`]), so a
//! late, reordered or replayed sync never undoes a newer change; versions are kept in the
//! meta table under `sync:` and the item's key (one per contact at most, for each kind).

use kith_proto::link::{DeviceSync, MAX_PHOTO_PARTS, PHOTO_PART, StateSync, SyncItem};
use kith_proto::signal::check_avatar;

use super::*;
use crate::cores::contacts;
use crate::cores::presence::Privacy;

/// Meta key prefix of the version of each synced item.
const SYNC_VERSION: &str = "sync:";

/// Whether an incoming version replaces the one held (none held: any does).
pub(crate) fn newer(held: Option<u64>, incoming: u64) -> bool {
    held.is_none_or(|h| incoming > h)
}

fn contact_key(identity: &IdentityKey) -> String {
    format!("{SYNC_VERSION}c:{}", hex::encode(identity.as_bytes()))
}

fn block_key(identity: &IdentityKey) -> String {
    format!("{SYNC_VERSION}b:{}", hex::encode(identity.as_bytes()))
}

const PRIVACY_KEY: &str = "sync:privacy";

/// Meta key of a part of a profile photo coming from another device.
fn photo_part_key(part: u16) -> String {
    format!("{SYNC_VERSION}photo:{part}")
}
const PROFILE_KEY: &str = "sync:profile";

fn held_version(w: &WriteTx<'_>, key: &str) -> Result<Option<u64>, Fatal> {
    Ok(w.meta(key)?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_be_bytes))
}

impl State {
    /// A change of the person's state made here: its new version is kept, and it goes to
    /// the other devices (nothing is sent when there are none).
    fn sync_state(
        &mut self,
        w: &mut WriteTx<'_>,
        key: &str,
        item: SyncItem,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let held = held_version(w, key)?.unwrap_or(0);
        let version_ms = now_ms().max(held.saturating_add(1));
        w.set_meta(key, &version_ms.to_be_bytes())?;
        self.enqueue_own(w, DeviceSync::State(StateSync { version_ms, item }), after)
    }

    /// `contacts.add`, then the other devices add the contact too.
    pub(crate) fn add_contact_synced(
        &mut self,
        w: &mut WriteTx<'_>,
        code: &str,
        name: &str,
        after: &mut Vec<After>,
    ) -> Outcome<crate::model::ContactView> {
        let added = self.add_contact(w, code, name, after)?;
        if added.is_ok()
            && let Ok(c) = contacts::read_code(code, name, &self.me)
        {
            let item = SyncItem::ContactAdded {
                code: code.trim().to_string(),
                name: c.name.clone(),
            };
            self.sync_state(w, &contact_key(&c.card.identity), item, after)?;
        }
        Ok(added)
    }

    /// `contacts.remove`, then the other devices remove the contact too.
    pub(crate) fn remove_contact_synced(
        &mut self,
        w: &mut WriteTx<'_>,
        name: &str,
        after: &mut Vec<After>,
    ) -> Outcome<crate::model::ContactView> {
        let identity = w.contact_by_name(name)?.map(|c| c.identity);
        let removed = self.remove_contact(w, name)?;
        if removed.is_ok()
            && let Some(identity) = identity
        {
            let item = SyncItem::ContactRemoved { identity };
            self.sync_state(w, &contact_key(&identity), item, after)?;
        }
        Ok(removed)
    }

    /// A contact was blocked or unblocked here: the other devices follow.
    pub(crate) fn block_synced(
        &mut self,
        w: &mut WriteTx<'_>,
        identity: IdentityKey,
        blocked: bool,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let item = SyncItem::Blocked { identity, blocked };
        self.sync_state(w, &block_key(&identity), item, after)
    }

    /// The privacy settings changed here: the other devices follow.
    pub(crate) fn privacy_synced(
        &mut self,
        w: &mut WriteTx<'_>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let bytes = kith_proto::codec::encode(&self.social.privacy)?;
        self.sync_state(w, PRIVACY_KEY, SyncItem::Privacy(bytes), after)
    }

    /// The profile changed here: the other devices follow (the photo only when it fits in
    /// one envelope; otherwise they keep theirs).
    pub(crate) fn profile_synced(
        &mut self,
        w: &mut WriteTx<'_>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(mut profile) = self.social.profile().cloned() else {
            return Ok(());
        };
        let avatar_included = profile
            .avatar
            .as_ref()
            .is_none_or(|a| a.len() <= kith_proto::link::MAX_SYNC_AVATAR);
        let large = if avatar_included {
            None
        } else {
            profile.avatar.take()
        };
        let version = profile.version;
        let item = SyncItem::Profile {
            profile,
            avatar_included,
        };
        self.sync_state(w, PROFILE_KEY, item, after)?;
        // A larger photo follows in parts, after the profile (the outbox keeps the order).
        if let Some(photo) = large {
            let parts = photo.chunks(PHOTO_PART).count() as u16;
            for (part, bytes) in photo.chunks(PHOTO_PART).enumerate() {
                let sync = DeviceSync::ProfilePhoto {
                    version,
                    part: part as u16,
                    parts,
                    bytes: bytes.to_vec(),
                };
                self.enqueue_own(w, sync, after)?;
            }
        }
        Ok(())
    }

    /// A part of the profile photo from another device of this person: kept (meta, one
    /// place per part) until every part of the same version is here; then, when the profile
    /// held here is that version, the photo is its photo.
    pub(super) fn on_own_photo_part(
        &mut self,
        w: &mut WriteTx<'_>,
        version: u64,
        part: u16,
        parts: u16,
        bytes: &[u8],
    ) -> Result<(), Fatal> {
        let mut value = version.to_be_bytes().to_vec();
        value.extend_from_slice(bytes);
        w.set_meta(&photo_part_key(part), &value)?;
        let mut photo = Vec::new();
        for i in 0..parts {
            match w.meta(&photo_part_key(i))? {
                Some(v) if v.len() > 8 && v[..8] == version.to_be_bytes() => {
                    photo.extend_from_slice(&v[8..]);
                }
                _ => return Ok(()),
            }
        }
        for i in 0..MAX_PHOTO_PARTS {
            w.remove_meta(&photo_part_key(i))?;
        }
        let Some(mut profile) = self.social.profile().cloned() else {
            return Ok(());
        };
        if profile.version != version || check_avatar(&photo).is_err() {
            debug!("a profile photo for another version, or not a photo; left out");
            return Ok(());
        }
        profile.avatar = Some(photo);
        w.set_meta("profile", &kith_proto::codec::encode(&profile)?)?;
        // Contacts get it with the next presence announcement.
        let _ = self
            .social
            .set_profile(profile, crate::actor::presence::now());
        Ok(())
    }

    /// Another device of this person changed an item of their state: applied when newer
    /// than the version held here. What does not apply (a code that does not read, a name
    /// taken by another contact) is left as it is here.
    pub(super) fn on_own_state(
        &mut self,
        w: &mut WriteTx<'_>,
        s: StateSync,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let key = match &s.item {
            SyncItem::ContactAdded { code, name } => {
                match contacts::read_code(code, name, &self.me) {
                    Ok(c) => contact_key(&c.card.identity),
                    Err(_) => return Ok(()),
                }
            }
            SyncItem::ContactRemoved { identity } => contact_key(identity),
            SyncItem::Blocked { identity, .. } => block_key(identity),
            SyncItem::Privacy(_) => PRIVACY_KEY.to_string(),
            SyncItem::Profile { .. } => PROFILE_KEY.to_string(),
        };
        if !newer(held_version(w, &key)?, s.version_ms) {
            debug!(?s, "an older sync of this person's state; ignored");
            return Ok(());
        }
        w.set_meta(&key, &s.version_ms.to_be_bytes())?;
        match s.item {
            SyncItem::ContactAdded { code, name } => {
                if let Err(e) = self.add_contact(w, &code, &name, after)? {
                    debug!(error = %e, "a contact added on another device was not added here");
                }
            }
            SyncItem::ContactRemoved { identity } => {
                if let Some(c) = w.contact(&identity)? {
                    let _ = self.remove_contact(w, &c.name)?;
                }
            }
            SyncItem::Blocked { identity, blocked } => {
                if w.contact(&identity)?.is_some() {
                    let mut e = w.contact_extra(&identity)?;
                    e.blocked = blocked;
                    w.put_contact_extra(&identity, &e)?;
                    if blocked {
                        // The blank presence for their devices goes with the next
                        // announcement; from now on they get nothing.
                        let _ = self.social.block(identity);
                    } else {
                        self.social.unblock(&identity);
                    }
                }
            }
            SyncItem::Privacy(bytes) => {
                let Ok(p) = kith_proto::codec::decode::<Privacy>(
                    &bytes,
                    kith_proto::link::MAX_SYNC_PRIVACY,
                ) else {
                    return Ok(());
                };
                w.set_meta("privacy", &bytes)?;
                // Contacts see the change with the next presence announcement.
                self.social.privacy = p;
            }
            SyncItem::Profile {
                mut profile,
                avatar_included,
            } => {
                if !avatar_included {
                    profile.avatar = self.social.profile().and_then(|p| p.avatar.clone());
                }
                w.set_meta("profile", &kith_proto::codec::encode(&profile)?)?;
                // Contacts get it with the next presence announcement.
                let _ = self
                    .social
                    .set_profile(profile, crate::actor::presence::now());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::newer;

    #[test]
    fn only_a_newer_version_replaces_the_held_one() {
        assert!(newer(None, 0));
        assert!(newer(Some(5), 6));
        // A replay (same version) or a late, older change does not undo a newer one.
        assert!(!newer(Some(5), 5));
        assert!(!newer(Some(5), 4));
    }
}
