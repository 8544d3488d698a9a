//! Keys: what each does in each [`Mode`], and the multi-line composer with its editing and
//! input history. The keys are listed for people in `KEYS` (the help screen and
//! docs/tui.md show the same list).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{App, Effect, Mode};
use super::{contacts, extras, screens, settings};

/// Lines kept in the input history.
pub const HISTORY_LINES: usize = 100;
/// The longest text the composer holds (the daemon's limit for a message).
pub const COMPOSER_MAX: usize = 49_152;

/// The quick reactions, by digit.
pub const REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

/// Every key, by where it works: (keys, what they do).
pub const KEYS: &[(&str, &[(&str, &str)])] = &[
    (
        "Everywhere",
        &[
            ("Ctrl+C, Ctrl+Q", "quit (the terminal is restored)"),
            ("F1", "this help (any key closes it)"),
            ("Ctrl+Y / Ctrl+X", "answer / decline a ringing call"),
            ("Ctrl+F", "search every chat"),
            ("Ctrl+T", "stories"),
            ("Ctrl+G", "call the open chat (a contact)"),
            ("Ctrl+X", "hang up (or decline a ringing call)"),
        ],
    ),
    (
        "Chat list",
        &[
            ("↑ ↓, k j", "choose a chat"),
            ("PgUp PgDn, Home End", "move faster"),
            ("Enter, →", "open the chat"),
            ("Tab", "back to the open chat"),
            ("/", "search every chat"),
            ("a", "add a contact (their code, then a name)"),
            ("?", "help"),
            ("q", "quit"),
        ],
    ),
    (
        "Conversation",
        &[
            ("Enter", "send"),
            ("Alt+Enter, Ctrl+J", "new line"),
            ("← → Home End", "move in the text (Ctrl+A, Ctrl+E too)"),
            (
                "↑ ↓",
                "move between lines; past the first or last: input history",
            ),
            (
                "Ctrl+W, Ctrl+U, Ctrl+K",
                "delete word / to line start / to line end",
            ),
            ("PgUp PgDn", "scroll the conversation"),
            ("Tab", "choose a message (to reply or react)"),
            ("Esc", "cancel the reply or edit, else back to the list"),
        ],
    ),
    (
        "Choosing a message",
        &[
            ("↑ ↓, k j", "choose"),
            ("r, Enter", "reply to it"),
            ("e, +", "react to it"),
            ("c", "change it (yours, within 15 minutes; Enter saves)"),
            ("s / p", "star / pin it (again: take it off)"),
            ("f", "forward it to another chat (↑ ↓ choose, Enter sends)"),
            ("d", "download its file (state and % show under it)"),
            (
                "x / X",
                "delete it for you / for everyone (yours, within 2 days)",
            ),
            ("Esc, Tab", "back to writing"),
        ],
    ),
    (
        "Search",
        &[
            (
                "letters, Backspace",
                "write the query (every word must match)",
            ),
            (
                "Enter",
                "search; again: open the chosen message in its chat",
            ),
            ("↑ ↓", "choose a hit"),
            ("Esc", "back"),
        ],
    ),
    (
        "Stories",
        &[
            ("↑ ↓", "choose"),
            ("Enter", "see a contact's stories (they learn you saw them)"),
            ("n", "write a text status (Enter posts it for 24 hours)"),
            ("Esc", "back"),
        ],
    ),
    (
        "Reacting",
        &[
            ("1 … 6", "👍 ❤️ 😂 😮 😢 🙏"),
            ("0", "take your reaction back"),
            ("Esc", "cancel"),
        ],
    ),
];

/// The text being written: a string with newlines and a cursor, and the lines sent before.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Composer {
    text: String,
    /// Byte offset of the cursor (always on a char boundary).
    cursor: usize,
    history: Vec<String>,
    /// While browsing the history: which entry (0 is the oldest) and the draft put aside.
    browsing: Option<(usize, String)>,
}

impl Composer {
    /// An empty composer that keeps `old`'s input history.
    pub fn with_history(old: Composer) -> Self {
        Self {
            history: old.history,
            ..Self::default()
        }
    }

    /// Replaces the text (the cursor goes to its end).
    pub fn set(&mut self, text: &str) {
        self.text.clear();
        self.cursor = 0;
        self.browsing = None;
        self.insert(text);
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The cursor's line and column (in chars) within the text.
    pub fn cursor_line_col(&self) -> (usize, usize) {
        let before = &self.text[..self.cursor];
        let line = before.matches('\n').count();
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, self.text[start..self.cursor].chars().count())
    }

