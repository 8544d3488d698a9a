//! Adding a contact from the screen (`a` in the chat list): their code (typed or pasted),
//! then the name to file them under; Enter adds them (`kith contacts add CODE --name NAME`)
//! and the chat list reloads with them in it.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph};

use super::app::{App, Effect, Mode};
use super::view::fit;

/// The longest code or name taken.
pub const FIELD_MAX: usize = 4096;

/// The form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddContact {
    /// Their contact code.
    pub code: String,
    /// The name to file them under.
    pub name: String,
    /// Writing the name (else the code).
    pub on_name: bool,
}

impl AddContact {
    fn field(&mut self) -> &mut String {
        if self.on_name {
            &mut self.name
        } else {
            &mut self.code
        }
    }

    fn push(&mut self, s: &str) {
        let f = self.field();
        for c in s.chars().filter(|c| !c.is_control()) {
            if f.len() + c.len_utf8() > FIELD_MAX {
                break;
            }
            f.push(c);
        }
    }
}

/// `a` in the list: the form opens.
pub fn start(app: &mut App) {
    app.adding = Some(AddContact::default());
    app.mode = Mode::AddContact;
}

/// Keys of the form.
pub fn key(app: &mut App, k: KeyEvent, fx: &mut Vec<Effect>) {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    let Some(form) = &mut app.adding else {
        app.mode = Mode::List;
        return;
    };
    match k.code {
        KeyCode::Esc => {
            app.adding = None;
            app.mode = Mode::List;
        }
        KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => {
            form.on_name = !form.on_name
        }
        KeyCode::Backspace => {
            form.field().pop();
        }
        KeyCode::Char(c) if !ctrl => form.push(c.encode_utf8(&mut [0; 4])),
        KeyCode::Enter => {
            let (code, name) = (form.code.trim().to_string(), form.name.trim().to_string());
            if code.is_empty() || name.is_empty() {
                // Go to the field still empty.
                form.on_name = !code.is_empty();
                return;
            }
            fx.push(Effect::AddContact { code, name });
            app.adding = None;
            app.mode = Mode::List;
        }
        _ => {}
    }
}

/// Pasted text goes into the field being written (a code is usually pasted).
pub fn paste(app: &mut App, text: &str) {
    if let Some(form) = &mut app.adding {
        form.push(text.trim());
    }
}

/// The form over the screen.
pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let Some(form) = &app.adding else {
        return;
    };
    let (w, h) = (70.min(area.width), 6.min(area.height));
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let cols = r.width.saturating_sub(2) as usize;
    let row = |label: &str, v: &str, on: bool| {
        // Keep the end (where the cursor is) in view.
        let shown: String = {
            let n = v.chars().count();
            let room = cols.saturating_sub(label.len() + 3);
            v.chars().skip(n.saturating_sub(room)).collect()
        };
        let line = Line::raw(fit(
            &format!(" {label} {shown}{}", if on { "▏" } else { "" }),
            cols,
        ));
        if on { line.bold() } else { line }
    };
    let lines = vec![
        row("Code:", &form.code, !form.on_name),
        row("Name:", &form.name, form.on_name),
        Line::raw(""),
        Line::raw(fit(
            " their code (`kith id` shows it); Enter adds them",
            cols,
        ))
        .fg(Color::DarkGray),
    ];
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" Add a contact ")
                .border_style(Style::new().fg(Color::Cyan)),
        ),
        r,
    );
}
