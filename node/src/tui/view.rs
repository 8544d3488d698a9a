//! Drawing: the chat list, the conversation, the composer, the call banner, the bar with the
//! keys and the help screen, from the [`App`] state alone.
//!
//! Only what is on screen is laid out: the list draws the chats in view, and the
//! conversation walks up from the bottom message until the pane is full, so a frame costs
//! the same with ten messages or a hundred thousand (`tui_bench` measures it). Every text a
//! peer wrote goes through [`printable`] (newlines split lines first), so it cannot reach
//! the terminal as a control sequence.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::app::{App, ChatEntry, ChatKey, Conversation, Message, Mode};
use super::input::{KEYS, REACTIONS};
use crate::safe::printable;

/// Below this width one pane shows at a time.
pub const TWO_PANES: u16 = 72;
/// The chat list's width beside a conversation.
const LIST_WIDTH: u16 = 30;
/// The most lines the composer grows to.
const COMPOSER_LINES: usize = 6;

/// Draws the whole screen. It takes the state mutably only to keep the list's first line
/// (so the chosen chat stays in view).
pub fn draw(f: &mut Frame, app: &mut App, tz: &TimeZone) {
    let area = f.area();
    let banner = u16::from(app.call.is_some());
    let [top, main, bar] = Layout::vertical([
        Constraint::Length(banner),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    if let Some(r) = &app.call {
        let text = if r.outgoing {
            format!(
                " 📞 Calling {}: {} · Ctrl+X hang up",
                printable(&r.contact),
                r.state
            )
        } else if r.state == "ringing" {
            format!(
                " 📞 {} is calling: Ctrl+Y answer · Ctrl+X decline",
                printable(&r.contact)
            )
        } else {
            format!(
                " 📞 Call with {}: {} · Ctrl+X hang up",
                printable(&r.contact),
                r.state
            )
        };
        f.render_widget(
            Paragraph::new(text).style(Style::new().bg(Color::Red).fg(Color::White).bold()),
            top,
        );
    }
    let conv_shown = app.conv.is_some() && app.mode != Mode::List;
    if area.width >= TWO_PANES {
        let [l, r] =
            Layout::horizontal([Constraint::Length(LIST_WIDTH), Constraint::Min(1)]).areas(main);
        draw_list(f, app, l, tz, true);
        draw_conversation(f, app, r, tz);
    } else if conv_shown {
        draw_conversation(f, app, main, tz);
    } else {
        draw_list(f, app, main, tz, false);
    }
    draw_bar(f, app, bar);
    match app.mode {
        Mode::Forward => super::screens::draw_forward(f, app, main),
        Mode::Search => {
            let now = app.now;
            super::screens::draw_search(f, app, main, &|ms| when(ms, now, tz));
        }
        Mode::AddContact => super::contacts::draw(f, app, main),
        Mode::Stories => {
            let now = app.now;
            super::extras::draw_stories(f, app, main, &|ms| when(ms, now, tz));
        }
        _ => {}
    }
    if app.help {
        draw_help(f, area);
    }
}

/// `s` cut to `w` columns, with `…` when cut.
pub fn fit(s: &str, w: usize) -> String {
    if s.width() <= w {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if used + cw + 1 > w {
            break;
        }
        used += cw;
        out.push(c);
    }
    if w > 0 {
        out.push('…');
    }
    out
}

/// `s` (one line, no newlines) wrapped to `w` columns, at spaces where it can.
pub fn wrap(s: &str, w: usize) -> Vec<String> {
    let w = w.max(1);
    let mut out = Vec::new();
    let mut line = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if used + cw > w && !line.is_empty() {
            match line.rfind(' ').filter(|&i| i > 0) {
                Some(i) => {
                    let rest = line[i + 1..].to_string();
                    line.truncate(i);
                    out.push(std::mem::replace(&mut line, rest));
                    used = line.width();
                }
                None => {
                    out.push(std::mem::take(&mut line));
                    used = 0;
                }
            }
        }
        line.push(c);
        used += cw;
    }
    out.push(line);
    out
}

fn zoned(ms: u64, tz: &TimeZone) -> Option<jiff::Zoned> {
    let ms = i64::try_from(ms).ok()?;
    Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_zoned(tz.clone()))
}

