//! Message actions: who may do what to which message, and what it leaves behind. A core
//! with no I/O: the actor reads the target message and its [`MessageMeta`] from the store,
//! hands them here with the time, and writes back what this decides.
//!
//! The rules:
//!
//! - **Reactions**: anyone in the chat, one per person; a new one replaces the old, an empty
//!   one takes it back. At most [`MAX_REACTIONS`] people per message.
//! - **Edit**: only the author, within [`EDIT_WINDOW_MS`] of sending (measured on the
//!   author's clock: the edit's time against the message's; a local edit against now). The
//!   latest edit wins, whatever order edits arrive in. A deleted message cannot be edited.
//! - **Delete for everyone**: only the author, within [`DELETE_WINDOW_MS`]; the text is
//!   replaced by a tombstone on every device and member that gets it, later ones included.
//! - **Delete for me, star, pin**: this user's own marks, on any message.
//! - **Early actions**: a reaction, edit or delete whose message has not arrived yet (a
//!   group frame ahead of another, a mailbox handing things over out of order) is held,
//!   at most [`MAX_EARLY_PER_MESSAGE`] per message and [`MAX_EARLY_PER_CHAT`] messages per
//!   chat, and judged by the same rules when the message comes ([`arrived`]).
//! - **Disappearing messages**: a chat's timer is one of [`DISAPPEAR_CHOICES`]; the latest
//!   setting wins (either person, any member); a message stored while it is on disappears
//!   that long after it was stored here ([`expires_at`]).

use kith_proto::chat::{ChatAction, DISAPPEAR_CHOICES};
use kith_store::{ChatSettings, MessageMeta};
use kith_types::IdentityKey;

/// How long after sending its author may edit a message (15 minutes).
pub const EDIT_WINDOW_MS: u64 = 15 * 60 * 1000;
/// How long after sending its author may delete a message for everyone (2 days).
pub const DELETE_WINDOW_MS: u64 = 2 * 24 * 3600 * 1000;
/// Most people whose reaction one message keeps (a group's member cap).
pub const MAX_REACTIONS: usize = 1024;
/// Most actions held for one message that has not arrived.
pub const MAX_EARLY_PER_MESSAGE: usize = 8;
/// Most messages per chat with actions held for them.
pub const MAX_EARLY_PER_CHAT: usize = 256;

/// The message an action names, as the store holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Who wrote it.
    pub author: IdentityKey,
    /// When they wrote it (their clock, ms).
    pub sent_at_ms: u64,
}

/// What became of an action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Taken; the message's text is now this (an edit; empty for a tombstone), if it changed.
    Done { text: Option<String> },
    /// Its message is not here yet: held in the meta until it comes.
    Held,
    /// Already the state (a repeat, an older edit): nothing changed.
    Unchanged,
    /// Not allowed; why, for the log or the user.
    Refused(&'static str),
}

/// The sender's time of an action, for actions that carry one.
fn action_time(a: &ChatAction) -> Option<u64> {
    match a {
        ChatAction::Edit { at_ms, .. } | ChatAction::Delete { at_ms, .. } => Some(*at_ms),
        _ => None,
    }
}

/// Whether `actor` may still edit (`edit`) or delete `t` at `at_ms` (the actor's clock).
fn within(t: &Target, actor: &IdentityKey, at_ms: u64, window: u64) -> Result<(), &'static str> {
    if &t.author != actor {
        return Err("only the author may change a message");
    }
    if at_ms.saturating_sub(t.sent_at_ms) > window {
        return Err("too late to change this message");
    }
    Ok(())
}

/// The user's own edit of `t`, now: allowed?
pub fn may_edit(t: &Target, me: &IdentityKey, now_ms: u64) -> Result<(), &'static str> {
    within(t, me, now_ms, EDIT_WINDOW_MS)
}

/// The user's own delete-for-everyone of `t`, now: allowed?
pub fn may_delete(t: &Target, me: &IdentityKey, now_ms: u64) -> Result<(), &'static str> {
    within(t, me, now_ms, DELETE_WINDOW_MS)
}

