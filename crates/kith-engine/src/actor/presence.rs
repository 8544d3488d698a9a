//! Presence, last seen, typing, profiles, privacy settings and blocking: the engine's I/O
//! for them. The rules (who sees what, when signals go, when a contact shows online,
//! offline or typing) are in the presence core, [`crate::cores::presence`]; this file reads
//! and writes the store, sends on the network and emits events for it.
//!
//! All of it travels as signals on `/kith/signal/1` ([`kith_proto::signal`]) on the live
//! connection between two devices, never through the outbox or a mailbox, and only between
//! contacts: a signal from a peer that is not a device of a contact is ignored, and none is
//! sent to one.
//!
//! - **Presence.** When a contact's device connects, and every [`HEARTBEAT`] while it stays
//!   connected, the node sends it a presence: whether to show it online (privacy
//!   `online`), whether it shares its last-seen time (privacy `last-seen`), and its profile
//!   version. The heartbeat also keeps the connection from idling out. A contact is online
//!   while one of its devices is connected and has spoken within [`PRESENCE_TIMEOUT`]; it
//!   goes offline when the last one disconnects (a crash closes the socket), falls silent
//!   (a cable pulled), or says goodbye (a clean stop sends `online: false` at once). Last
//!   seen is written to the store, so it survives restarts.
//! - **Typing.** `kith typing NAME` sends the state to the contact's connected devices, at
//!   most once per `TYPING_RESEND` for the same state; the receiver shows it for
//!   [`TYPING_TTL`] unless renewed.
//! - **Profiles.** A name, an about text and a photo, versioned by update time. A contact
//!   that sees a newer version in a presence asks for it ([`Signal::GetProfile`]); the photo
//!   is validated and written to `avatars/` in the data directory.
//! - **Privacy.** Who sees last seen, online and the photo (`everyone` means also people who
//!   wrote first and are not yet contacts); read receipts on or off (off: none sent and none
//!   shown, as in WhatsApp).
//! - **Blocking.** What a blocked contact sends is dropped after opening and answered
//!   `Accepted` (what a mailbox says): their node stops retrying and shows ✓, never ✓✓, as
//!   in WhatsApp; a mailbox that relayed it lets go of it. They get no signals, theirs are
//!   ignored, and nothing can be sent to them until they are unblocked.
//!
//! Data flow through this file:
//!
//! 1. A network event (a connection opened or closed, a signal, the answer to a tagged
//!    signal) or the tick: the actor reads the time ([`Now`]), finds out from the store
//!    whether the peer is a contact's device ([`Engine::contact_of`]), and, before a
//!    presence, which profile version the store holds; then it calls the core.
//! 2. A command (`typing`, `profile.set`, `privacy.set`, `block`, `unblock`): the actor
//!    checks it against the store (the contact exists, is not blocked), writes the setting,
//!    and calls the core.
//! 3. The core returns [`Out`]s; [`Engine::carry_out`] does them in order: signals to the
//!    network (through the backlog, never dropped), last-seen times to the store, and
//!    presence and typing events to watchers, by the contact's name.
//! 4. A profile that comes back is checked, its photo written to `avatars/`, and the store
//!    updated when it is newer; the core learns the stored version.
//!
//! Floods are cut in the network actor ([`kith_net::NetCommand`] rate limits per peer)
//! before they reach the engine; a signal never waits for the engine's queue.

use std::path::Path;

use kith_proto::signal::{Profile, Signal, SignalAnswer, TypingState, check_avatar};
use kith_store::{ContactExtra, StoredProfile};

use super::*;
use crate::cores::presence::{self, Now, Out, Privacy, Shown, parse_typing, typing_name};
pub use crate::cores::presence::{HEARTBEAT, PRESENCE_TIMEOUT, TYPING_TTL};

/// The presence core as the engine holds it: devices by libp2p peer id.
pub(crate) type Social = presence::Social<PeerId>;

/// The time now, for the core.
pub(super) fn now() -> Now {
    Now {
        at: Instant::now(),
        unix_ms: now_ms(),
    }
}

fn avatar_path(data_dir: &Path, file: &str) -> PathBuf {
    data_dir.join("avatars").join(file)
}

