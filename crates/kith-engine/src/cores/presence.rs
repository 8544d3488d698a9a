//! Presence and typing: who may see what of this user (the privacy settings), what goes to
//! each contact's connected devices and when, and what is known of each contact's presence.
//! A core with no I/O: it never reads a clock (the time comes in a [`Now`]), and touches
//! neither the store, nor the network, nor the event stream. The engine actor
//! (`crate::actor::presence`) feeds it what happens and carries out the [`Out`]s it returns,
//! in order. Peers are opaque keys (`P`: the engine uses libp2p peer ids); people are their
//! identity keys.
//!
//! Data flow:
//!
//! 1. A contact's device connects → [`Social::connected`]: unless the contact is blocked,
//!    the device is tracked and gets a presence at once.
//! 2. Every tick → [`Social::tick`]: typing indicators past their [`TYPING_TTL`] show as
//!    stopped; once a [`SILENCE_CHECK`], devices not heard from for [`PRESENCE_TIMEOUT`] are
//!    taken as gone (a pulled cable gives no socket error); every [`HEARTBEAT`], a presence
//!    goes to every tracked device that may see something ([`Privacy::heartbeats_for`]).
//! 3. A signal arrives → [`Social::signal`]: from anyone but a device of an unblocked
//!    contact it is ignored (answered [`SignalAnswer::Ignored`] when it asks for an answer).
//!    - A presence marks the device heard now, shows the contact online (or hidden), keeps
//!      or forgets its last seen by what it shares, and asks for its profile when it carries
//!      a newer version than the one stored ([`Out::AskProfile`]: one request per person at
//!      a time, at most [`MAX_PROFILE_ASKS`]; the actor tags it and calls
//!      [`Social::asked`], and on the answer [`Social::answered`] and
//!      [`Social::profile_stored`]). The actor first tells the core the stored version
//!      ([`Social::knows_profile_of`], [`Social::profile_stored`]).
//!    - Typing shows until [`TYPING_TTL`] unless renewed; stopped clears it.
//!    - A profile request is answered with this user's profile, without the photo for
//!      someone the `profile-photo` setting does not allow.
//! 4. The last device of a contact disconnects, falls silent, or says goodbye (a presence
//!    that is not online but carries a last-seen time) → the contact shows offline, with
//!    its last seen when it shares it ([`Out::StoreLastSeen`], [`Out::ShowPresence`]).
//! 5. This user types → [`Social::typing`]: the state goes to the contact's connected
//!    devices, but the same state at most once per [`TYPING_RESEND`] and any two signals at
//!    least [`TYPING_GAP`] apart; a stop always goes.
//! 6. This user changes a setting or the profile → [`Social::set_privacy`],
//!    [`Social::set_profile`]: a fresh presence to every tracked device. Blocking a contact
//!    ([`Social::block`]) sends its devices a blank presence and forgets them.
//! 7. A clean stop → [`Social::goodbye`]: a presence that is not online to every tracked
//!    device.
//!
//! Every map is bounded with a named cap; over it the oldest entry goes. The blocked set is
//! not: it mirrors the contacts marked blocked in the store, and forgetting a block would
//! unblock someone.

use std::collections::HashSet;
use std::hash::Hash;
use std::time::{Duration, Instant};

use kith_proto::signal::{Presence, Profile, Signal, SignalAnswer, TypingState, check_avatar};
use kith_types::BoundedMap;
use serde::{Deserialize, Serialize};

use crate::model::{EngineError, PrivacyView, ProfileView};

/// How often a connected contact's device is told we are here.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// A device that has not spoken for this long is taken as gone.
pub const PRESENCE_TIMEOUT: Duration = Duration::from_secs(50);
/// How often devices are checked for silence: a contact shows offline at most
/// [`PRESENCE_TIMEOUT`] plus this after its last word.
pub const SILENCE_CHECK: Duration = Duration::from_secs(1);
/// How long a typing indicator shows without being renewed.
pub const TYPING_TTL: Duration = Duration::from_secs(6);
/// The same typing state is sent again at most this often.
pub const TYPING_RESEND: Duration = Duration::from_secs(2);
/// Any typing signals to one contact are at least this far apart (a stop always goes).
pub const TYPING_GAP: Duration = Duration::from_millis(250);
/// Most contacts whose presence is tracked in memory.
pub const MAX_TRACKED: usize = 65_536;
/// Most connected contact devices tracked.
pub const MAX_PEERS: usize = 65_536;
/// Most devices of one contact shown as connected.
pub const MAX_DEVICES_ONLINE: usize = 64;
/// Most profile requests in flight; more are not made until some are answered.
pub const MAX_PROFILE_ASKS: usize = 1024;

/// A person, by identity key.
pub type Identity = [u8; 32];

/// The time, as the actor reads it: monotonic for schedules, wall-clock milliseconds for
/// what is shown to people (last seen, profile versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// For schedules and timeouts.
    pub at: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

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
    /// from us when a link opens, not every [`HEARTBEAT`]: heartbeats would hold a link open
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

