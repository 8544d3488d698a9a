//! A chat's settings from the chat list: mute (m), archive (z) and the disappearing-message
//! timer (t, then 0–5), as `kith mute`, `kith archive` and `kith disappear` do.

use crossterm::event::{KeyCode, KeyEvent};

use super::app::{App, ChatKey, Effect, Mode};

/// The timers a chat can have, as `chat.set` names them, and as shown.
pub const TIMERS: [(&str, &str); 6] = [
    ("off", "off"),
    ("5m", "5 min"),
    ("1h", "1 hour"),
    ("1d", "1 day"),
    ("7d", "7 days"),
    ("90d", "90 days"),
];

/// One change to a chat's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Mute (true) or unmute.
    Muted(bool),
    /// Archive (true) or unarchive.
    Archived(bool),
    /// The disappearing timer (`off`, `5m` … `90d`).
    Disappear(String),
}

/// A chat's settings as `chat.set` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Archived.
    pub archived: bool,
    /// Muted.
    pub muted: bool,
    /// Disappearing timer.
    pub disappear: String,
}

fn chosen(app: &App) -> Option<(ChatKey, bool, bool)> {
    app.selected_chat()
        .map(|c| (c.key.clone(), c.muted, c.archived))
}

/// m: mute the chosen chat, or unmute it.
pub fn toggle_mute(app: &mut App, fx: &mut Vec<Effect>) {
    if let Some((key, muted, _)) = chosen(app) {
        fx.push(Effect::ChatSet(key, Change::Muted(!muted)));
    }
}

/// z: archive the chosen chat, or bring it back.
pub fn toggle_archive(app: &mut App, fx: &mut Vec<Effect>) {
    if let Some((key, _, archived)) = chosen(app) {
        fx.push(Effect::ChatSet(key, Change::Archived(!archived)));
    }
}

/// t: choose the chosen chat's disappearing timer.
pub fn start_timer(app: &mut App) {
    if app.selected_chat().is_some() {
        app.mode = Mode::Timer;
        // The picker's line takes the bar.
        app.notice = None;
    }
}

/// The timer picker's line.
pub fn timer_hint() -> String {
    let opts: Vec<String> = TIMERS
        .iter()
        .enumerate()
        .map(|(i, (_, shown))| format!("{i} {shown}"))
        .collect();
    format!("disappearing messages: {} · Esc cancel", opts.join(" · "))
}

/// A key while choosing the timer.
pub fn timer_key(app: &mut App, k: KeyEvent, fx: &mut Vec<Effect>) {
    let pick = match k.code {
        KeyCode::Char(d @ '0'..='5') => TIMERS.get(d as usize - '0' as usize),
        KeyCode::Esc => None,
        _ => return,
    };
    app.mode = Mode::List;
    if let (Some((name, _)), Some((key, _, _))) = (pick, chosen(app)) {
        fx.push(Effect::ChatSet(key, Change::Disappear((*name).to_string())));
    }
}

/// `chat.set` answered: the list shows it.
pub fn applied(app: &mut App, key: ChatKey, s: Settings) {
    let Some(c) = app.chats.iter_mut().find(|c| c.key == key) else {
        return;
    };
    let changed = if c.muted != s.muted {
        if s.muted { "muted" } else { "unmuted" }
    } else if c.archived != s.archived {
        if s.archived {
            "archived"
        } else {
            "back from the archive"
        }
    } else {
        ""
    };
    c.muted = s.muted;
    c.archived = s.archived;
    let title = c.title.clone();
    let timer = TIMERS
        .iter()
        .find(|(n, _)| *n == s.disappear)
        .map_or(s.disappear.as_str(), |(_, shown)| shown);
    let text = match changed {
        "" => format!("{title}: disappearing messages {timer}"),
        what => format!("{title} {what}"),
    };
    app.note(text);
    super::data::sort_chats(&mut app.chats);
}