// The store-facing half of the core's type: loading it, and what `contacts list` shows.
impl Social {
    /// Loads settings, profile and blocks from the store.
    pub(crate) fn load(store: &Store) -> Self {
        let (privacy, profile, blocked) = store
            .read(|r| {
                let privacy = r
                    .meta("privacy")?
                    .and_then(|b| kith_proto::codec::decode::<Privacy>(&b, 1024).ok())
                    .unwrap_or_default();
                let profile = r.meta("profile")?.and_then(|b| {
                    kith_proto::codec::decode::<Profile>(&b, kith_store::MAX_VALUE).ok()
                });
                let mut blocked = HashSet::new();
                for c in r.contacts()? {
                    if r.contact_extra(&c.identity)?.blocked {
                        blocked.insert(c.identity);
                    }
                }
                Ok((privacy, profile, blocked))
            })
            .unwrap_or_default();
        Self::new(privacy, profile, blocked, Instant::now())
    }

    /// Fills a contact's presence and profile fields for `contacts list`.
    pub(crate) fn fill_view(
        &self,
        v: &mut ContactView,
        identity: &IdentityKey,
        extra: &ContactExtra,
        data_dir: &Path,
    ) {
        v.blocked = extra.blocked;
        v.last_seen = extra.last_seen_ms;
        if let Some(p) = &extra.profile {
            v.profile_name = Some(p.name.clone());
            v.about = Some(p.about.clone());
            v.avatar = p
                .avatar_file
                .as_ref()
                .map(|f| avatar_path(data_dir, f).display().to_string());
        }
        if extra.blocked {
            v.presence = "unknown".into();
            return;
        }
        let (shown, typing) = self.shown(identity, Instant::now());
        match shown {
            Shown::Online => v.presence = "online".into(),
            Shown::Hidden => v.presence = "unknown".into(),
            Shown::Away if extra.last_seen_ms.is_some() => v.presence = "offline".into(),
            Shown::Away => {}
        }
        v.typing = typing.map(|t| typing_name(t).into());
    }
}

impl Engine {
    /// The identity of a contact's device, and whether this user added the contact.
    fn contact_of(&self, peer: &PeerId) -> Option<(IdentityKey, bool)> {
        if let Some(x) = self.st.social.contact_of(peer) {
            return Some(x);
        }
        let dev = device_key(&peer.to_bytes());
        self.store
            .read(|r| {
                let Some(d) = r.device(&dev)? else {
                    return Ok(None);
                };
                Ok(r.contact(&d.identity)?
                    .map(|c| (c.identity, c.added_by_user)))
            })
            .ok()
            .flatten()
    }

    /// Does what the presence core decided, in order.
    fn carry_out(&mut self, outs: Vec<Out<PeerId>>) {
        for out in outs {
            match out {
                Out::Send { peer, signal } => self.st.net_send(NetCommand::Signal {
                    tag: None,
                    peer,
                    signal,
                }),
                Out::AskProfile { peer, identity } => {
                    let tag = self.st.tag();
                    self.st.social.asked(tag, identity);
                    self.st.net_send(NetCommand::Signal {
                        tag: Some(tag),
                        peer,
                        signal: Signal::GetProfile,
                    });
                }
                Out::Answer { id, answer } => {
                    self.st.net_send(NetCommand::AnswerSignal { id, answer });
                }
                Out::StoreLastSeen { identity, at_ms } => {
                    let res = self.store.write(|w| {
                        let mut e = w.contact_extra(&identity)?;
                        e.last_seen_ms = Some(e.last_seen_ms.map_or(at_ms, |old| old.max(at_ms)));
                        w.put_contact_extra(&identity, &e)
                    });
                    if let Err(e) = res {
                        warn!(error = %e, "cannot store last seen");
                    }
                }
                Out::ForgetLastSeen { identity } => {
                    let res = self.store.write(|w| {
                        let mut e = w.contact_extra(&identity)?;
                        if e.last_seen_ms.take().is_some() {
                            w.put_contact_extra(&identity, &e)?;
                        }
                        Ok(())
                    });
                    if let Err(e) = res {
                        warn!(error = %e, "cannot forget last seen");
                    }
                }
                Out::ShowPresence {
                    identity,
                    online,
                    last_seen,
                } => {
                    if let Some(contact) = self.contact_name(&identity) {
                        let _ = self.st.events.send(Event::Presence {
                            contact,
                            online,
                            last_seen,
                        });
                    }
                }
                Out::ShowTyping { identity, state } => {
                    if let Some(contact) = self.contact_name(&identity) {
                        let _ = self.st.events.send(Event::Typing {
                            contact,
                            state: typing_name(state).into(),
                        });
                    }
                }
            }
        }
    }

    fn contact_name(&self, identity: &IdentityKey) -> Option<String> {
        self.store
            .read(|r| r.contact(identity))
            .ok()
            .flatten()
            .map(|c| c.name)
    }