fn hm(ms: u64, tz: &TimeZone) -> String {
    zoned(ms, tz).map_or_else(String::new, |z| z.strftime("%H:%M").to_string())
}

fn day(ms: u64, tz: &TimeZone) -> Option<jiff::civil::Date> {
    zoned(ms, tz).map(|z| z.date())
}

/// The time of a chat's last message: the hour today, else the day.
fn when(ms: u64, now: u64, tz: &TimeZone) -> String {
    match (zoned(ms, tz), day(now, tz)) {
        (Some(z), Some(today)) if z.date() == today => z.strftime("%H:%M").to_string(),
        (Some(z), _) => z.strftime("%-d %b").to_string(),
        _ => String::new(),
    }
}

/// ✓ sent, ✓✓ delivered, blue ✓✓ read, a clock while pending.
pub fn tick(status: &str) -> Span<'static> {
    match status {
        "pending" => Span::styled("◷", Style::new().fg(Color::DarkGray)),
        "sent" => Span::styled("✓", Style::new().fg(Color::Gray)),
        "delivered" => Span::styled("✓✓", Style::new().fg(Color::Gray)),
        "read" => Span::styled("✓✓", Style::new().fg(Color::LightBlue).bold()),
        _ => Span::raw(""),
    }
}

fn presence_of<'a>(app: &'a App, key: &ChatKey) -> Option<&'a ChatEntry> {
    app.chats.iter().find(|c| &c.key == key)
}

fn draw_list(f: &mut Frame, app: &mut App, area: Rect, tz: &TimeZone, beside: bool) {
    let block = if beside {
        Block::new().borders(Borders::RIGHT)
    } else {
        Block::new()
    };
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height < 2 || inner.width < 4 {
        return;
    }
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
    let unread: usize = app.chats.iter().filter(|c| c.unread > 0).count();
    let title = if unread > 0 {
        format!(" Chats ({unread} unread)")
    } else {
        " Chats".to_string()
    };
    f.render_widget(Paragraph::new(title).bold(), head);
    if app.chats.is_empty() {
        let text = if app.loaded {
            " No chats yet. Add a contact:\n kith contacts add CODE NAME"
        } else {
            " Loading…"
        };
        f.render_widget(Paragraph::new(text).dim(), body);
        return;
    }
    let per = 2usize;
    let shown = (body.height as usize / per).max(1);
    app.list_sel = app.list_sel.min(app.chats.len() - 1);
    if app.list_sel < app.list_top {
        app.list_top = app.list_sel;
    } else if app.list_sel >= app.list_top + shown {
        app.list_top = app.list_sel + 1 - shown;
    }
    let w = body.width as usize;
    let focused = app.mode == Mode::List;
    let mut lines = Vec::with_capacity(shown * per);
    for (i, c) in app.chats.iter().enumerate().skip(app.list_top).take(shown) {
        let chosen = i == app.list_sel;
        let (dot, dot_style) = match c.presence.as_str() {
            "online" => ("●", Style::new().fg(Color::Green)),
            "offline" => ("○", Style::new().fg(Color::DarkGray)),
            _ => (" ", Style::new()),
        };
        let name = match c.key {
            ChatKey::Group(_) => format!("# {}", printable(&c.title)),
            ChatKey::Contact(_) => printable(&c.title).into_owned(),
        };
        let name = if c.archived {
            format!("{name} (archived)")
        } else {
            name
        };
        let time = c
            .last
            .as_ref()
            .map_or(String::new(), |p| when(p.at, app.now, tz));
        let name_w = w.saturating_sub(3 + time.width());
        let name = fit(&name, name_w);
        let pad = w.saturating_sub(2 + name.width() + time.width() + 1);
        let mut name_style = Style::new();
        if c.unread > 0 {
            name_style = name_style.bold();
        }
        let mut l1 = Line::from(vec![
            Span::styled(dot, dot_style),
            Span::raw(" "),
            Span::styled(name, name_style),
            Span::raw(" ".repeat(pad)),
            Span::raw(time).dim(),
        ]);
        let badge = match (c.unread, c.muted) {
            (0, _) => String::new(),
            (n, false) => format!(" {n} "),
            (n, true) => format!(" {n}🔇"),
        };
        let at = if c.mentioned && c.unread > 0 { "@" } else { "" };
        let mut spans = vec![Span::raw("  ")];
        let room = w.saturating_sub(3 + badge.width() + at.width());
        if let Some((state, _)) = &c.typing {
            spans.push(Span::styled(
                fit(&format!("{}…", printable(state)), room),
                Style::new().fg(Color::Green).italic(),
            ));
        } else if let Some(p) = &c.last {
            let mut used = 0;
            if let Some(st) = &p.status {
                let t = tick(st);
                used += t.content.width() + 1;
                spans.push(t);
                spans.push(Span::raw(" "));
            }
            let who = match (&c.key, p.from.as_str()) {
                (_, "me") => "you: ".to_string(),
                (ChatKey::Group(_), from) => format!("{}: ", printable(from)),
                _ => String::new(),
            };
            let text = first_line(&p.text);
            spans.push(Span::raw(fit(&format!("{who}{text}"), room.saturating_sub(used))).dim());
        }
        let used: usize = spans.iter().map(|s| s.content.width()).sum();
        spans.push(Span::raw(
            " ".repeat(w.saturating_sub(used + badge.width() + at.width())),
        ));
        spans.push(Span::styled(at, Style::new().fg(Color::Yellow).bold()));
        spans.push(Span::styled(
            badge,
            Style::new().bg(Color::Green).fg(Color::Black).bold(),
        ));
        let mut l2 = Line::from(spans);
        if chosen {
            let st = if focused {
                Style::new().add_modifier(Modifier::REVERSED)
            } else {
                Style::new().bg(Color::DarkGray)
            };
            l1 = l1.patch_style(st);
            l2 = l2.patch_style(st);
        }
        lines.push(l1);
        lines.push(l2);
    }
    f.render_widget(Paragraph::new(lines), body);
}

