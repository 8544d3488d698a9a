//! Stories, calls and files from the screen: the stories screen (contacts' statuses, posting
//! a text status, who saw your own), starting and hanging up a call, and saving a message's
//! file. Their state, keys and drawing; the app hands them the keys of [`Mode::Stories`]
//! and the global call keys.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph};

use super::app::{App, ChatKey, Effect, Mode, Ring};
use super::view::fit;
use crate::safe::printable;

/// The longest status text written here.
pub const STATUS_MAX: usize = 700;
/// Stories kept on the screen.
pub const STORIES_MAX: usize = 500;

/// One story as the screen shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Story {
    /// Its id.
    pub id: String,
    /// A contact's name, or `me`.
    pub from: String,
    /// Your own.
    pub mine: bool,
    /// When it was posted (ms).
    pub posted_at: u64,
    /// The text.
    pub text: String,
    /// Seen by you (someone else's).
    pub viewed: bool,
    /// Who saw it (your own).
    pub viewers: Vec<String>,
}

/// The stories screen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stories {
    /// Yours and your contacts', newest first.
    pub list: Vec<Story>,
    /// The chosen one.
    pub sel: usize,
    /// A new status being written.
    pub writing: Option<String>,
    /// Where Esc goes back to.
    pub back: Option<Mode>,
}

/// Opens the stories screen and asks for the stories.
pub fn open_stories(app: &mut App, fx: &mut Vec<Effect>) {
    if app.mode != Mode::Stories {
        app.stories.back = Some(app.mode);
    }
    app.mode = Mode::Stories;
    fx.push(Effect::LoadStories);
}

/// The stories arrived.
pub fn set_stories(app: &mut App, mut list: Vec<Story>) {
    list.truncate(STORIES_MAX);
    app.stories.sel = app.stories.sel.min(list.len().saturating_sub(1));
    app.stories.list = list;
}

/// Keys of the stories screen.
pub fn stories_key(app: &mut App, k: KeyEvent, fx: &mut Vec<Effect>) {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    let st = &mut app.stories;
    if let Some(text) = &mut st.writing {
        match k.code {
            KeyCode::Esc => st.writing = None,
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Enter => {
                let t = text.trim().to_string();
                st.writing = None;
                if !t.is_empty() {
                    fx.push(Effect::PostStatus(t));
                }
            }
            KeyCode::Char(c)
                if !ctrl && !c.is_control() && text.len() + c.len_utf8() <= STATUS_MAX =>
            {
                text.push(c);
            }
            _ => {}
        }
        return;
    }
    match k.code {
        KeyCode::Up | KeyCode::Char('k') => st.sel = st.sel.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => {
            st.sel = (st.sel + 1).min(st.list.len().saturating_sub(1))
        }
        KeyCode::Char('n') => st.writing = Some(String::new()),
        KeyCode::Enter => {
            if let Some(s) = st.list.get(st.sel).filter(|s| !s.mine) {
                fx.push(Effect::ViewStories(s.from.clone()));
            }
        }
        KeyCode::Esc => app.mode = st.back.take().unwrap_or(Mode::List),
        _ => {}
    }
}

/// Ctrl+G: call the open chat's contact (or, in the list, the chosen one).
pub fn dial(app: &mut App, fx: &mut Vec<Effect>) {
    if app.call.is_some() {
        app.note("a call is going on (Ctrl+X hangs up)");
        return;
    }
    let key = match (app.mode, &app.conv) {
        (Mode::List, _) | (_, None) => app.selected_chat().map(|c| c.key.clone()),
        (_, Some(c)) => Some(c.key.clone()),
    };
    match key {
        Some(ChatKey::Contact(name)) => {
            app.note(format!("calling {name}…"));
            fx.push(Effect::Dial(name));
        }
        Some(ChatKey::Group(id)) => {
            app.note("ringing the group…");
            fx.push(Effect::DialGroup(id));
        }
        None => {}
    }
}

/// A group call's news about one member ("Ada joined the call"), if the event is that.
pub fn group_call_note(ev: &serde_json::Value) -> Option<String> {
    let s = |k: &str| ev.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
    let what = match s("state") {
        "member_joined" => "joined",
        "member_left" => "left",
        "member_reconnecting" => "is reconnecting in",
        _ => return None,
    };
    Some(format!(
        "{} {what} the call in {}",
        s("contact"),
        s("group")
    ))
}