    /// A connection to `peer` opened: if it is a contact's device, say we are here.
    pub(super) fn presence_connected(&mut self, peer: PeerId) {
        let Some(contact) = self.contact_of(&peer) else {
            return;
        };
        let outs = self.st.social.connected(peer, contact, now());
        self.carry_out(outs);
    }

    /// The last connection to `peer` closed.
    pub(super) fn presence_disconnected(&mut self, peer: PeerId) {
        let outs = self.st.social.disconnected(&peer, now());
        self.carry_out(outs);
    }

    /// Every tick: heartbeats, silent devices, typing indicators that ran out.
    pub(super) fn presence_tick(&mut self) {
        let outs = self.st.social.tick(now());
        self.carry_out(outs);
    }

    /// A clean stop: tell connected contacts we are gone; returns the tags to wait for.
    pub(super) fn presence_goodbye(&mut self) -> Vec<u64> {
        let mut tags = Vec::new();
        for (peer, signal) in self.st.social.goodbye(now()) {
            let tag = self.st.tag();
            self.st.net_send(NetCommand::Signal {
                tag: Some(tag),
                peer,
                signal,
            });
            tags.push(tag);
        }
        tags
    }

    /// A signal from a peer (within its rate).
    pub(super) fn on_signal(&mut self, id: Option<u64>, peer: PeerId, signal: Signal) {
        if let Signal::GroupTyping { group, state } = signal {
            // Not a contact's signal: group members need not be contacts.
            self.on_group_typing(peer, group, state);
            return;
        }
        let contact = self.contact_of(&peer);
        if let (Some((identity, _)), Signal::Presence(_)) = (contact, &signal)
            && !self.st.social.blocked.contains(&identity)
            && !self.st.social.knows_profile_of(&identity)
        {
            let stored = self
                .store
                .read(|r| r.contact_extra(&identity))
                .ok()
                .and_then(|e| e.profile.map(|p| p.version))
                .unwrap_or(0);
            self.st.social.profile_stored(identity, stored);
        }
        let outs = self.st.social.signal(id, peer, contact, signal, now());
        self.carry_out(outs);
    }

    /// The answer to one of our tagged signals (a profile request, or a goodbye).
    /// Returns false when the tag was not a profile request.
    pub(super) fn on_signal_answer(
        &mut self,
        tag: u64,
        result: Result<SignalAnswer, kith_net::RequestFailure>,
    ) -> bool {
        let Some(identity) = self.st.social.answered(tag) else {
            return false;
        };
        let Ok(SignalAnswer::Profile(p)) = result else {
            return true;
        };
        // Validated by the decoder; keep only what is newer.
        let data_dir = self.st.data_dir.clone();
        let avatar_file = match &p.avatar {
            Some(bytes) => match check_avatar(bytes) {
                Ok(kind) => {
                    let file = format!("{}.{}", identity.short(), kind.extension());
                    let dir = data_dir.join("avatars");
                    let tmp = dir.join(format!(".{file}.tmp"));
                    // Sealed at rest under the storage key (`contact.photo` opens it).
                    let sealed = crate::sealed_file::seal(&self.st.keys.storage, &file, bytes);
                    let ok = std::fs::create_dir_all(&dir)
                        .and_then(|()| std::fs::write(&tmp, &sealed))
                        .and_then(|()| std::fs::rename(&tmp, avatar_path(&data_dir, &file)));
                    match ok {
                        Ok(()) => Some(file),
                        Err(e) => {
                            warn!(error = %e, "cannot write a contact's photo");
                            None
                        }
                    }
                }
                Err(_) => None,
            },
            None => None,
        };
        let stored = StoredProfile {
            version: p.version,
            name: p.name.clone(),
            about: p.about.clone(),
            avatar_file: avatar_file.clone(),
        };
        let res = self.store.write(|w| {
            let mut e = w.contact_extra(&identity)?;
            if e.profile
                .as_ref()
                .is_some_and(|old| old.version >= p.version)
            {
                return Ok(false);
            }
            // A photo removed: delete the old file.
            if let Some(old) = e.profile.as_ref().and_then(|o| o.avatar_file.clone())
                && Some(&old) != avatar_file.as_ref()
            {
                let _ = std::fs::remove_file(avatar_path(&data_dir, &old));
            }
            e.profile = Some(stored);
            w.put_contact_extra(&identity, &e)?;
            Ok(true)
        });
        match res {
            Ok(true) => {
                self.st.social.profile_stored(identity, p.version);
                if let Some(contact) = self.contact_name(&identity) {
                    let _ = self.st.events.send(Event::Profile {
                        contact,
                        name: p.name,
                        about: p.about,
                        avatar: avatar_file
                            .map(|f| avatar_path(&data_dir, &f).display().to_string()),
                    });
                }
            }
            Ok(false) => {}
            Err(e) => warn!(error = %e, "cannot store a contact's profile"),
        }
        true
    }

