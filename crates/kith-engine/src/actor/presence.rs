//! Presence, last seen, typing, profiles, privacy settings and blocking.
//!
//! All of it travels as signals on `/kith/signal/1` ([`kith_proto::signal`]) on the live
//! connection between two devices, never through the outbox or a mailbox, and only between
//! contacts: a signal from a peer that is not a device of a contact is ignored, and none is
//! sent to one.
//!
//! - **Presence.** When a contact's device connects, and every [`HEARTBEAT`] while it stays
//!   connected, the node sends it a [`Presence`]: whether to show it online (privacy
//!   `online`), whether it shares its last-seen time (privacy `last-seen`), and its profile
//!   version. The heartbeat also keeps the connection from idling out. A contact is online
//!   while one of its devices is connected and has spoken within [`PRESENCE_TIMEOUT`]; it
//!   goes offline when the last one disconnects (a crash closes the socket), falls silent
//!   (a cable pulled), or says goodbye (a clean stop sends `online: false` at once). Last
//!   seen is written to the store, so it survives restarts.
//! - **Typing.** `kith typing NAME` sends [`TypingState`] to the contact's connected devices,
//!   at most once per [`TYPING_RESEND`] for the same state; the receiver shows it for
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
//! Floods are cut in the network actor ([`kith_net::NetCommand`] rate limits per peer)
//! before they reach the engine; a signal never waits for the engine's queue.

use std::path::Path;

use kith_proto::signal::{Presence, Profile, Signal, SignalAnswer, TypingState, check_avatar};
use kith_store::{ContactExtra, StoredProfile};
use serde::{Deserialize, Serialize};

use super::*;

/// How often a connected contact's device is told we are here.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// A device that has not spoken for this long is taken as gone.
pub const PRESENCE_TIMEOUT: Duration = Duration::from_secs(50);
/// How long a typing indicator shows without being renewed.
pub const TYPING_TTL: Duration = Duration::from_secs(6);
/// The same typing state is sent again at most this often.
pub const TYPING_RESEND: Duration = Duration::from_secs(2);
/// Any typing signals to one contact are at least this far apart (a stop always goes).
pub const TYPING_GAP: Duration = Duration::from_millis(250);
/// Most contacts (and contact devices) whose presence is tracked in memory.
const MAX_TRACKED: usize = 65_536;
/// Most profile requests in flight.
const MAX_PROFILE_ASKS: usize = 1024;

/// Who may see something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Audience {
    /// Contacts and people who wrote first.
    Everyone,
    /// Contacts this user added.
    Contacts,
    /// Nobody.
    Nobody,
}

impl Audience {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "everyone" => Some(Self::Everyone),
            "contacts" => Some(Self::Contacts),
            "nobody" => Some(Self::Nobody),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Contacts => "contacts",
            Self::Nobody => "nobody",
        }
    }

    /// Whether a person (added by this user or not) may see it.
    fn allows(self, added_by_user: bool) -> bool {
        match self {
            Self::Everyone => true,
            Self::Contacts => added_by_user,
            Self::Nobody => false,
        }
    }
}

/// The privacy settings (meta `privacy`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Privacy {
    last_seen: Audience,
    online: Audience,
    pub(crate) read_receipts: bool,
    profile_photo: Audience,
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
    /// from us when a link opens, not every [`HEARTBEAT`]: heartbeats would hold a link open
    /// to every group member ever met.
    fn heartbeats_for(&self, added_by_user: bool) -> bool {
        added_by_user || self.online.allows(false) || self.last_seen.allows(false)
    }

    fn view(&self) -> PrivacyView {
        PrivacyView {
            last_seen: self.last_seen.as_str().into(),
            online: self.online.as_str().into(),
            read_receipts: self.read_receipts,
            profile_photo: self.profile_photo.as_str().into(),
        }
    }
}