/// The first line of a text, made printable.
fn first_line(s: &str) -> String {
    let first = s.split('\n').next().unwrap_or("");
    let more = if s.contains('\n') { " …" } else { "" };
    format!("{}{more}", printable(first))
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// The lines of one message, `w` columns wide.
pub fn message_lines(
    m: &Message,
    selected: bool,
    me: Option<&str>,
    tz: &TimeZone,
    w: usize,
) -> Vec<Line<'static>> {
    let text_w = w.saturating_sub(2).max(1);
    let mut out = Vec::new();
    if m.event {
        let t = fit(&format!("— {} —", first_line(&m.text)), w);
        out.push(Line::from(Span::raw(t).dim().italic()).centered());
        return out;
    }
    let mine = m.from == "me";
    let who = if mine {
        Span::styled("you", Style::new().fg(Color::Cyan).bold())
    } else {
        Span::styled(
            fit(&printable(&m.from), w / 2),
            Style::new().fg(Color::Magenta).bold(),
        )
    };
    let mut head = vec![Span::raw(hm(m.sent_at, tz)).dim(), Span::raw(" "), who];
    if mine {
        head.push(Span::raw(" "));
        head.push(tick(&m.status));
    }
    if m.forwarded {
        head.push(Span::raw(" ↷ forwarded").dim().italic());
    }
    if m.edited && !m.deleted {
        head.push(Span::raw(" (edited)").dim());
    }
    if m.starred {
        head.push(Span::raw(" ★").fg(Color::Yellow));
    }
    if m.pinned {
        head.push(Span::raw(" 📌"));
    }
    let mut head = Line::from(head);
    if selected {
        head = head.patch_style(Style::new().add_modifier(Modifier::REVERSED));
    }
    out.push(head);
    if let Some(q) = &m.quote {
        out.push(Line::from(vec![
            Span::styled("  ┃ ", Style::new().fg(Color::Cyan)),
            Span::raw(fit(&first_line(q), text_w.saturating_sub(2)))
                .dim()
                .italic(),
        ]));
    }
    if m.deleted {
        out.push(Line::from(
            Span::raw("  🚫 this message was deleted").dim().italic(),
        ));
    } else if !m.text.is_empty() {
        for para in m.text.split('\n') {
            for l in wrap(&printable(para), text_w) {
                let mut spans = vec![Span::raw("  ")];
                spans.extend(with_mentions(&l, me));
                out.push(Line::from(spans));
            }
        }
    }
    if let Some(a) = &m.attachment {
        let state = match a.state.as_str() {
            "downloading" => format!("downloading {}%", a.percent),
            s => s.to_string(),
        };
        let t = format!(
            "📎 {} · {} · {state}",
            printable(&a.name),
            human_size(a.size)
        );
        out.push(Line::from(vec![
            Span::raw("  "),
            Span::styled(fit(&t, text_w), Style::new().fg(Color::Yellow)),
        ]));
    }
    if !m.reactions.is_empty() {
        let mut spans = vec![Span::raw("  ")];
        let mut used = 2;
        for (who, emoji) in &m.reactions {
            let who = if who == "me" {
                "you".into()
            } else {
                printable(who)
            };
            let t = format!("{} {who}", printable(emoji));
            if used + t.width() + 2 > w {
                break;
            }
            used += t.width() + 2;
            spans.push(Span::styled(t, Style::new().bg(Color::DarkGray)));
            spans.push(Span::raw(" "));
        }
        out.push(Line::from(spans));
    }
    out
}