    /// `typing` from the command table: `state` is `typing`, `recording` or `stopped`.
    pub(super) fn typing_cmd(&mut self, to: &str, state: &str) -> Result<(), EngineError> {
        let state = parse_typing(state)?;
        self.typing(to, state)
    }

    /// `profile.set` from the command table (the photo was read by `prepare`).
    pub(super) fn set_profile_cmd(
        &mut self,
        p: crate::command::SetProfileParams,
    ) -> Result<ProfileView, EngineError> {
        let avatar = match (p.avatar.is_some(), p.remove_avatar) {
            (true, true) => {
                return Err(EngineError::BadSetting(
                    "give a photo or remove it, not both".into(),
                ));
            }
            (true, false) => {
                Some(Some(p.photo.ok_or_else(|| {
                    EngineError::BadSetting("the photo was not read".into())
                })?))
            }
            (false, true) => Some(None),
            (false, false) => None,
        };
        self.set_profile(p.name, p.about, avatar)
    }

    fn typing(&mut self, to: &str, state: TypingState) -> Result<(), EngineError> {
        let (identity, name) = self
            .store
            .read(|r| Ok(r.contact_by_name(to)?.map(|c| (c.identity, c.name))))
            .map_err(internal)?
            .ok_or_else(|| EngineError::UnknownContact(to.to_string()))?;
        if self.st.social.blocked.contains(&identity) {
            return Err(EngineError::Blocked(name));
        }
        let outs = self.st.social.typing(identity, state, Instant::now());
        self.carry_out(outs);
        Ok(())
    }

    fn set_profile(
        &mut self,
        name: Option<String>,
        about: Option<String>,
        avatar: Option<Option<Vec<u8>>>,
    ) -> Result<ProfileView, EngineError> {
        let now = now();
        let p = self
            .st
            .social
            .edit_profile(name, about, avatar, now.unix_ms)?;
        let bytes = kith_proto::codec::encode(&p).map_err(internal)?;
        self.store
            .write(|w| w.set_meta("profile", &bytes))
            .map_err(internal)?;
        let outs = self.st.social.set_profile(p, now);
        self.carry_out(outs);
        self.write_then(
            "cannot tell the other devices the profile",
            |st, w, after| st.profile_synced(w, after),
        );
        Ok(self.st.social.my_profile_view())
    }

    pub(super) fn set_privacy(
        &mut self,
        key: &str,
        value: &str,
    ) -> Result<PrivacyView, EngineError> {
        let p = self.st.social.privacy.with(key, value)?;
        let bytes = kith_proto::codec::encode(&p).map_err(internal)?;
        self.store
            .write(|w| w.set_meta("privacy", &bytes))
            .map_err(internal)?;
        let outs = self.st.social.set_privacy(p, now());
        self.carry_out(outs);
        self.write_then(
            "cannot tell the other devices the privacy settings",
            |st, w, after| st.privacy_synced(w, after),
        );
        Ok(self.st.social.privacy.view())
    }

    pub(super) fn block(&mut self, name: &str, blocked: bool) -> Result<ContactView, EngineError> {
        let contact = self
            .store
            .write(|w| {
                let Some(c) = w.contact_by_name(name)? else {
                    return Ok(None);
                };
                let mut e = w.contact_extra(&c.identity)?;
                e.blocked = blocked;
                w.put_contact_extra(&c.identity, &e)?;
                Ok(Some(c))
            })
            .map_err(internal)?
            .ok_or_else(|| EngineError::UnknownContact(name.to_string()))?;
        if blocked {
            let outs = self.st.social.block(contact.identity);
            self.carry_out(outs);
        } else {
            self.st.social.unblock(&contact.identity);
            // Their connected devices see us again.
            let peers: Vec<PeerId> = self.st.connected.iter().copied().collect();
            for p in peers {
                self.presence_connected(p);
            }
        }
        let identity = contact.identity;
        self.write_then(
            "cannot tell the other devices about a block",
            |st, w, after| st.block_synced(w, identity, blocked, after),
        );
        let mut v = ContactView::new(
            contact.name,
            contact.identity.short(),
            contact.added_by_user,
        );
        v.blocked = blocked;
        Ok(v)
    }
}
