//! Two screens over the chat: forwarding a message to another chat (a chat picker), and
//! search (a query, ranked hits with snippets, Enter opens the hit's chat with the message
//! chosen). Their state, keys and drawing; the app (`app.rs`) holds the state and hands them
//! the keys of [`Mode::Forward`] and [`Mode::Search`].

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use super::app::{App, ChatKey, Effect, HISTORY_MAX, Mode};
use super::view::fit;
use crate::safe::printable;

/// The longest query kept.
pub const QUERY_MAX: usize = 256;
/// Hits asked for.
pub const SEARCH_HITS: usize = 50;

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The message id.
    pub id: String,
    /// The contact's name, or `#` and the group's name.
    pub chat: String,
    /// "me" or the sender's name.
    pub from: String,
    /// When (ms).
    pub sent_at: u64,
    /// The best fragment, matches in `[` `]`.
    pub snippet: String,
}

/// The search screen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Search {
    /// What is typed.
    pub query: String,
    /// The query whose hits are shown.
    pub searched: Option<String>,
    /// Best first.
    pub hits: Vec<SearchHit>,
    /// The chosen hit.
    pub sel: usize,
}

/// Forwarding a message: which, and the chosen chat of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The message's id.
    pub id: String,
    /// The chosen line of the chat list.
    pub pick: usize,
}

/// Opens the search screen (the last query and its hits stay).
pub fn open_search(app: &mut App) {
    app.search_back = if app.mode == Mode::Search {
        app.search_back
    } else {
        app.mode
    };
    app.mode = Mode::Search;
}

/// Forwards the chosen message: the chat picker opens.
pub fn start_forward(app: &mut App, id: String) {
    app.forward = Some(Forward { id, pick: 0 });
    app.mode = Mode::Forward;
}

/// Keys of the chat picker.
pub fn forward_key(app: &mut App, k: KeyEvent, fx: &mut Vec<Effect>) {
    let last = app.chats.len().saturating_sub(1);
    let Some(fw) = &mut app.forward else {
        app.mode = Mode::Select;
        return;
    };
    match k.code {
        KeyCode::Up | KeyCode::Char('k') => fw.pick = fw.pick.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => fw.pick = (fw.pick + 1).min(last),
        KeyCode::PageUp => fw.pick = fw.pick.saturating_sub(10),
        KeyCode::PageDown => fw.pick = (fw.pick + 10).min(last),
        KeyCode::Enter => {
            let id = fw.id.clone();
            if let Some(chat) = app.chats.get(fw.pick) {
                fx.push(Effect::Forward {
                    id,
                    to: chat.key.clone(),
                });
                let title = chat.title.clone();
                app.note(format!("forwarding to {title}…"));
            }
            app.forward = None;
            if let Some(c) = &mut app.conv {
                c.selected = None;
            }
            app.mode = Mode::Compose;
        }
        KeyCode::Esc => {
            app.forward = None;
            app.mode = Mode::Select;
        }
        _ => {}
    }
}

/// Keys of the search screen: typing edits the query; Enter searches, or with the hits of
/// this query shown, opens the chosen one.
pub fn search_key(app: &mut App, k: KeyEvent, fx: &mut Vec<Effect>) {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    let s = &mut app.search;
    match k.code {
        KeyCode::Esc => app.mode = app.search_back,
        KeyCode::Up => s.sel = s.sel.saturating_sub(1),
        KeyCode::Down => s.sel = (s.sel + 1).min(s.hits.len().saturating_sub(1)),
        KeyCode::Backspace => {
            s.query.pop();
        }
        KeyCode::Char('u') if ctrl => s.query.clear(),
        KeyCode::Char(c)
            if !ctrl && !c.is_control() && s.query.len() + c.len_utf8() <= QUERY_MAX =>
        {
            s.query.push(c);
        }
        KeyCode::Enter => {
            let q = s.query.trim().to_string();
            if q.is_empty() {
                return;
            }
            if s.searched.as_deref() == Some(q.as_str()) && !s.hits.is_empty() {
                if let Some(hit) = s.hits.get(s.sel).cloned() {
                    jump(app, &hit, fx);
                }
            } else {
                fx.push(Effect::Search(q));
            }
        }
        _ => {}
    }
}

/// The hits of a query arrived.
pub fn found(app: &mut App, query: String, hits: Vec<SearchHit>) {
    if app.search.query.trim() != query {
        return; // typed on since: a later Enter asks again
    }
    if hits.is_empty() {
        app.note(format!("nothing found for {query}"));
    }
    app.search.hits = hits;
    app.search.sel = 0;
    app.search.searched = Some(query);
}