/// A line of text with each `@name` in yellow, and `@you` on yellow.
fn with_mentions(line: &str, me: Option<&str>) -> Vec<Span<'static>> {
    if !line.contains('@') {
        return vec![Span::raw(line.to_string())];
    }
    let mut spans = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find('@') {
        let after = &rest[i + 1..];
        let word_len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(after.len());
        let in_word = rest[..i]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric);
        if word_len == 0 || in_word {
            spans.push(Span::raw(rest[..=i].to_string()));
            rest = after;
            continue;
        }
        spans.push(Span::raw(rest[..i].to_string()));
        let word = &rest[i..i + 1 + word_len];
        let style = if me.is_some_and(|me| super::app::mentions(word, me)) {
            Style::new().bg(Color::Yellow).fg(Color::Black).bold()
        } else {
            Style::new().fg(Color::Yellow).bold()
        };
        spans.push(Span::styled(word.to_string(), style));
        rest = &after[word_len..];
    }
    spans.push(Span::raw(rest.to_string()));
    spans
}

fn day_line(ms: u64, tz: &TimeZone, w: usize) -> Line<'static> {
    let label =
        zoned(ms, tz).map_or_else(String::new, |z| format!(" {} ", z.strftime("%A %-d %B %Y")));
    let side = w.saturating_sub(label.width()) / 2;
    Line::from(format!("{}{label}{}", "─".repeat(side), "─".repeat(side))).dim()
}

/// The lines that fill `h` rows above the bottom of the conversation, newest last.
pub fn visible_lines(
    c: &Conversation,
    me: Option<&str>,
    tz: &TimeZone,
    w: usize,
    h: usize,
) -> Vec<Line<'static>> {
    let Some(bottom) = c.messages.len().checked_sub(1 + c.scroll) else {
        return Vec::new();
    };
    let mut blocks: Vec<Vec<Line<'static>>> = Vec::new();
    let mut used = 0;
    let mut i = bottom as isize;
    while i >= 0 && used < h {
        let idx = i as usize;
        let m = &c.messages[idx];
        let mut lines = message_lines(m, c.selected == Some(idx), me, tz, w);
        let d = day(m.sent_at, tz);
        let new_day = idx == 0 || day(c.messages[idx - 1].sent_at, tz) != d;
        if new_day {
            lines.insert(0, day_line(m.sent_at, tz, w));
        }
        used += lines.len();
        blocks.push(lines);
        i -= 1;
    }
    let mut out: Vec<Line<'static>> = blocks.into_iter().rev().flatten().collect();
    if out.len() > h {
        out.drain(..out.len() - h);
    }
    out
}