/// Whom a call is with, as the call line shows it: the contact, or for a group call the
/// group (and who rang, when it rings here).
pub fn call_title(ev: &serde_json::Value) -> String {
    let s = |k: &str| ev.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
    match (s("group"), s("direction")) {
        ("", _) => s("contact").to_string(),
        (g, "incoming") => format!("{g} ({})", s("contact")),
        (g, _) => g.to_string(),
    }
}

/// Ctrl+X: decline a call ringing here, else hang up the call.
pub fn hang_up(app: &mut App, fx: &mut Vec<Effect>) {
    let Some(r) = app.call.take() else {
        return;
    };
    if !r.outgoing && r.state == "ringing" {
        fx.push(Effect::Decline(r.call));
    } else {
        fx.push(Effect::HangUp(r.call));
    }
}

/// `d` on a chosen message: download its file (then its state and percentage show under
/// it); on a file already here, say where it is.
pub fn download(app: &mut App, fx: &mut Vec<Effect>) {
    let Some(c) = &app.conv else {
        return;
    };
    let Some(m) = c.selected.and_then(|i| c.messages.get(i)) else {
        return;
    };
    match &m.attachment {
        Some(_) if !m.deleted => fx.push(Effect::Download(m.id.clone())),
        _ => app.note("no file in this message"),
    }
}

/// The stories screen: per story who and when with its text; under your own, who saw it.
pub fn draw_stories(f: &mut Frame, app: &App, area: Rect, when: &dyn Fn(u64) -> String) {
    let st = &app.stories;
    let (w, h) = (90.min(area.width), area.height.saturating_sub(2).min(30));
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let cols = r.width.saturating_sub(2) as usize;
    let mut lines = Vec::new();
    if let Some(text) = &st.writing {
        lines.push(Line::raw(fit(&format!(" New status: {text}▏"), cols)).bold());
        lines.push(Line::raw(""));
    }
    if st.list.is_empty() {
        lines.push(Line::raw(" No stories in the last 24 hours. n: post one").italic());
    }
    let rows = (r.height.saturating_sub(2 + lines.len() as u16) as usize / 2).max(1);
    let top = st.sel.saturating_sub(rows - 1);
    for (i, s) in st.list.iter().enumerate().skip(top).take(rows) {
        let who = if s.mine {
            "you".to_string()
        } else {
            printable(&s.from).to_string()
        };
        let dot = if !s.mine && !s.viewed { "● " } else { "  " };
        let text = printable(&s.text).replace('\n', " ");
        let mut head = Line::raw(fit(
            &format!(" {dot}{who} · {} · {text}", when(s.posted_at)),
            cols,
        ));
        if i == st.sel {
            head = head.add_modifier(Modifier::REVERSED);
        }
        lines.push(head);
        let under = if !s.mine {
            String::new()
        } else if s.viewers.is_empty() {
            "    not seen yet".to_string()
        } else {
            let names: Vec<String> = s.viewers.iter().map(|v| printable(v).to_string()).collect();
            format!("    seen by {}: {}", names.len(), names.join(", "))
        };
        lines.push(Line::raw(fit(&under, cols)).fg(Color::DarkGray));
    }
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" Stories (24 h) ")
                .border_style(Style::new().fg(Color::Cyan)),
        ),
        r,
    );
}

/// A `call` event: the call line follows it.
pub fn call_event(app: &mut App, ev: &serde_json::Value) {
    let s = |k: &str| {
        ev.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let state = s("state");
    if let Some(note) = group_call_note(ev) {
        app.note(note);
        return;
    }
    let contact = call_title(ev);
    if state == "ended" {
        if app.call.as_ref().is_some_and(|r| r.call == s("call")) {
            app.call = None;
            let how = s("outcome").replace('_', " ");
            app.note(format!("Call with {contact} ended ({how})"));
        }
        return;
    }
    match &mut app.call {
        Some(r) if r.call == s("call") => r.state = state,
        // A call ringing here shows (over one going on, as before); one we started
        // elsewhere (`kith call`) shows when none does.
        None if s("direction") == "outgoing" => {
            app.call = Some(Ring {
                call: s("call"),
                contact,
                state,
                outgoing: true,
            });
        }
        _ if s("direction") == "incoming" => {
            app.call = Some(Ring {
                call: s("call"),
                contact,
                state,
                outgoing: false,
            });
        }
        _ => {}
    }
}