    /// Takes the text out (to send it), remembering it in the history.
    pub fn take(&mut self) -> String {
        let text = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            if self.history.len() >= HISTORY_LINES {
                self.history.remove(0);
            }
            self.history.push(text.clone());
        }
        text
    }

    /// Puts text in at the cursor (up to [`COMPOSER_MAX`] bytes).
    pub fn insert(&mut self, s: &str) {
        let room = COMPOSER_MAX.saturating_sub(self.text.len());
        let mut end = s.len().min(room);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.text.insert_str(self.cursor, &s[..end]);
        self.cursor += end;
    }

    fn prev_boundary(&self, i: usize) -> usize {
        self.text[..i].char_indices().last().map_or(0, |(j, _)| j)
    }

    fn next_boundary(&self, i: usize) -> usize {
        self.text[i..]
            .chars()
            .next()
            .map_or(self.text.len(), |c| i + c.len_utf8())
    }

    fn line_start(&self) -> usize {
        self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1)
    }

    fn line_end(&self) -> usize {
        self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |i| self.cursor + i)
    }

    /// Deletes the char before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            let p = self.prev_boundary(self.cursor);
            self.text.replace_range(p..self.cursor, "");
            self.cursor = p;
        }
    }

    /// Deletes the char under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.text.len() {
            let n = self.next_boundary(self.cursor);
            self.text.replace_range(self.cursor..n, "");
        }
    }

    /// Deletes the word before the cursor.
    pub fn delete_word(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end_matches(' ');
        let start = trimmed.rfind([' ', '\n']).map_or(0, |i| i + 1);
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Moves the cursor up (`-1`) or down (`1`) a line, keeping the column; false at the
    /// first or last line.
    fn vertical(&mut self, dir: i32) -> bool {
        let (line, col) = self.cursor_line_col();
        let lines: Vec<&str> = self.text.split('\n').collect();
        let target = line as i64 + i64::from(dir);
        if target < 0 || target as usize >= lines.len() {
            return false;
        }
        let target = target as usize;
        let start: usize = lines[..target].iter().map(|l| l.len() + 1).sum();
        let l = lines[target];
        let off = l.char_indices().nth(col).map_or(l.len(), |(i, _)| i);
        self.cursor = start + off;
        true
    }

    /// Moves a line up or down; from the first or last line, through the input history.
    fn line_or_history(&mut self, dir: i32) {
        if !self.vertical(dir) {
            self.browse(dir);
        }
    }

    /// Shows an older (`-1`) or newer (`1`) entry of the input history.
    fn browse(&mut self, dir: i32) {
        let n = self.history.len();
        let next = match (&self.browsing, dir) {
            (None, d) if d < 0 && n > 0 => Some(n - 1),
            (Some((i, _)), d) if d < 0 => Some(i.saturating_sub(1)),
            (Some((i, _)), _) if i + 1 < n => Some(i + 1),
            (Some(_), _) => None,
            (None, _) => return,
        };
        match next {
            Some(i) => {
                let draft = match self.browsing.take() {
                    Some((_, d)) => d,
                    None => self.text.clone(),
                };
                self.text = self.history[i].clone();
                self.browsing = Some((i, draft));
            }
            None => {
                if let Some((_, draft)) = self.browsing.take() {
                    self.text = draft;
                }
            }
        }
        self.cursor = self.text.len();
    }

    /// One key of editing; returns whether the text changed.
    pub fn edit(&mut self, k: KeyEvent) -> bool {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        let (len, shown) = (self.text.len(), self.browsing.as_ref().map(|b| b.0));
        match k.code {
            KeyCode::Char('a') if ctrl => self.cursor = self.line_start(),
            KeyCode::Char('e') if ctrl => self.cursor = self.line_end(),
            KeyCode::Char('w') if ctrl => self.delete_word(),
            KeyCode::Char('u') if ctrl => {
                let s = self.line_start();
                self.text.replace_range(s..self.cursor, "");
                self.cursor = s;
            }
            KeyCode::Char('k') if ctrl => {
                let e = self.line_end();
                self.text.replace_range(self.cursor..e, "");
            }
            KeyCode::Char('j') if ctrl => self.insert("\n"),
            KeyCode::Char('p') if ctrl => self.browse(-1),
            KeyCode::Char('n') if ctrl => self.browse(1),
            KeyCode::Char(c) if !ctrl => {
                let mut b = [0; 4];
                self.insert(c.encode_utf8(&mut b));
            }
            KeyCode::Enter => self.insert("\n"),
            KeyCode::Backspace => self.backspace(),
            KeyCode::Delete => self.delete(),
            KeyCode::Left => self.cursor = self.prev_boundary(self.cursor),
            KeyCode::Right => self.cursor = self.next_boundary(self.cursor),
            KeyCode::Home => self.cursor = self.line_start(),
            KeyCode::End => self.cursor = self.line_end(),
            KeyCode::Up => self.line_or_history(-1),
            KeyCode::Down => self.line_or_history(1),
            _ => {}
        }
        self.text.len() != len || self.browsing.as_ref().map(|b| b.0) != shown
    }
}

