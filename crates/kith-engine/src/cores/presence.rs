//! Presence and typing: who may see what of this user (the privacy settings), what goes to
//! each contact's connected devices and when, and what is known of each contact's presence.
//! A core with no I/O: it never reads a clock (the time comes in a [`Now`]), and touches
//! neither the store, nor the network, nor the event stream. The engine actor
//! (`crate::actor::presence`) feeds it what happens and carries out the [`Out`]s it returns,
//! in order. Peers are opaque keys (`P`: the engine uses libp2p peer ids); people are their
//! identity keys.
//!
//! Who may see what is in the `privacy` submodule ([`Privacy`], [`Audience`]): online and
//! last seen shown to everyone, to contacts this user added, or to nobody; the photo
//! likewise; read receipts on or off.
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
//!    - A presence marks the device heard now, shows the contact online (or hidden), and
//!      (the first one heard from that device) is answered with ours, so a contact who
//!      adds us on a connection that was already open sees us at once, and
//!      keeps or forgets its last seen by what it shares. When it carries a newer profile
//!      version than the store holds (the actor tells the core that version first:
//!      [`Social::knows_profile_of`], [`Social::profile_stored`]), the core asks for the
//!      profile ([`Out::AskProfile`]), one request per person at a time and at most
//!      [`MAX_PROFILE_ASKS`]; the actor tags it ([`Social::asked`]) and hands the answer
//!      back ([`Social::answered`], then [`Social::profile_stored`] once it is kept).
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

use crate::model::{EngineError, ProfileView};

mod privacy;
pub use privacy::{Audience, Privacy};
#[cfg(test)]
mod tests;

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
pub type Identity = kith_types::IdentityKey;

/// The time, as the actor reads it: monotonic for schedules, wall-clock milliseconds for
/// what is shown to people (last seen, profile versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// For schedules and timeouts.
    pub at: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
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
        let first_word = !s.online.contains_key(&peer);
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
        // The first word from this device (since it connected or fell silent), and not a
        // goodbye: answer with ours at once. It may have just added us, on a connection
        // that was already open, so our greeting went unheard; without this it would wait
        // for our next heartbeat. Each side answers a device once, so this never loops.
        let goodbye = !p.online && p.last_seen_ms.is_some();
        if first_word && !goodbye {
            out.push(Out::Send {
                peer,
                signal: Signal::Presence(self.presence_for(added, true, now.unix_ms)),
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

    /// This user's profile, if set.
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
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