fn draw_conversation(f: &mut Frame, app: &App, area: Rect, tz: &TimeZone) {
    let Some(c) = &app.conv else {
        f.render_widget(
            Paragraph::new("\n  Choose a chat and press Enter.").dim(),
            area,
        );
        return;
    };
    let w = area.width as usize;
    let composer_lines = app
        .composer
        .text()
        .split('\n')
        .count()
        .clamp(1, COMPOSER_LINES);
    let reply = u16::from(app.reply_to.is_some() || app.editing.is_some());
    let picker = u16::from(app.mode == Mode::React);
    let [head, body, reply_area, picker_area, comp] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(reply),
        Constraint::Length(picker),
        Constraint::Length(composer_lines as u16 + 1),
    ])
    .areas(area);
    // Header: the name, then typing, presence or members.
    let entry = presence_of(app, &c.key);
    let status = match entry {
        Some(e) if e.typing.is_some() => e
            .typing
            .as_ref()
            .map(|(s, _)| {
                Span::styled(
                    format!("{}…", printable(s)),
                    Style::new().fg(Color::Green).italic(),
                )
            })
            .unwrap_or_default(),
        Some(e) => Span::raw(e.presence.clone()).dim(),
        None => Span::raw(""),
    };
    let name = match c.key {
        ChatKey::Group(_) => format!(" # {}", printable(&c.title)),
        ChatKey::Contact(_) => format!(" {}", printable(&c.title)),
    };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::raw(fit(&name, w / 2)).bold(),
            Span::raw(" · ").dim(),
            status,
        ]))
        .style(Style::new().bg(Color::Indexed(236))),
        head,
    );
    // Messages, bottom up.
    let me = app.me.as_deref();
    let h = body.height as usize;
    let mut lines = if c.scroll > 0 {
        let mut l = visible_lines(c, me, tz, w.saturating_sub(1), h.saturating_sub(1));
        l.push(Line::from(format!("   ↓ {} newer (PgDn)", c.scroll)).yellow());
        l
    } else {
        visible_lines(c, me, tz, w.saturating_sub(1), h)
    };
    lines.truncate(h);
    let pad = (body.height as usize).saturating_sub(lines.len());
    let mut all = vec![Line::raw(""); pad];
    all.extend(lines);
    if c.messages.is_empty() {
        all = vec![Line::from("  No messages yet: say hello.").dim()];
    }
    f.render_widget(Paragraph::new(all), body);
    if app.editing.is_some() {
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(" ✎ changing your message", Style::new().fg(Color::Cyan)),
                Span::raw("  (Enter saves, Esc cancels)").dim(),
            ])),
            reply_area,
        );
    } else if let Some((_, quote)) = &app.reply_to {
        let t = fit(
            &format!(" ↪ replying to: {}", first_line(quote)),
            w.saturating_sub(14),
        );
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(t, Style::new().fg(Color::Cyan)),
                Span::raw("  (Esc cancels)").dim(),
            ])),
            reply_area,
        );
    }
    if picker > 0 {
        let mut spans = vec![Span::raw(" React: ")];
        for (i, e) in REACTIONS.iter().enumerate() {
            spans.push(Span::raw(format!("{} {e}  ", i + 1)));
        }
        spans.push(Span::raw("0 remove").dim());
        f.render_widget(Paragraph::new(Line::from(spans)).yellow(), picker_area);
    }
    draw_composer(f, app, comp);
}

fn draw_composer(f: &mut Frame, app: &App, area: Rect) {
    let focused = app.mode == Mode::Compose;
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(if focused {
            Style::new().fg(Color::Cyan)
        } else {
            Style::new().dim()
        })
        .title(" Message ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height == 0 || inner.width < 4 {
        return;
    }
    let (line, col) = app.composer.cursor_line_col();
    let all: Vec<&str> = app.composer.text().split('\n').collect();
    let h = inner.height as usize;
    let first = (line + 1).saturating_sub(h);
    let w = inner.width as usize;
    let lines: Vec<Line> = all
        .iter()
        .skip(first)
        .take(h)
        .enumerate()
        .map(|(i, l)| {
            let prefix = if i + first == 0 { "> " } else { "  " };
            // Scroll a long line sideways so the cursor stays in view.
            let cur = if i + first == line {
                l.chars().take(col).collect::<String>().width()
            } else {
                0
            };
            let skip = (cur + 3).saturating_sub(w);
            let shown: String = l
                .chars()
                .scan(0, |acc, c| {
                    *acc += c.width().unwrap_or(0);
                    Some((*acc, c))
                })
                .filter(|(acc, _)| *acc > skip)
                .map(|(_, c)| if c.is_control() { '?' } else { c })
                .collect();
            Line::from(format!("{prefix}{shown}"))
        })
        .collect();
    f.render_widget(Paragraph::new(lines), inner);
    if focused {
        let cur_line = all.get(line).copied().unwrap_or("");
        let cur: usize = cur_line.chars().take(col).collect::<String>().width();
        let skip = (cur + 3).saturating_sub(w);
        let x = inner.x + (2 + cur - skip).min(w.saturating_sub(1)) as u16;
        let y = inner.y + (line - first) as u16;
        f.set_cursor_position(Position::new(x, y));
    }
}