fn ctrl(k: &KeyEvent, c: char) -> bool {
    k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char(c)
}

/// One key.
pub fn key(app: &mut App, k: KeyEvent, fx: &mut Vec<Effect>) {
    if k.kind == KeyEventKind::Release {
        return;
    }
    if ctrl(&k, 'c') || ctrl(&k, 'q') {
        app.quit = true;
        return;
    }
    if app.help {
        app.help = false;
        return;
    }
    if k.code == KeyCode::F(1) {
        app.help = true;
        return;
    }
    if let Some(r) = &app.call {
        if ctrl(&k, 'y') && !r.outgoing {
            fx.push(Effect::Answer(r.call.clone()));
            return;
        }
        if ctrl(&k, 'x') {
            extras::hang_up(app, fx);
            return;
        }
    }
    if ctrl(&k, 'g') {
        extras::dial(app, fx);
        return;
    }
    if ctrl(&k, 't') {
        extras::open_stories(app, fx);
        return;
    }
    if ctrl(&k, 'f') {
        screens::open_search(app);
        return;
    }
    match app.mode {
        Mode::Forward => screens::forward_key(app, k, fx),
        Mode::Search => screens::search_key(app, k, fx),
        Mode::Stories => extras::stories_key(app, k, fx),
        Mode::AddContact => contacts::key(app, k, fx),
        Mode::List => list_key(app, k, fx),
        Mode::Compose => compose_key(app, k, fx),
        Mode::Select => select_key(app, k, fx),
        Mode::React => react_key(app, k, fx),
        Mode::Timer => settings::timer_key(app, k, fx),
    }
}

fn list_key(app: &mut App, k: KeyEvent, fx: &mut Vec<Effect>) {
    let n = app.chats.len();
    let last = n.saturating_sub(1);
    match k.code {
        KeyCode::Up | KeyCode::Char('k') => app.list_sel = app.list_sel.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => app.list_sel = (app.list_sel + 1).min(last),
        KeyCode::PageUp => app.list_sel = app.list_sel.saturating_sub(10),
        KeyCode::PageDown => app.list_sel = (app.list_sel + 10).min(last),
        KeyCode::Home => app.list_sel = 0,
        KeyCode::End => app.list_sel = last,
        KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => app.open_selected(fx),
        KeyCode::Tab if app.conv.is_some() => app.mode = Mode::Compose,
        KeyCode::Char('?') => app.help = true,
        KeyCode::Char('/') => screens::open_search(app),
        KeyCode::Char('a') => contacts::start(app),
        KeyCode::Char('m') => settings::toggle_mute(app, fx),
        KeyCode::Char('z') => settings::toggle_archive(app, fx),
        KeyCode::Char('t') => settings::start_timer(app),
        KeyCode::Char('q') => app.quit = true,
        _ => {}
    }
}

fn compose_key(app: &mut App, k: KeyEvent, fx: &mut Vec<Effect>) {
    let alt = k
        .modifiers
        .intersects(KeyModifiers::ALT | KeyModifiers::SHIFT);
    match k.code {
        KeyCode::Enter if !alt => app.send(fx),
        KeyCode::Esc => {
            if app.editing.take().is_some() {
                app.composer.set("");
            } else if app.reply_to.take().is_none() {
                app.mode = Mode::List;
            }
        }
        KeyCode::Tab => {
            if let Some(c) = &mut app.conv
                && !c.messages.is_empty()
            {
                let last = c.messages.len() - 1;
                c.selected = Some(last.saturating_sub(c.scroll));
                app.mode = Mode::Select;
            }
        }
        KeyCode::PageUp => app.scroll_by(5, fx),
        KeyCode::PageDown => app.scroll_by(-5, fx),
        _ => {
            if app.composer.edit(k) {
                app.typed(fx);
            }
        }
    }
}