/// The chat a hit is in: a contact by name, a group (`#name`) by its name.
fn chat_of(app: &App, chat: &str) -> Option<usize> {
    app.chats
        .iter()
        .position(|c| match (&c.key, chat.strip_prefix('#')) {
            (ChatKey::Group(_), Some(name)) => c.title == name,
            (ChatKey::Contact(name), None) => name == chat,
            _ => false,
        })
}

/// Opens the hit's chat; when its history arrives the message is chosen ([`after_history`]).
fn jump(app: &mut App, hit: &SearchHit, fx: &mut Vec<Effect>) {
    let Some(pos) = chat_of(app, &hit.chat) else {
        app.note("that chat is gone");
        return;
    };
    app.list_sel = pos;
    app.open_selected(fx);
    app.jump = Some(hit.id.clone());
}

/// After a conversation's history arrived: a message searched for is chosen and brought into
/// view, or more history is asked for while it may be older (up to the most held).
pub fn after_history(app: &mut App, fx: &mut Vec<Effect>) {
    let (Some(id), Some(c)) = (app.jump.as_ref(), app.conv.as_mut()) else {
        return;
    };
    if let Some(pos) = c.messages.iter().position(|m| &m.id == id) {
        c.selected = Some(pos);
        c.scroll = c.messages.len() - 1 - pos;
        app.mode = Mode::Select;
        app.jump = None;
    } else if c.messages.len() >= c.limit && c.limit < HISTORY_MAX {
        c.limit = (c.limit * 4).min(HISTORY_MAX);
        fx.push(Effect::LoadHistory(c.key.clone(), c.limit));
    } else {
        app.jump = None;
        app.note("that message is no longer in the chat");
    }
}

/// A box in the middle of `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let (w, h) = (w.min(area.width), h.min(area.height));
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// The first line of the window of `n` rows that keeps `sel` in view.
fn window(sel: usize, rows: usize) -> usize {
    sel.saturating_sub(rows.saturating_sub(1))
}

/// The chat picker of a forward.
pub fn draw_forward(f: &mut Frame, app: &App, area: Rect) {
    let Some(fw) = &app.forward else {
        return;
    };
    let r = centered(area, 44, 16);
    let rows = r.height.saturating_sub(2) as usize;
    let w = r.width.saturating_sub(2) as usize;
    let top = window(fw.pick, rows);
    let lines: Vec<Line> = app
        .chats
        .iter()
        .enumerate()
        .skip(top)
        .take(rows)
        .map(|(i, c)| {
            let name = match c.key {
                ChatKey::Group(_) => format!("# {}", printable(&c.title)),
                ChatKey::Contact(_) => printable(&c.title).to_string(),
            };
            let line = Line::raw(fit(&format!(" {name}"), w));
            if i == fw.pick {
                line.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                line
            }
        })
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" Forward to ")
                .border_style(Style::new().fg(Color::Cyan)),
        ),
        r,
    );
}

/// A snippet with its `[` `]` matches in bold yellow (the brackets dropped).
fn snippet_spans(s: &str) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        out.push(Span::raw(rest[..open].to_string()));
        out.push(Span::raw(rest[open + 1..close].to_string()).yellow().bold());
        rest = &rest[close + 1..];
    }
    out.push(Span::raw(rest.to_string()));
    out
}

/// The search screen: the query, then per hit a line with the chat, who and when, and one
/// with the snippet.
pub fn draw_search(f: &mut Frame, app: &App, area: Rect, when: &dyn Fn(u64) -> String) {
    let s = &app.search;
    let r = centered(area, 90, area.height.saturating_sub(2));
    let w = r.width.saturating_sub(2) as usize;
    let mut lines = vec![
        Line::from(vec![
            Span::raw(" 🔍 "),
            Span::raw(printable(&s.query).to_string()).bold(),
            Span::raw("▏"),
        ]),
        Line::raw(""),
    ];
    if s.searched.is_some() && s.hits.is_empty() {
        lines.push(Line::raw(" nothing found").italic());
    }
    let rows = (r.height.saturating_sub(4) as usize / 2).max(1);
    for (i, h) in s
        .hits
        .iter()
        .enumerate()
        .skip(window(s.sel, rows))
        .take(rows)
    {
        let head = fit(
            &format!(
                " {} · {} · {}",
                printable(&h.chat),
                printable(&h.from),
                when(h.sent_at)
            ),
            w,
        );
        let mut head = Line::raw(head).fg(Color::Cyan);
        let snippet = fit(
            &format!("   {}", printable(&h.snippet).replace('\n', " ")),
            w,
        );
        let mut body = Line::from(snippet_spans(&snippet));
        if i == s.sel {
            head = head.add_modifier(Modifier::REVERSED);
            body = body.add_modifier(Modifier::BOLD);
        }
        lines.push(head);
        lines.push(body);
    }
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" Search (Enter: search, then open the chosen message) ")
                .border_style(Style::new().fg(Color::Cyan)),
        ),
        r,
    );
}