/// What is known of one contact's presence (memory only).
#[derive(Debug, Default)]
struct Seen {
    /// Its devices that are connected and spoke recently, with when they last did.
    online: HashMap<PeerId, Instant>,
    /// Whether its last presence shared a last-seen time.
    shares_last_seen: bool,
    /// Whether its last presence showed it online.
    shows_online: bool,
    /// Typing now, until when.
    typing: Option<(TypingState, Instant)>,
    /// The profile version stored for it (loaded on first presence).
    stored_profile: Option<u64>,
}

/// Presence, profiles, privacy and blocks; see the module docs.
#[derive(Debug)]
pub(crate) struct Social {
    pub(crate) privacy: Privacy,
    /// This user's profile.
    profile: Option<Profile>,
    /// Blocked identities.
    pub(crate) blocked: HashSet<[u8; 32]>,
    seen: HashMap<[u8; 32], Seen>,
    /// Connected devices of contacts: their identity and whether this user added them.
    peers: HashMap<PeerId, ([u8; 32], bool)>,
    /// The last typing state sent to each contact, and when.
    typing_sent: HashMap<[u8; 32], (TypingState, Instant)>,
    /// Profile requests in flight, by tag.
    profile_asks: HashMap<u64, [u8; 32]>,
    last_heartbeat: Instant,
    last_silence_check: Instant,
}

/// Commands of this module (answered after the batch, each in its own small transaction).
pub(crate) enum SocialCmd {
    Typing {
        to: String,
        state: TypingState,
        reply: Reply<()>,
    },
    SetProfile {
        name: Option<String>,
        about: Option<String>,
        avatar: Option<Option<Vec<u8>>>,
        reply: Reply<ProfileView>,
    },
    Profile(Reply<ProfileView>),
    SetPrivacy {
        key: String,
        value: String,
        reply: Reply<PrivacyView>,
    },
    Privacy(Reply<PrivacyView>),
    Block {
        name: String,
        blocked: bool,
        reply: Reply<ContactView>,
    },
}

fn typing_str(t: TypingState) -> &'static str {
    match t {
        TypingState::Typing => "typing",
        TypingState::Recording => "recording",
        TypingState::Stopped => "stopped",
    }
}

fn avatar_path(data_dir: &Path, file: &str) -> PathBuf {
    data_dir.join("avatars").join(file)
}

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
        Self {
            privacy,
            profile,
            blocked,
            seen: HashMap::new(),
            peers: HashMap::new(),
            typing_sent: HashMap::new(),
            profile_asks: HashMap::new(),
            last_heartbeat: Instant::now(),
            last_silence_check: Instant::now(),
        }
    }

    /// Forgets what memory holds of a removed contact.
    pub(crate) fn forget(&mut self, identity: &[u8; 32]) {
        self.seen.remove(identity);
        self.typing_sent.remove(identity);
        self.blocked.remove(identity);
        self.peers.retain(|_, (id, _)| id != identity);
    }

    /// Fills a contact's presence and profile fields for `contacts list`.
    pub(crate) fn fill_view(
        &self,
        v: &mut ContactView,
        identity: &[u8; 32],
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
        match self.seen.get(identity) {
            Some(s) if !s.online.is_empty() && s.shows_online => v.presence = "online".into(),
            Some(s) if !s.online.is_empty() => v.presence = "unknown".into(),
            _ if extra.last_seen_ms.is_some() => v.presence = "offline".into(),
            _ => {}
        }
        if let Some(s) = self.seen.get(identity)
            && let Some((t, until)) = s.typing
            && until > Instant::now()
        {
            v.typing = Some(typing_str(t).into());
        }
    }

    /// The presence to send to a person.
    fn presence_for(&self, added_by_user: bool, online: bool) -> Presence {
        Presence {
            online: online && self.privacy.online.allows(added_by_user),
            last_seen_ms: self.privacy.last_seen.allows(added_by_user).then(now_ms),
            profile_version: self.profile.as_ref().map_or(0, |p| p.version),
        }
    }

    /// Connected devices of contacts, with whether this user added the contact.
    fn connected_contacts(&self) -> Vec<(PeerId, bool)> {
        self.peers
            .iter()
            .map(|(p, (_, added))| (*p, *added))
            .collect()
    }

    /// The connected devices of one contact.
    fn devices_of(&self, identity: &[u8; 32]) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, (id, _))| id == identity)
            .map(|(p, _)| *p)
            .collect()
    }

    fn my_profile_view(&self) -> ProfileView {
        match &self.profile {
            Some(p) => ProfileView {
                name: p.name.clone(),
                about: p.about.clone(),
                avatar_bytes: p.avatar.as_ref().map(Vec::len),
                version: p.version,
            },
            None => ProfileView::default(),
        }
    }
}