/// Applies `action` by `actor` to a message with `meta`, whose target is `target` (`None`:
/// not here yet). Only reactions, edits and deletes name a target; anything else is
/// refused here.
pub fn apply(
    meta: &mut MessageMeta,
    target: Option<&Target>,
    actor: IdentityKey,
    action: &ChatAction,
) -> Applied {
    if !matches!(
        action,
        ChatAction::React { .. } | ChatAction::Edit { .. } | ChatAction::Delete { .. }
    ) {
        return Applied::Refused("not a message action");
    }
    let Some(t) = target else {
        if meta.early.iter().any(|(a, x)| *a == actor && x == action) {
            return Applied::Unchanged;
        }
        if meta.early.len() >= MAX_EARLY_PER_MESSAGE {
            return Applied::Refused("too many actions for a message not here");
        }
        meta.early.push((actor, action.clone()));
        return Applied::Held;
    };
    match action {
        ChatAction::React { emoji, .. } => react(meta, actor, emoji),
        ChatAction::Edit { text, at_ms, .. } => {
            if let Err(e) = within(t, &actor, *at_ms, EDIT_WINDOW_MS) {
                return Applied::Refused(e);
            }
            if meta.deleted || meta.expired || meta.hidden {
                return Applied::Unchanged;
            }
            if *at_ms < meta.edited_at_ms || (*at_ms == meta.edited_at_ms && meta.edited_at_ms != 0)
            {
                return Applied::Unchanged;
            }
            meta.edited_at_ms = (*at_ms).max(1);
            Applied::Done {
                text: Some(text.clone()),
            }
        }
        ChatAction::Delete { at_ms, .. } => {
            if let Err(e) = within(t, &actor, *at_ms, DELETE_WINDOW_MS) {
                return Applied::Refused(e);
            }
            if meta.deleted {
                return Applied::Unchanged;
            }
            meta.deleted = true;
            meta.reactions.clear();
            Applied::Done {
                text: Some(String::new()),
            }
        }
        _ => Applied::Refused("not a message action"),
    }
}

fn react(meta: &mut MessageMeta, actor: IdentityKey, emoji: &str) -> Applied {
    if meta.deleted || meta.expired {
        return Applied::Unchanged;
    }
    let pos = meta.reactions.iter().position(|(who, _)| *who == actor);
    match (pos, emoji.is_empty()) {
        (None, true) => Applied::Unchanged,
        (Some(i), true) => {
            meta.reactions.remove(i);
            Applied::Done { text: None }
        }
        (Some(i), false) if meta.reactions[i].1 == emoji => Applied::Unchanged,
        (Some(i), false) => {
            meta.reactions[i].1 = emoji.to_string();
            Applied::Done { text: None }
        }
        (None, false) if meta.reactions.len() >= MAX_REACTIONS => {
            Applied::Refused("too many reactions")
        }
        (None, false) => {
            meta.reactions.push((actor, emoji.to_string()));
            Applied::Done { text: None }
        }
    }
}

/// The message the held actions of `meta` were waiting for has arrived: judges them in the
/// order their senders made them. Returns the text the message should have now, if an
/// action changed it.
pub fn arrived(meta: &mut MessageMeta, target: &Target) -> Option<String> {
    let mut held = std::mem::take(&mut meta.early);
    held.sort_by_key(|(_, a)| action_time(a).unwrap_or(0));
    let mut text = None;
    for (actor, action) in held {
        if let Applied::Done { text: Some(t) } = apply(meta, Some(target), actor, &action) {
            text = Some(t);
        }
    }
    text
}

/// A disappearing timer set by someone at `at_ms` (their clock): whether it replaces the
/// chat's current one (the latest wins).
pub fn set_disappear(s: &mut ChatSettings, secs: u32, at_ms: u64) -> bool {
    if !DISAPPEAR_CHOICES.contains(&secs) || at_ms < s.disappear_set_ms {
        return false;
    }
    let changed = s.disappear_secs != secs;
    s.disappear_secs = secs;
    s.disappear_set_ms = at_ms;
    changed
}

/// When a message stored now in a chat with settings `s` disappears (0: never).
pub fn expires_at(s: &ChatSettings, now_ms: u64) -> u64 {
    if s.disappear_secs == 0 {
        0
    } else {
        now_ms.saturating_add(u64::from(s.disappear_secs) * 1000)
    }
}

/// Reads a timer as people write it: `off`, `5m`, `1h`, `1d`, `7d`, `90d` (or seconds).
pub fn parse_disappear(s: &str) -> Result<u32, String> {
    let secs = match s {
        "off" | "0" => 0,
        "5m" => 300,
        "1h" => 3600,
        "1d" | "24h" => 86_400,
        "7d" | "1w" => 7 * 86_400,
        "90d" => 90 * 86_400,
        n => n.parse::<u32>().map_err(|_| bad_timer())?,
    };
    if DISAPPEAR_CHOICES.contains(&secs) {
        Ok(secs)
    } else {
        Err(bad_timer())
    }
}

fn bad_timer() -> String {
    "disappearing timer must be off, 5m, 1h, 1d, 7d or 90d".into()
}

/// The name of a timer, for people (`off`, `5m`, …).
pub fn timer_name(secs: u32) -> String {
    match secs {
        0 => "off".into(),
        300 => "5m".into(),
        3600 => "1h".into(),
        86_400 => "1d".into(),
        604_800 => "7d".into(),
        7_776_000 => "90d".into(),
        n => format!("{n}s"),
    }
}

#[cfg(test)]
mod tests;