/// The name of a typing state in commands and events.
pub fn typing_name(t: TypingState) -> &'static str {
    match t {
        TypingState::Typing => "typing",
        TypingState::Recording => "recording",
        TypingState::Stopped => "stopped",
    }
}

/// Parses a typing state from the `typing` command.
pub fn parse_typing(s: &str) -> Result<TypingState, EngineError> {
    match s {
        "typing" => Ok(TypingState::Typing),
        "recording" => Ok(TypingState::Recording),
        "stopped" => Ok(TypingState::Stopped),
        other => Err(EngineError::BadSetting(format!(
            "typing state must be typing, recording or stopped, not {other:?}"
        ))),
    }
}

/// What the core asks the actor to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out<P> {
    /// Send this signal to this device (untagged).
    Send {
        /// The device.
        peer: P,
        /// The signal.
        signal: Signal,
    },
    /// Ask this device for its owner's profile: tag a [`Signal::GetProfile`] and tell the
    /// core the tag ([`Social::asked`]).
    AskProfile {
        /// The device.
        peer: P,
        /// Its owner.
        identity: Identity,
    },
    /// Answer the signal that came with this id.
    Answer {
        /// The signal's id.
        id: u64,
        /// The answer.
        answer: SignalAnswer,
    },
    /// Keep this last-seen time for the contact (a later one kept stays).
    StoreLastSeen {
        /// The contact.
        identity: Identity,
        /// The time (ms since the epoch).
        at_ms: u64,
    },
    /// Forget the contact's kept last-seen time: they stopped sharing it.
    ForgetLastSeen {
        /// The contact.
        identity: Identity,
    },
    /// Tell watchers the contact is now online, or offline (with its last seen if shared).
    ShowPresence {
        /// The contact.
        identity: Identity,
        /// Online now.
        online: bool,
        /// When last seen, if shared.
        last_seen: Option<u64>,
    },
    /// Tell watchers the contact's typing state.
    ShowTyping {
        /// The contact.
        identity: Identity,
        /// Its state.
        state: TypingState,
    },
}

/// How a contact shows in `contacts list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// A device is connected and shows it online.
    Online,
    /// A device is connected but hides being online.
    Hidden,
    /// No device is connected (as far as is known).
    Away,
}

/// What is known of one contact's presence.
#[derive(Debug, Clone)]
struct Seen<P> {
    /// Its devices that are connected and spoke recently, with when they last did.
    online: BoundedMap<P, Instant>,
    /// Whether its last presence shared a last-seen time.
    shares_last_seen: bool,
    /// Whether its last presence showed it online.
    shows_online: bool,
    /// Typing now, until when.
    typing: Option<(TypingState, Instant)>,
}

impl<P: Eq + Hash + Clone> Seen<P> {
    fn new() -> Self {
        Self {
            online: BoundedMap::new(MAX_DEVICES_ONLINE),
            shares_last_seen: false,
            shows_online: false,
            typing: None,
        }
    }
}

/// Presence, typing, profiles, privacy and blocks; see the module docs.
#[derive(Debug)]
pub struct Social<P> {
    /// Who sees what.
    pub privacy: Privacy,
    /// Blocked identities.
    pub blocked: HashSet<Identity>,
    /// This user's profile.
    profile: Option<Profile>,
    seen: BoundedMap<Identity, Seen<P>>,
    /// Connected devices of contacts: their owner and whether this user added them.
    peers: BoundedMap<P, (Identity, bool)>,
    /// The last typing state sent to each contact, and when.
    typing_sent: BoundedMap<Identity, (TypingState, Instant)>,
    /// The version of each contact's profile the store holds (once read).
    profile_versions: BoundedMap<Identity, u64>,
    /// Profile requests in flight, by tag.
    profile_asks: BoundedMap<u64, Identity>,
    last_heartbeat: Instant,
    last_silence_check: Instant,
}

impl<P: Copy + Eq + Hash + Ord> Social<P> {
    /// The state at start: settings, profile and blocks as stored, nothing seen yet. The
    /// first heartbeat and silence check are counted from `now`.
    pub fn new(
        privacy: Privacy,
        profile: Option<Profile>,
        blocked: HashSet<Identity>,
        now: Instant,
    ) -> Self {
        Self {
            privacy,
            blocked,
            profile,
            seen: BoundedMap::new(MAX_TRACKED),
            peers: BoundedMap::new(MAX_PEERS),
            typing_sent: BoundedMap::new(MAX_TRACKED),
            profile_versions: BoundedMap::new(MAX_TRACKED),
            profile_asks: BoundedMap::new(MAX_PROFILE_ASKS),
            last_heartbeat: now,
            last_silence_check: now,
        }
    }

    /// The owner of a tracked device, and whether this user added them.
    pub fn contact_of(&self, peer: &P) -> Option<(Identity, bool)> {
        self.peers.get(peer).copied()
    }