impl Engine {
    /// The identity of a contact's device, and whether this user added the contact.
    fn contact_of(&self, peer: &PeerId) -> Option<([u8; 32], bool)> {
        if let Some(x) = self.st.social.peers.get(peer) {
            return Some(*x);
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

    fn send_presence(&mut self, peer: PeerId, added_by_user: bool, online: bool, tag: Option<u64>) {
        let p = self.st.social.presence_for(added_by_user, online);
        let _ = self.st.net.send(NetCommand::Signal {
            tag,
            peer,
            signal: Signal::Presence(p),
        });
    }

    /// A connection to `peer` opened: if it is a contact's device, say we are here.
    pub(super) fn presence_connected(&mut self, peer: PeerId) {
        let Some((identity, added)) = self.contact_of(&peer) else {
            return;
        };
        if self.st.social.blocked.contains(&identity) {
            return;
        }
        if self.st.social.peers.len() < MAX_TRACKED {
            self.st.social.peers.insert(peer, (identity, added));
        }
        self.send_presence(peer, added, true, None);
    }

    /// The last connection to `peer` closed.
    pub(super) fn presence_disconnected(&mut self, peer: PeerId) {
        let Some((identity, _)) = self.st.social.peers.remove(&peer) else {
            return;
        };
        self.device_gone(identity, peer, None);
    }

    /// One of a contact's devices is gone (or said goodbye): offline when it was the last.
    fn device_gone(&mut self, identity: [u8; 32], peer: PeerId, told: Option<u64>) {
        let Some(s) = self.st.social.seen.get_mut(&identity) else {
            return;
        };
        let last_heard = s.online.remove(&peer);
        if !s.online.is_empty() || (last_heard.is_none() && told.is_none()) {
            return;
        }
        let was_online = s.shows_online;
        s.shows_online = false;
        s.typing = None;
        let last_seen = if s.shares_last_seen {
            Some(told.unwrap_or_else(now_ms))
        } else {
            None
        };
        if let Some(t) = last_seen {
            let res = self.store.write(|w| {
                let mut e = w.contact_extra(&identity)?;
                e.last_seen_ms = Some(e.last_seen_ms.map_or(t, |old| old.max(t)));
                w.put_contact_extra(&identity, &e)
            });
            if let Err(e) = res {
                warn!(error = %e, "cannot store last seen");
            }
        }
        if was_online || last_seen.is_some() {
            self.emit_presence(identity, false, last_seen);
        }
    }

    fn emit_presence(&mut self, identity: [u8; 32], online: bool, last_seen: Option<u64>) {
        let name = self
            .store
            .read(|r| r.contact(&identity))
            .ok()
            .flatten()
            .map(|c| c.name);
        if let Some(contact) = name {
            let _ = self.st.events.send(Event::Presence {
                contact,
                online,
                last_seen,
            });
        }
    }

    fn emit_name(&self, identity: &[u8; 32]) -> Option<String> {
        self.store
            .read(|r| r.contact(identity))
            .ok()
            .flatten()
            .map(|c| c.name)
    }

    /// Every heartbeat: tell connected contacts we are here; drop devices that fell silent;
    /// expire typing indicators.
    pub(super) fn presence_tick(&mut self) {
        let now = Instant::now();
        // Typing indicators that ran out.
        let mut expired = Vec::new();
        for (id, s) in &mut self.st.social.seen {
            if let Some((_, until)) = s.typing
                && until <= now
            {
                s.typing = None;
                expired.push(*id);
            }
        }
        for id in expired {
            if let Some(contact) = self.emit_name(&id) {
                let _ = self.st.events.send(Event::Typing {
                    contact,
                    state: "stopped".into(),
                });
            }
        }
        // Devices that fell silent (a cable pulled: no socket error comes), checked every
        // second, so a contact shows offline at most PRESENCE_TIMEOUT + 1 s after its last
        // heartbeat.
        if now.duration_since(self.st.social.last_silence_check) >= Duration::from_secs(1) {
            self.st.social.last_silence_check = now;
            let mut silent = Vec::new();
            for (id, s) in &self.st.social.seen {
                for (p, t) in &s.online {
                    if now.duration_since(*t) >= PRESENCE_TIMEOUT {
                        silent.push((*id, *p));
                    }
                }
            }
            for (id, p) in silent {
                self.device_gone(id, p, None);
            }
        }
        if now.duration_since(self.st.social.last_heartbeat) < HEARTBEAT {
            return;
        }
        self.st.social.last_heartbeat = now;
        let peers = self.st.social.connected_contacts();
        for (p, added) in peers {
            if self.st.social.privacy.heartbeats_for(added) {
                self.send_presence(p, added, true, None);
            }
        }
        self.st
            .social
            .typing_sent
            .retain(|_, (_, t)| now.duration_since(*t) < HEARTBEAT);
    }

    /// A clean stop: tell connected contacts we are gone; returns the tags to wait for.
    pub(super) fn presence_goodbye(&mut self) -> Vec<u64> {
        let peers = self.st.social.connected_contacts();
        let mut tags = Vec::new();
        for (p, added) in peers {
            let tag = self.st.tag();
            self.send_presence(p, added, false, Some(tag));
            tags.push(tag);
        }
        tags
    }

    /// A signal from a peer (within its rate).
    pub(super) fn on_signal(&mut self, id: Option<u64>, peer: PeerId, signal: Signal) {
        let contact = self.contact_of(&peer);
        let Some((identity, added)) =
            contact.filter(|(identity, _)| !self.st.social.blocked.contains(identity))
        else {
            if let Some(id) = id {
                let _ = self.st.net.send(NetCommand::AnswerSignal {
                    id,
                    answer: SignalAnswer::Ignored,
                });
            }
            return;
        };
        match signal {
            Signal::Presence(p) => self.on_presence(identity, added, peer, p),
            Signal::Typing(t) => self.on_typing(identity, t),
            Signal::GetProfile => {
                let answer = match &self.st.social.profile {
                    Some(p) => {
                        let mut p = p.clone();
                        if !self.st.social.privacy.profile_photo.allows(added) {
                            p.avatar = None;
                        }
                        SignalAnswer::Profile(p)
                    }
                    None => SignalAnswer::Ignored,
                };
                if let Some(id) = id {
                    let _ = self.st.net.send(NetCommand::AnswerSignal { id, answer });
                }
            }
            _ => {}
        }
    }

    fn on_presence(&mut self, identity: [u8; 32], added: bool, peer: PeerId, p: Presence) {
        if self.st.social.peers.len() < MAX_TRACKED {
            self.st.social.peers.insert(peer, (identity, added));
        }
        let fresh = !self.st.social.seen.contains_key(&identity);
        if fresh && self.st.social.seen.len() >= MAX_TRACKED {
            return;
        }
        let shared_before = self
            .st
            .social
            .seen
            .get(&identity)
            .is_some_and(|s| s.shares_last_seen);
        if p.last_seen_ms.is_none() && (fresh || shared_before) {
            // They stopped sharing their last seen: forget the one kept (as WhatsApp hides
            // it at once).
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
        if !p.online {
            // Hidden, or a goodbye: a goodbye carries the time; a hidden one keeps the
            // connection alive without showing anything.
            let s = self.st.social.seen.entry(identity).or_default();
            s.shares_last_seen = p.last_seen_ms.is_some();
            s.shows_online = false;
            s.online.insert(peer, Instant::now());
            if let Some(t) = p.last_seen_ms {
                // A device that hides being online still shares when it was last here.
                self.device_gone(identity, peer, Some(t.min(now_ms())));
            }
        } else {
            let s = self.st.social.seen.entry(identity).or_default();
            let was = !s.online.is_empty() && s.shows_online;
            s.online.insert(peer, Instant::now());
            s.shares_last_seen = p.last_seen_ms.is_some();
            s.shows_online = true;
            if !was {
                self.emit_presence(identity, true, None);
            }
        }
        // A newer profile than the one kept: ask for it (one request at a time per person).
        let stored = match self
            .st
            .social
            .seen
            .get(&identity)
            .and_then(|s| s.stored_profile)
        {
            Some(v) => v,
            None => {
                let v = self
                    .store
                    .read(|r| r.contact_extra(&identity))
                    .ok()
                    .and_then(|e| e.profile.map(|p| p.version))
                    .unwrap_or(0);
                if let Some(s) = self.st.social.seen.get_mut(&identity) {
                    s.stored_profile = Some(v);
                }
                v
            }
        };
        let asking = self.st.social.profile_asks.values().any(|i| *i == identity);
        if p.profile_version > stored
            && !asking
            && self.st.social.profile_asks.len() < MAX_PROFILE_ASKS
        {
            let tag = self.st.tag();
            self.st.social.profile_asks.insert(tag, identity);
            let _ = self.st.net.send(NetCommand::Signal {
                tag: Some(tag),
                peer,
                signal: Signal::GetProfile,
            });
        }
    }

    fn on_typing(&mut self, identity: [u8; 32], t: TypingState) {
        if !self.st.social.seen.contains_key(&identity) && self.st.social.seen.len() >= MAX_TRACKED
        {
            return;
        }
        let s = self.st.social.seen.entry(identity).or_default();
        s.typing = match t {
            TypingState::Stopped => None,
            t => Some((t, Instant::now() + TYPING_TTL)),
        };
        if let Some(contact) = self.emit_name(&identity) {
            let _ = self.st.events.send(Event::Typing {
                contact,
                state: typing_str(t).into(),
            });
        }
    }

    /// The answer to one of our tagged signals (a profile request, or a goodbye).
    /// Returns false when the tag was not a profile request.
    pub(super) fn on_signal_answer(
        &mut self,
        tag: u64,
        result: Result<SignalAnswer, String>,
    ) -> bool {
        let Some(identity) = self.st.social.profile_asks.remove(&tag) else {
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
                    let file = format!("{}.{}", hex16(&identity), kind.extension());
                    let dir = data_dir.join("avatars");
                    let tmp = dir.join(format!(".{file}.tmp"));
                    let ok = std::fs::create_dir_all(&dir)
                        .and_then(|()| std::fs::write(&tmp, bytes))
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
                if let Some(s) = self.st.social.seen.get_mut(&identity) {
                    s.stored_profile = Some(p.version);
                }
                if let Some(contact) = self.emit_name(&identity) {
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

    /// This module's commands.
    pub(super) fn social_cmd(&mut self, cmd: SocialCmd) {
        match cmd {
            SocialCmd::Typing { to, state, reply } => {
                let r = self.typing(&to, state);
                let _ = reply.send(r);
            }
            SocialCmd::Profile(reply) => {
                let _ = reply.send(Ok(self.st.social.my_profile_view()));
            }
            SocialCmd::SetProfile {
                name,
                about,
                avatar,
                reply,
            } => {
                let r = self.set_profile(name, about, avatar);
                let _ = reply.send(r);
            }
            SocialCmd::Privacy(reply) => {
                let _ = reply.send(Ok(self.st.social.privacy.view()));
            }
            SocialCmd::SetPrivacy { key, value, reply } => {
                let r = self.set_privacy(&key, &value);
                let _ = reply.send(r);
            }
            SocialCmd::Block {
                name,
                blocked,
                reply,
            } => {
                let r = self.block(&name, blocked);
                let _ = reply.send(r);
            }
        }
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
        let now = Instant::now();
        if let Some((last, at)) = self.st.social.typing_sent.get(&identity) {
            let since = now.duration_since(*at);
            let repeat = *last == state && since < TYPING_RESEND;
            let too_soon = state != TypingState::Stopped && since < TYPING_GAP;
            if repeat || too_soon {
                // Bounded at the source too: a client calling this in a loop sends at most
                // four signals a second.
                return Ok(());
            }
        }
        if self.st.social.typing_sent.len() >= MAX_TRACKED {
            self.st.social.typing_sent.clear();
        }
        self.st.social.typing_sent.insert(identity, (state, now));
        let peers = self.st.social.devices_of(&identity);
        for peer in peers {
            let _ = self.st.net.send(NetCommand::Signal {
                tag: None,
                peer,
                signal: Signal::Typing(state),
            });
        }
        Ok(())
    }

    fn set_profile(
        &mut self,
        name: Option<String>,
        about: Option<String>,
        avatar: Option<Option<Vec<u8>>>,
    ) -> Result<ProfileView, EngineError> {
        let mut p = self.st.social.profile.clone().unwrap_or(Profile {
            version: 0,
            name: String::new(),
            about: String::new(),
            avatar: None,
        });
        if let Some(n) = name {
            p.name = n.trim().to_string();
        }
        if let Some(a) = about {
            p.about = a.trim().to_string();
        }
        if let Some(a) = avatar {
            if let Some(bytes) = &a {
                check_avatar(bytes).map_err(|e| {
                    EngineError::BadSetting(format!("the photo is not usable: {e}"))
                })?;
            }
            p.avatar = a;
        }
        p.validate()
            .map_err(|e| EngineError::BadSetting(format!("invalid profile: {e}")))?;
        p.version = now_ms().max(p.version + 1);
        let bytes = kith_proto::codec::encode(&p).map_err(internal)?;
        self.store
            .write(|w| w.set_meta("profile", &bytes))
            .map_err(internal)?;
        self.st.social.profile = Some(p);
        self.announce();
        Ok(self.st.social.my_profile_view())
    }

    fn set_privacy(&mut self, key: &str, value: &str) -> Result<PrivacyView, EngineError> {
        let mut p = self.st.social.privacy.clone();
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
        let bytes = kith_proto::codec::encode(&p).map_err(internal)?;
        self.store
            .write(|w| w.set_meta("privacy", &bytes))
            .map_err(internal)?;
        self.st.social.privacy = p;
        self.announce();
        Ok(self.st.social.privacy.view())
    }

    /// Sends a fresh presence to every connected contact (after a setting changed).
    fn announce(&mut self) {
        let peers = self.st.social.connected_contacts();
        for (p, added) in peers {
            self.send_presence(p, added, true, None);
        }
    }

    fn block(&mut self, name: &str, blocked: bool) -> Result<ContactView, EngineError> {
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
            // Their devices stop seeing us at once: a blank presence (not online, no last
            // seen), then nothing more.
            let theirs = self.st.social.devices_of(&contact.identity);
            for peer in theirs {
                let _ = self.st.net.send(NetCommand::Signal {
                    tag: None,
                    peer,
                    signal: Signal::Presence(Presence {
                        online: false,
                        last_seen_ms: None,
                        profile_version: 0,
                    }),
                });
            }
            self.st.social.blocked.insert(contact.identity);
            self.st.social.seen.remove(&contact.identity);
            self.st
                .social
                .peers
                .retain(|_, (id, _)| *id != contact.identity);
        } else {
            self.st.social.blocked.remove(&contact.identity);
            // Their connected devices see us again.
            let peers: Vec<PeerId> = self.st.connected.iter().copied().collect();
            for p in peers {
                self.presence_connected(p);
            }
        }
        let mut v = ContactView::new(
            contact.name,
            IdentityKey(contact.identity).short(),
            contact.added_by_user,
        );
        v.blocked = blocked;
        Ok(v)
    }
}

/// The first 16 hex digits of an identity key (file names).
fn hex16(identity: &[u8; 32]) -> String {
    hex::encode(&identity[..8])
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
}