fn select_key(app: &mut App, k: KeyEvent, fx: &mut Vec<Effect>) {
    let Some(c) = &mut app.conv else {
        app.mode = Mode::List;
        return;
    };
    let last = c.messages.len().saturating_sub(1);
    let sel = c.selected.unwrap_or(last).min(last);
    match k.code {
        KeyCode::Up | KeyCode::Char('k') => {
            c.selected = Some(sel.saturating_sub(1));
        }
        KeyCode::Down | KeyCode::Char('j') => c.selected = Some((sel + 1).min(last)),
        KeyCode::Char('r') | KeyCode::Enter => {
            if let Some(m) = c.messages.get(sel).filter(|m| !m.event) {
                let quote: String = m.text.chars().take(60).collect();
                app.reply_to = Some((m.id.clone(), quote));
            }
            c.selected = None;
            app.mode = Mode::Compose;
        }
        KeyCode::Char('e') | KeyCode::Char('+')
            if c.messages.get(sel).is_some_and(|m| !m.event) =>
        {
            app.mode = Mode::React;
        }
        KeyCode::Char('c') => {
            match c.messages.get(sel) {
                Some(m) if m.from == "me" && !m.deleted && !m.event => {
                    app.editing = Some(m.id.clone());
                    app.reply_to = None;
                    app.composer.set(&m.text);
                    c.selected = None;
                    app.mode = Mode::Compose;
                }
                _ => app.note("only your own messages can be changed"),
            }
            return;
        }
        KeyCode::Char(k @ ('s' | 'p')) => {
            if let Some(m) = c.messages.get(sel).filter(|m| !m.event && !m.deleted) {
                let (mark, on) = if k == 's' {
                    ("star", !m.starred)
                } else {
                    ("pin", !m.pinned)
                };
                fx.push(Effect::Mark {
                    key: c.key.clone(),
                    id: m.id.clone(),
                    mark,
                    on,
                });
            }
            return;
        }
        KeyCode::Char('d') => {
            c.selected = Some(sel);
            extras::download(app, fx);
            return;
        }
        KeyCode::Char('f') => {
            if let Some(m) = c.messages.get(sel).filter(|m| !m.event && !m.deleted) {
                let id = m.id.clone();
                screens::start_forward(app, id);
            }
            return;
        }
        KeyCode::Char(x @ ('x' | 'X')) => {
            let everyone = x == 'X';
            match c.messages.get(sel) {
                Some(m) if !m.event && (!everyone || m.from == "me") => {
                    fx.push(Effect::Delete {
                        key: c.key.clone(),
                        id: m.id.clone(),
                        everyone,
                    });
                    c.selected = None;
                    app.mode = Mode::Compose;
                }
                _ => app.note("only your own messages can be deleted for everyone"),
            }
            return;
        }
        KeyCode::Esc | KeyCode::Tab => {
            c.selected = None;
            app.mode = Mode::Compose;
        }
        _ => {}
    }
    // Keep the chosen message in view: it is never below the bottom.
    if let Some(s) = c.selected {
        c.scroll = c.scroll.min(last - s.min(last));
    }
}

fn react_key(app: &mut App, k: KeyEvent, fx: &mut Vec<Effect>) {
    let emoji = match k.code {
        KeyCode::Char(d @ '1'..='6') => REACTIONS
            .get(d as usize - '1' as usize)
            .map(|e| e.to_string()),
        KeyCode::Char('0') => Some(String::new()),
        KeyCode::Esc => {
            app.mode = Mode::Select;
            return;
        }
        _ => return,
    };
    if let (Some(emoji), Some(c)) = (emoji, &mut app.conv)
        && let Some(m) = c.selected.and_then(|i| c.messages.get(i))
    {
        fx.push(Effect::React {
            key: c.key.clone(),
            id: m.id.clone(),
            emoji,
        });
        c.selected = None;
    }
    app.mode = Mode::Compose;
}

/// Pasted text goes into the composer as it is (newlines included).
pub fn paste(app: &mut App, text: &str, fx: &mut Vec<Effect>) {
    if app.mode == Mode::AddContact {
        contacts::paste(app, text);
        return;
    }
    if app.mode == Mode::Compose {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        app.composer.insert(&text);
        app.typed(fx);
    }
}