fn key_hints(pairs: &[(&str, &str)]) -> Line<'static> {
    let mut spans = Vec::new();
    for (k, what) in pairs {
        spans.push(Span::styled(
            format!(" {k} "),
            Style::new().add_modifier(Modifier::REVERSED),
        ));
        spans.push(Span::raw(format!(" {what} ")));
    }
    Line::from(spans)
}

fn draw_bar(f: &mut Frame, app: &App, area: Rect) {
    if let Some((text, _)) = &app.notice {
        f.render_widget(
            Paragraph::new(format!(" {}", printable(text)))
                .yellow()
                .bold(),
            area,
        );
        return;
    }
    let line = match app.mode {
        Mode::List => key_hints(&[
            ("↑↓", "choose"),
            ("Enter", "open"),
            ("/", "search"),
            ("a", "add contact"),
            ("m/z/t", "mute/archive/timer"),
            ("^T", "stories"),
            ("^G", "call"),
            ("F1", "help"),
            ("q", "quit"),
        ]),
        Mode::Compose => key_hints(&[
            ("Enter", "send"),
            ("Alt+Enter", "new line"),
            ("Tab", "choose msg"),
            ("PgUp", "scroll"),
            ("Esc", "list"),
            ("F1", "help"),
        ]),
        Mode::Select => key_hints(&[
            ("↑↓", "choose"),
            ("r", "reply"),
            ("e", "react"),
            ("c", "change"),
            ("f", "forward"),
            ("d", "download"),
            ("s/p", "star/pin"),
            ("x/X", "delete"),
            ("Esc", "back"),
        ]),
        Mode::Forward => key_hints(&[
            ("↑↓", "choose chat"),
            ("Enter", "forward"),
            ("Esc", "cancel"),
        ]),
        Mode::AddContact => {
            key_hints(&[("Tab", "code / name"), ("Enter", "add"), ("Esc", "cancel")])
        }
        Mode::Stories if app.stories.writing.is_some() => {
            key_hints(&[("Enter", "post"), ("Esc", "cancel")])
        }
        Mode::Stories => key_hints(&[
            ("↑↓", "choose"),
            ("Enter", "see"),
            ("n", "new status"),
            ("Esc", "back"),
        ]),
        Mode::Search => key_hints(&[
            ("Enter", "search / open"),
            ("↑↓", "choose"),
            ("Esc", "back"),
        ]),
        Mode::React => key_hints(&[("1-6", "react"), ("0", "remove"), ("Esc", "cancel")]),
        Mode::Timer => Line::from(super::settings::timer_hint()),
    };
    f.render_widget(Paragraph::new(line), area);
}

fn draw_help(f: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    for (section, keys) in KEYS {
        lines.push(Line::from(Span::raw(*section).bold().underlined()));
        for (k, what) in *keys {
            lines.push(Line::from(vec![
                Span::styled(format!("  {k:<24}"), Style::new().fg(Color::Cyan)),
                Span::raw(*what),
            ]));
        }
        lines.push(Line::raw(""));
    }
    let h = (lines.len() as u16 + 2).min(area.height);
    let w = 78.min(area.width);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" Keys (any key closes) ")
                .border_style(Style::new().fg(Color::Cyan)),
        ),
        r,
    );
}