    /// This user's profile, as `kith profile` shows it.
    pub fn my_profile_view(&self) -> ProfileView {
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

    /// How a contact shows now, and what it is typing.
    pub fn shown(&self, identity: &Identity, now: Instant) -> (Shown, Option<TypingState>) {
        let Some(s) = self.seen.get(identity) else {
            return (Shown::Away, None);
        };
        let shown = match (s.online.is_empty(), s.shows_online) {
            (false, true) => Shown::Online,
            (false, false) => Shown::Hidden,
            (true, _) => Shown::Away,
        };
        let typing = s.typing.and_then(|(t, until)| (until > now).then_some(t));
        (shown, typing)
    }

    /// Forgets what memory holds of a removed contact.
    pub fn forget(&mut self, identity: &Identity) {
        self.seen.remove(identity);
        self.typing_sent.remove(identity);
        self.profile_versions.remove(identity);
        self.blocked.remove(identity);
        self.peers.retain(|_, (id, _)| id != identity);
    }

    fn presence_for(&self, added_by_user: bool, online: bool, now_ms: u64) -> Presence {
        let version = self.profile.as_ref().map_or(0, |p| p.version);
        self.privacy
            .presence_for(added_by_user, online, version, now_ms)
    }

    /// Tracked devices with whether this user added their owner, in a stable order.
    fn tracked(&self) -> Vec<(P, bool)> {
        let mut v: Vec<(P, bool)> = self
            .peers
            .iter()
            .map(|(p, (_, added))| (*p, *added))
            .collect();
        v.sort_unstable();
        v
    }

    /// The tracked devices of one contact, in a stable order.
    fn devices_of(&self, identity: &Identity) -> Vec<P> {
        let mut v: Vec<P> = self
            .peers
            .iter()
            .filter(|(_, (id, _))| id == identity)
            .map(|(p, _)| *p)
            .collect();
        v.sort_unstable();
        v
    }

    /// A presence to every tracked device (a setting or the profile changed).
    fn announce(&self, now_ms: u64) -> Vec<Out<P>> {
        self.tracked()
            .into_iter()
            .map(|(peer, added)| Out::Send {
                peer,
                signal: Signal::Presence(self.presence_for(added, true, now_ms)),
            })
            .collect()
    }

    fn seen_mut(&mut self, identity: Identity) -> Option<&mut Seen<P>> {
        if !self.seen.contains_key(&identity) {
            self.seen.insert(identity, Seen::new());
        }
        self.seen.get_mut(&identity)
    }

    /// A connection to `peer`, a device of `contact` (its identity, and whether this user
    /// added it), opened: track it and say we are here. Nothing for a blocked contact.
    pub fn connected(&mut self, peer: P, contact: (Identity, bool), now: Now) -> Vec<Out<P>> {
        let (identity, added) = contact;
        if self.blocked.contains(&identity) {
            return Vec::new();
        }
        self.peers.insert(peer, (identity, added));
        vec![Out::Send {
            peer,
            signal: Signal::Presence(self.presence_for(added, true, now.unix_ms)),
        }]
    }

    /// The last connection to `peer` closed.
    pub fn disconnected(&mut self, peer: &P, now: Now) -> Vec<Out<P>> {
        let mut out = Vec::new();
        if let Some((identity, _)) = self.peers.remove(peer) {
            self.device_gone(identity, peer, None, now, &mut out);
        }
        out
    }

    /// One of a contact's devices is gone (or said goodbye at `told`): the contact shows
    /// offline when it was the last.
    fn device_gone(
        &mut self,
        identity: Identity,
        peer: &P,
        told: Option<u64>,
        now: Now,
        out: &mut Vec<Out<P>>,
    ) {
        let Some(s) = self.seen.get_mut(&identity) else {
            return;
        };
        let last_heard = s.online.remove(peer);
        if !s.online.is_empty() || (last_heard.is_none() && told.is_none()) {
            return;
        }
        let was_online = s.shows_online;
        s.shows_online = false;
        s.typing = None;
        let last_seen = s.shares_last_seen.then(|| told.unwrap_or(now.unix_ms));
        if let Some(at_ms) = last_seen {
            out.push(Out::StoreLastSeen { identity, at_ms });
        }
        if was_online || last_seen.is_some() {
            out.push(Out::ShowPresence {
                identity,
                online: false,
                last_seen,
            });
        }
    }

    /// Every tick: expire typing indicators; drop devices that fell silent (at most once a
    /// [`SILENCE_CHECK`]); send heartbeats (once a [`HEARTBEAT`]).
    pub fn tick(&mut self, now: Now) -> Vec<Out<P>> {
        let mut out = Vec::new();
        let mut expired: Vec<Identity> = self
            .seen
            .iter()
            .filter(|(_, s)| s.typing.is_some_and(|(_, until)| until <= now.at))
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        for identity in expired {
            if let Some(s) = self.seen.get_mut(&identity) {
                s.typing = None;
            }
            out.push(Out::ShowTyping {
                identity,
                state: TypingState::Stopped,
            });
        }
        if now.at.saturating_duration_since(self.last_silence_check) >= SILENCE_CHECK {
            self.last_silence_check = now.at;
            let mut silent: Vec<(Identity, P)> = Vec::new();
            for (id, s) in self.seen.iter() {
                for (p, heard) in s.online.iter() {
                    if now.at.saturating_duration_since(*heard) >= PRESENCE_TIMEOUT {
                        silent.push((*id, *p));
                    }
                }
            }
            silent.sort_unstable();
            for (identity, peer) in silent {
                self.device_gone(identity, &peer, None, now, &mut out);
            }
        }
        if now.at.saturating_duration_since(self.last_heartbeat) < HEARTBEAT {
            return out;
        }
        self.last_heartbeat = now.at;
        for (peer, added) in self.tracked() {
            if self.privacy.heartbeats_for(added) {
                out.push(Out::Send {
                    peer,
                    signal: Signal::Presence(self.presence_for(added, true, now.unix_ms)),
                });
            }
        }
        self.typing_sent
            .retain(|_, (_, t)| now.at.saturating_duration_since(*t) < HEARTBEAT);
        out
    }

    /// A clean stop: the goodbye (a presence that is not online) for every tracked device.
    pub fn goodbye(&self, now: Now) -> Vec<(P, Signal)> {
        self.tracked()
            .into_iter()
            .map(|(peer, added)| {
                let p = self.presence_for(added, false, now.unix_ms);
                (peer, Signal::Presence(p))
            })
            .collect()
    }

    /// Whether the stored version of a contact's profile is known; when it is not, the actor
    /// reads it and hands it to [`Social::profile_stored`] before passing on a presence.
    pub fn knows_profile_of(&self, identity: &Identity) -> bool {
        self.profile_versions.contains_key(identity)
    }

    /// The store holds `version` of the contact's profile.
    pub fn profile_stored(&mut self, identity: Identity, version: u64) {
        self.profile_versions.insert(identity, version);
    }

    /// A profile request went out under `tag`.
    pub fn asked(&mut self, tag: u64, identity: Identity) {
        self.profile_asks.insert(tag, identity);
    }

    /// The answer to a tagged signal came: whose profile it is, when it was a profile
    /// request.
    pub fn answered(&mut self, tag: u64) -> Option<Identity> {
        self.profile_asks.remove(&tag)
    }

    /// A signal (with an id when it wants an answer) from `peer`, a device of `contact`
    /// when the actor found it to be one.
    pub fn signal(
        &mut self,
        id: Option<u64>,
        peer: P,
        contact: Option<(Identity, bool)>,
        signal: Signal,
        now: Now,
    ) -> Vec<Out<P>> {
        let Some((identity, added)) = contact.filter(|(i, _)| !self.blocked.contains(i)) else {
            return id
                .map(|id| Out::Answer {
                    id,
                    answer: SignalAnswer::Ignored,
                })
                .into_iter()
                .collect();
        };
        match signal {
            Signal::Presence(p) => self.on_presence(identity, added, peer, p, now),
            Signal::Typing(t) => self.on_typing(identity, t, now.at),
            Signal::GetProfile => {
                let answer = match &self.profile {
                    Some(p) => {
                        let mut p = p.clone();
                        if !self.privacy.profile_photo.allows(added) {
                            p.avatar = None;
                        }
                        SignalAnswer::Profile(p)
                    }
                    None => SignalAnswer::Ignored,
                };
                id.map(|id| Out::Answer { id, answer })
                    .into_iter()
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn on_presence(
        &mut self,
        identity: Identity,
        added: bool,
        peer: P,
        p: Presence,
        now: Now,
    ) -> Vec<Out<P>> {
        let mut out = Vec::new();
        self.peers.insert(peer, (identity, added));
        let before = self.seen.get(&identity).map(|s| s.shares_last_seen);
        if p.last_seen_ms.is_none() && before.is_none_or(|shared| shared) {
            // They stopped sharing their last seen (or may have, while we were away):
            // forget the one kept, as WhatsApp hides it at once.
            out.push(Out::ForgetLastSeen { identity });
        }
        let Some(s) = self.seen_mut(identity) else {
            return out;
        };
        let was = !s.online.is_empty() && s.shows_online;
        s.online.insert(peer, now.at);
        s.shares_last_seen = p.last_seen_ms.is_some();
        s.shows_online = p.online;
        if !p.online {
            // Hidden, or a goodbye: a goodbye carries the time; a hidden one keeps the
            // connection alive without showing anything. A device that hides being online
            // still shares when it was last here.
            if let Some(t) = p.last_seen_ms {
                self.device_gone(identity, &peer, Some(t.min(now.unix_ms)), now, &mut out);
            }
        } else if !was {
            out.push(Out::ShowPresence {
                identity,
                online: true,
                last_seen: None,
            });
        }
        // A newer profile than the one kept: ask for it (one request at a time per person).
        let stored = self.profile_versions.get(&identity).copied().unwrap_or(0);
        let asking = self.profile_asks.iter().any(|(_, i)| *i == identity);
        if p.profile_version > stored
            && !asking
            && self.profile_asks.len() < self.profile_asks.capacity()
        {
            out.push(Out::AskProfile { peer, identity });
        }
        out
    }

    fn on_typing(&mut self, identity: Identity, t: TypingState, now: Instant) -> Vec<Out<P>> {
        if let Some(s) = self.seen_mut(identity) {
            s.typing = match t {
                TypingState::Stopped => None,
                t => Some((t, now + TYPING_TTL)),
            };
        }
        vec![Out::ShowTyping { identity, state: t }]
    }

    /// This user types to a contact: the signals to send, if any (see [`TYPING_RESEND`] and
    /// [`TYPING_GAP`]; a client calling this in a loop sends at most four a second).
    pub fn typing(&mut self, identity: Identity, state: TypingState, now: Instant) -> Vec<Out<P>> {
        if self.blocked.contains(&identity) {
            return Vec::new();
        }
        if let Some((last, at)) = self.typing_sent.get(&identity) {
            let since = now.saturating_duration_since(*at);
            let repeat = *last == state && since < TYPING_RESEND;
            let too_soon = state != TypingState::Stopped && since < TYPING_GAP;
            if repeat || too_soon {
                return Vec::new();
            }
        }
        self.typing_sent.insert(identity, (state, now));
        self.devices_of(&identity)
            .into_iter()
            .map(|peer| Out::Send {
                peer,
                signal: Signal::Typing(state),
            })
            .collect()
    }

    /// This user's profile with the given changes (`avatar`: `Some(None)` removes the
    /// photo), checked, with a version above the current one and at least `now_ms`.
    pub fn edit_profile(
        &self,
        name: Option<String>,
        about: Option<String>,
        avatar: Option<Option<Vec<u8>>>,
        now_ms: u64,
    ) -> Result<Profile, EngineError> {
        let mut p = self.profile.clone().unwrap_or(Profile {
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
        p.version = now_ms.max(p.version.saturating_add(1));
        Ok(p)
    }

    /// The profile was stored: it is this user's profile now; tell every tracked device.
    pub fn set_profile(&mut self, p: Profile, now: Now) -> Vec<Out<P>> {
        self.profile = Some(p);
        self.announce(now.unix_ms)
    }

    /// The settings were stored: they hold now; tell every tracked device.
    pub fn set_privacy(&mut self, p: Privacy, now: Now) -> Vec<Out<P>> {
        self.privacy = p;
        self.announce(now.unix_ms)
    }

    /// A contact is blocked: its devices get a blank presence (not online, no last seen, no
    /// profile), then nothing more; what is known of it is forgotten.
    pub fn block(&mut self, identity: Identity) -> Vec<Out<P>> {
        let out = self
            .devices_of(&identity)
            .into_iter()
            .map(|peer| Out::Send {
                peer,
                signal: Signal::Presence(Presence {
                    online: false,
                    last_seen_ms: None,
                    profile_version: 0,
                }),
            })
            .collect();
        self.blocked.insert(identity);
        self.seen.remove(&identity);
        self.profile_versions.remove(&identity);
        self.peers.retain(|_, (id, _)| *id != identity);
        out
    }

    /// A contact is unblocked: its devices are greeted again as they connect (the actor
    /// calls [`Social::connected`] for the ones connected now).
    pub fn unblock(&mut self, identity: &Identity) {
        self.blocked.remove(identity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Identity = [1; 32];
    const BOB: Identity = [2; 32];

    struct Clock {
        start: Instant,
    }

    impl Clock {
        fn new() -> Self {
            Self {
                start: Instant::now(),
            }
        }

        /// The time `ms` milliseconds after the start (wall clock at 1,000,000 ms then).
        fn at(&self, ms: u64) -> Now {
            Now {
                at: self.start + Duration::from_millis(ms),
                unix_ms: 1_000_000 + ms,
            }
        }
    }

    fn social(c: &Clock) -> Social<u32> {
        Social::new(Privacy::default(), None, HashSet::new(), c.start)
    }

    fn presence(online: bool, last_seen_ms: Option<u64>) -> Signal {
        Signal::Presence(Presence {
            online,
            last_seen_ms,
            profile_version: 0,
        })
    }

    fn presences(out: &[Out<u32>]) -> Vec<(u32, Presence)> {
        out.iter()
            .filter_map(|o| match o {
                Out::Send {
                    peer,
                    signal: Signal::Presence(p),
                } => Some((*peer, *p)),
                _ => None,
            })
            .collect()
    }

    fn shown_offline(out: &[Out<u32>]) -> bool {
        out.iter()
            .any(|o| matches!(o, Out::ShowPresence { online: false, .. }))
    }

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

    /// The typing throttle to the millisecond: the same state again only after
    /// TYPING_RESEND, another state only after TYPING_GAP, a stop at once.
    #[test]
    fn typing_throttle_to_the_millisecond() {
        let c = Clock::new();
        let mut s = social(&c);
        s.connected(10, (ALICE, true), c.at(0));
        s.connected(11, (ALICE, true), c.at(0));
        let sends = |out: Vec<Out<u32>>| out.len();
        let t = |ms: u64| c.at(ms).at;
        assert_eq!(sends(s.typing(ALICE, TypingState::Typing, t(0))), 2);
        let resend = TYPING_RESEND.as_millis() as u64;
        assert_eq!(
            sends(s.typing(ALICE, TypingState::Typing, t(resend - 1))),
            0
        );
        assert_eq!(sends(s.typing(ALICE, TypingState::Typing, t(resend))), 2);
        let gap = TYPING_GAP.as_millis() as u64;
        let base = resend;
        assert_eq!(
            sends(s.typing(ALICE, TypingState::Recording, t(base + gap - 1))),
            0,
            "another state waits for the gap"
        );
        assert_eq!(
            sends(s.typing(ALICE, TypingState::Recording, t(base + gap))),
            2
        );
        assert_eq!(
            sends(s.typing(ALICE, TypingState::Stopped, t(base + gap + 1))),
            2,
            "a stop always goes"
        );
        assert_eq!(
            sends(s.typing(ALICE, TypingState::Stopped, t(base + gap + 2))),
            0,
            "but not the same stop twice within the resend time"
        );
        // Nobody connected: nothing to send, but the throttle still counts.
        assert!(s.typing(BOB, TypingState::Typing, t(0)).is_empty());
    }

    #[test]
    fn a_typing_indicator_shows_until_its_ttl_then_stops() {
        let c = Clock::new();
        let mut s = social(&c);
        let out = s.signal(
            None,
            10,
            Some((ALICE, true)),
            Signal::Typing(TypingState::Typing),
            c.at(0),
        );
        assert_eq!(
            out,
            vec![Out::ShowTyping {
                identity: ALICE,
                state: TypingState::Typing
            }]
        );
        let ttl = TYPING_TTL.as_millis() as u64;
        assert_eq!(
            s.shown(&ALICE, c.at(ttl - 1).at).1,
            Some(TypingState::Typing)
        );
        assert!(s.tick(c.at(ttl - 1)).is_empty());
        assert_eq!(s.shown(&ALICE, c.at(ttl).at).1, None);
        assert_eq!(
            s.tick(c.at(ttl)),
            vec![Out::ShowTyping {
                identity: ALICE,
                state: TypingState::Stopped
            }]
        );
        assert!(s.tick(c.at(ttl + 1)).is_empty(), "stopped once");
    }

    /// A contact whose only device falls silent (no disconnect comes) shows offline at the
    /// first silence check at or after PRESENCE_TIMEOUT, with its last seen.
    #[test]
    fn a_contact_goes_offline_after_presence_timeout_of_silence() {
        let c = Clock::new();
        let mut s = social(&c);
        s.profile_stored(ALICE, 0);
        let out = s.signal(
            None,
            10,
            Some((ALICE, true)),
            presence(true, Some(5)),
            c.at(0),
        );
        assert!(out.contains(&Out::ShowPresence {
            identity: ALICE,
            online: true,
            last_seen: None
        }));
        assert_eq!(s.shown(&ALICE, c.at(0).at).0, Shown::Online);
        let timeout = PRESENCE_TIMEOUT.as_millis() as u64;
        let check = SILENCE_CHECK.as_millis() as u64;
        let mut ms = check;
        while ms < timeout {
            assert!(!shown_offline(&s.tick(c.at(ms))), "still online at {ms} ms");
            ms += check;
        }
        let out = s.tick(c.at(timeout));
        let at = c.at(timeout).unix_ms;
        assert_eq!(
            out.iter()
                .filter(|o| !matches!(o, Out::Send { .. }))
                .cloned()
                .collect::<Vec<_>>(),
            vec![
                Out::StoreLastSeen {
                    identity: ALICE,
                    at_ms: at
                },
                Out::ShowPresence {
                    identity: ALICE,
                    online: false,
                    last_seen: Some(at)
                },
            ]
        );
        assert_eq!(s.shown(&ALICE, c.at(timeout).at).0, Shown::Away);
        assert!(!shown_offline(&s.tick(c.at(timeout + check))), "once");
    }

    #[test]
    fn a_device_heard_again_stays_online() {
        let c = Clock::new();
        let mut s = social(&c);
        s.profile_stored(ALICE, 0);
        s.signal(None, 10, Some((ALICE, true)), presence(true, None), c.at(0));
        let timeout = PRESENCE_TIMEOUT.as_millis() as u64;
        s.signal(
            None,
            10,
            Some((ALICE, true)),
            presence(true, None),
            c.at(timeout - 1),
        );
        assert!(!shown_offline(&s.tick(c.at(timeout))));
        assert!(!shown_offline(&s.tick(c.at(2 * timeout - 2))));
        // Silent long enough now, but the next check is a SILENCE_CHECK after the last.
        assert!(!shown_offline(&s.tick(c.at(2 * timeout - 1))));
        let check = SILENCE_CHECK.as_millis() as u64;
        assert!(shown_offline(&s.tick(c.at(2 * timeout - 2 + check))));
    }

    #[test]
    fn offline_only_when_the_last_device_goes() {
        let c = Clock::new();
        let mut s = social(&c);
        s.profile_stored(ALICE, 0);
        s.signal(None, 10, Some((ALICE, true)), presence(true, None), c.at(0));
        s.signal(None, 11, Some((ALICE, true)), presence(true, None), c.at(0));
        assert!(s.disconnected(&10, c.at(5)).is_empty());
        assert_eq!(s.shown(&ALICE, c.at(5).at).0, Shown::Online);
        assert_eq!(
            s.disconnected(&11, c.at(6)),
            vec![Out::ShowPresence {
                identity: ALICE,
                online: false,
                last_seen: None
            }],
            "no last seen: they do not share it"
        );
        assert!(s.disconnected(&11, c.at(7)).is_empty(), "an unknown device");
    }

    #[test]
    fn a_goodbye_carries_the_time_but_never_one_from_the_future() {
        let c = Clock::new();
        let mut s = social(&c);
        s.profile_stored(ALICE, 0);
        s.signal(
            None,
            10,
            Some((ALICE, true)),
            presence(true, Some(1)),
            c.at(0),
        );
        let now = c.at(100);
        let out = s.signal(
            None,
            10,
            Some((ALICE, true)),
            presence(false, Some(u64::MAX)),
            now,
        );
        assert_eq!(
            out,
            vec![
                Out::StoreLastSeen {
                    identity: ALICE,
                    at_ms: now.unix_ms
                },
                Out::ShowPresence {
                    identity: ALICE,
                    online: false,
                    last_seen: Some(now.unix_ms)
                }
            ]
        );
    }

    #[test]
    fn a_contact_that_stops_sharing_last_seen_has_it_forgotten() {
        let c = Clock::new();
        let mut s = social(&c);
        s.profile_stored(ALICE, 0);
        let forget = Out::ForgetLastSeen { identity: ALICE };
        // First word since start: whatever was kept may be stale.
        assert!(
            s.signal(None, 10, Some((ALICE, true)), presence(true, None), c.at(0))
                .contains(&forget)
        );
        assert!(
            !s.signal(None, 10, Some((ALICE, true)), presence(true, None), c.at(1))
                .contains(&forget)
        );
        s.signal(
            None,
            10,
            Some((ALICE, true)),
            presence(true, Some(1)),
            c.at(2),
        );
        assert!(
            s.signal(None, 10, Some((ALICE, true)), presence(true, None), c.at(3))
                .contains(&forget)
        );
    }

    /// With last seen and online set to nobody, no presence this node sends (on connect,
    /// heartbeat, settings change or goodbye) reveals either, to contacts or strangers.
    #[test]
    fn nobody_never_reveals_last_seen_or_online() {
        let c = Clock::new();
        let mut s = social(&c);
        let mut nobody = Privacy::default();
        nobody.last_seen = Audience::Nobody;
        nobody.online = Audience::Nobody;
        let mut sent = presences(&s.set_privacy(nobody, c.at(0)));
        sent.extend(presences(&s.connected(10, (ALICE, true), c.at(0))));
        sent.extend(presences(&s.connected(11, (BOB, false), c.at(0))));
        for ms in (0..=3 * HEARTBEAT.as_millis() as u64).step_by(500) {
            sent.extend(presences(&s.tick(c.at(ms))));
        }
        sent.extend(presences(&s.set_profile(
            s.edit_profile(Some("A".into()), None, None, 5).unwrap(),
            c.at(1),
        )));
        sent.extend(
            s.goodbye(c.at(2))
                .into_iter()
                .filter_map(|(p, sig)| match sig {
                    Signal::Presence(x) => Some((p, x)),
                    _ => None,
                }),
        );
        assert!(
            sent.len() >= 7,
            "heartbeats and the rest went: {}",
            sent.len()
        );
        for (peer, p) in sent {
            assert!(!p.online, "online shown to {peer}");
            assert_eq!(p.last_seen_ms, None, "last seen shown to {peer}");
        }
    }

    /// Heartbeats go only to devices allowed to see something: a contact the user added
    /// always (even when hidden), a stranger only when online or last seen is `everyone`.
    #[test]
    fn heartbeats_only_to_those_allowed_to_see_them_on_schedule() {
        let c = Clock::new();
        let mut s = social(&c);
        s.connected(10, (ALICE, true), c.at(0));
        s.connected(20, (BOB, false), c.at(0));
        let hb = HEARTBEAT.as_millis() as u64;
        assert!(
            presences(&s.tick(c.at(hb - 1))).is_empty(),
            "not before HEARTBEAT"
        );
        let out = presences(&s.tick(c.at(hb)));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 10);
        assert!(out[0].1.online);
        assert_eq!(out[0].1.last_seen_ms, Some(c.at(hb).unix_ms));
        assert!(presences(&s.tick(c.at(2 * hb - 1))).is_empty());
        let mut p = s.privacy.clone();
        p.last_seen = Audience::Everyone;
        s.set_privacy(p, c.at(2 * hb - 1));
        let out = presences(&s.tick(c.at(2 * hb)));
        assert_eq!(
            out.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            vec![10, 20]
        );
        let stranger = out[1].1;
        assert!(!stranger.online, "online is for contacts");
        assert_eq!(stranger.last_seen_ms, Some(c.at(2 * hb).unix_ms));
    }

    #[test]
    fn blocked_contacts_get_a_blank_presence_then_nothing() {
        let c = Clock::new();
        let mut s = social(&c);
        s.set_profile(
            s.edit_profile(Some("me".into()), None, None, 5).unwrap(),
            c.at(0),
        );
        s.connected(10, (ALICE, true), c.at(0));
        let out = s.block(ALICE);
        assert_eq!(
            presences(&out),
            vec![(
                10,
                Presence {
                    online: false,
                    last_seen_ms: None,
                    profile_version: 0
                }
            )]
        );
        assert!(s.connected(10, (ALICE, true), c.at(1)).is_empty());
        assert!(s.typing(ALICE, TypingState::Typing, c.at(1).at).is_empty());
        assert!(presences(&s.tick(c.at(HEARTBEAT.as_millis() as u64))).is_empty());
        assert_eq!(
            s.signal(
                Some(7),
                10,
                Some((ALICE, true)),
                Signal::GetProfile,
                c.at(2)
            ),
            vec![Out::Answer {
                id: 7,
                answer: SignalAnswer::Ignored
            }]
        );
        s.unblock(&ALICE);
        assert_eq!(s.connected(10, (ALICE, true), c.at(3)).len(), 1);
    }

    #[test]
    fn strangers_signals_are_ignored() {
        let c = Clock::new();
        let mut s = social(&c);
        assert_eq!(
            s.signal(Some(3), 10, None, presence(true, None), c.at(0)),
            vec![Out::Answer {
                id: 3,
                answer: SignalAnswer::Ignored
            }]
        );
        assert!(
            s.signal(None, 10, None, presence(true, None), c.at(0))
                .is_empty()
        );
        assert_eq!(s.shown(&ALICE, c.at(0).at).0, Shown::Away);
    }

    #[test]
    fn the_photo_goes_only_to_those_the_setting_allows() {
        let c = Clock::new();
        let mut s = social(&c);
        let p = s.edit_profile(Some("me".into()), None, None, 5).unwrap();
        let with_photo = Profile {
            avatar: Some(vec![1, 2, 3]),
            ..p
        };
        s.set_profile(with_photo, c.at(0));
        let photo_for = |s: &mut Social<u32>, added: bool| match s
            .signal(
                Some(1),
                10,
                Some((ALICE, added)),
                Signal::GetProfile,
                c.at(1),
            )
            .pop()
        {
            Some(Out::Answer {
                answer: SignalAnswer::Profile(p),
                ..
            }) => p.avatar.is_some(),
            other => panic!("unexpected {other:?}"),
        };
        assert!(photo_for(&mut s, true));
        assert!(!photo_for(&mut s, false));
        let p = s.privacy.with("profile-photo", "nobody").unwrap();
        s.set_privacy(p, c.at(2));
        assert!(!photo_for(&mut s, true));
    }

    #[test]
    fn a_newer_profile_is_asked_for_once_at_a_time() {
        let c = Clock::new();
        let mut s = social(&c);
        assert!(!s.knows_profile_of(&ALICE));
        s.profile_stored(ALICE, 5);
        let newer = |v| {
            Signal::Presence(Presence {
                online: true,
                last_seen_ms: None,
                profile_version: v,
            })
        };
        let ask = Out::AskProfile {
            peer: 10,
            identity: ALICE,
        };
        assert!(
            !s.signal(None, 10, Some((ALICE, true)), newer(5), c.at(0))
                .contains(&ask)
        );
        assert!(
            s.signal(None, 10, Some((ALICE, true)), newer(6), c.at(1))
                .contains(&ask)
        );
        s.asked(42, ALICE);
        assert!(
            !s.signal(None, 10, Some((ALICE, true)), newer(6), c.at(2))
                .contains(&ask)
        );
        assert_eq!(s.answered(42), Some(ALICE));
        assert_eq!(s.answered(42), None);
        s.profile_stored(ALICE, 6);
        assert!(
            !s.signal(None, 10, Some((ALICE, true)), newer(6), c.at(3))
                .contains(&ask)
        );
    }

    #[test]
    fn profile_versions_only_go_up() {
        let c = Clock::new();
        let s = social(&c);
        let p = s.edit_profile(Some(" A ".into()), None, None, 100).unwrap();
        assert_eq!((p.name.as_str(), p.version), ("A", 100));
        let mut s = s;
        s.set_profile(p, c.at(0));
        // A clock set back still gives a newer version.
        let p = s.edit_profile(None, Some("x".into()), None, 50).unwrap();
        assert_eq!(p.version, 101);
        assert!(
            s.edit_profile(Some("x".repeat(1000)), None, None, 200)
                .is_err()
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
        assert_eq!(parse_typing("recording").unwrap(), TypingState::Recording);
        assert!(parse_typing("singing").is_err());
        for t in [
            TypingState::Typing,
            TypingState::Recording,
            TypingState::Stopped,
        ] {
            assert_eq!(parse_typing(typing_name(t)).unwrap(), t);
        }
    }

    #[test]
    fn maps_stay_within_their_caps() {
        let c = Clock::new();
        let mut s = social(&c);
        for i in 0..(MAX_DEVICES_ONLINE as u32 + 10) {
            s.signal(None, i, Some((ALICE, true)), presence(true, None), c.at(0));
        }
        let online = s.seen.get(&ALICE).map_or(0, |x| x.online.len());
        assert_eq!(online, MAX_DEVICES_ONLINE);
        for tag in 0..(MAX_PROFILE_ASKS as u64 + 10) {
            s.asked(tag, BOB);
        }
        assert!(s.profile_asks.len() <= MAX_PROFILE_ASKS);
    }
}
