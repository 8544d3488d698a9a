//! The full-screen chat: `kith` with no command on a terminal, or `kith chat` with no name.
//!
//! Data flow:
//!
//! - a thread reads the terminal (keys, paste, mouse wheel, resizes) and sends each as an
//!   [`Input`] on a bounded channel;
//! - a task holds a second API connection subscribed with `watch`, and sends each daemon
//!   event as an [`Input`];
//! - the loop draws the screen, waits for the next input (or a one-second tick, or SIGTERM,
//!   SIGHUP or SIGINT from outside: in raw mode Ctrl+C is a key), and gives it to
//!   [`App::update`], which returns [`Effect`]s;
//! - one task (`data::worker`) owns the API client and carries out the effects in order,
//!   answering with more inputs.
//!
//! The terminal is put back however the app ends: [`TerminalGuard`] restores it when
//! dropped (a normal quit, an error, the daemon stopping, a signal), and a panic hook
//! restores it before the panic message prints. Only SIGKILL cannot be caught; `reset`
//! repairs the terminal then.

pub mod app;
pub mod contacts;
pub mod data;
pub mod extras;
mod group_typing;
pub mod input;
pub mod screens;
pub mod settings;
pub mod view;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_extras;
#[cfg(test)]
mod tests_screens;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    MouseEventKind,
};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use kith_api::{Client, ClientError, SOCKET_NAME};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

pub use app::{App, Effect, Input};

/// Inputs waiting for the loop (keys, events, answers).
const INPUT_QUEUE: usize = 256;
/// Requests waiting for the worker; the app's own pace keeps it far below.
const EFFECT_QUEUE: usize = 64;

/// Whether this process can run the full-screen app (stdin and stdout are a terminal).
pub fn on_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Raw mode, the alternate screen and bracketed paste (and mouse reports when asked) while
/// it lives; the terminal as it was once dropped.
#[derive(Debug)]
pub struct TerminalGuard {
    mouse: bool,
}

impl TerminalGuard {
    /// Takes the terminal over.
    pub fn enter(mouse: bool) -> std::io::Result<Self> {
        enable_raw_mode()?;
        let guard = Self { mouse };
        let mut out = std::io::stdout();
        crossterm::execute!(out, EnterAlternateScreen, EnableBracketedPaste)?;
        if mouse {
            crossterm::execute!(out, EnableMouseCapture)?;
        }
        Ok(guard)
    }
}

/// Puts the terminal back (each step even if one before failed).
fn restore(mouse: bool) {
    let mut out = std::io::stdout();
    if mouse {
        let _ = crossterm::execute!(out, DisableMouseCapture);
    }
    let _ = crossterm::execute!(
        out,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
    let _ = out.flush();
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore(self.mouse);
    }
}

/// Restores the terminal before a panic's message is printed (then the usual hook runs).
fn install_panic_hook(mouse: bool) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore(mouse);
        previous(info);
    }));
}

/// Reads the terminal on its own thread until the app stops listening.
fn spawn_terminal_reader(tx: mpsc::Sender<Input>) {
    std::thread::spawn(move || {
        while !tx.is_closed() {
            match crossterm::event::poll(Duration::from_millis(200)) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(_) => return,
            }
            let input = match crossterm::event::read() {
                Ok(Event::Key(k)) => Input::Key(k),
                Ok(Event::Paste(s)) => Input::Paste(s),
                Ok(Event::Resize(..)) => Input::Resize,
                Ok(Event::Mouse(m)) => match m.kind {
                    MouseEventKind::ScrollUp => Input::Wheel(3),
                    MouseEventKind::ScrollDown => Input::Wheel(-3),
                    _ => continue,
                },
                Ok(_) => continue,
                Err(_) => return,
            };
            if tx.blocking_send(input).is_err() {
                return;
            }
        }
    });
}

/// Forwards daemon events until the daemon goes away.
fn spawn_events(mut events: Client, tx: mpsc::Sender<Input>) {
    tokio::spawn(async move {
        loop {
            match events.next_event().await {
                Ok(Some(ev)) => {
                    if tx.send(Input::Event(ev)).await.is_err() {
                        return;
                    }
                }
                Ok(None) | Err(_) => {
                    let _ = tx.send(Input::Gone).await;
                    return;
                }
            }
        }
    });
}

/// Runs the full-screen app on this terminal until the user quits.
pub async fn run(dir: &Path, c: Client, mouse: bool) -> Result<(), ClientError> {
    let mut events = Client::connect(&dir.join(SOCKET_NAME)).await?;
    events.watch().await?;
    let mut term_sig = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);

    install_panic_hook(mouse);
    let guard = TerminalGuard::enter(mouse)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;

    let (in_tx, mut in_rx) = mpsc::channel(INPUT_QUEUE);
    let (fx_tx, fx_rx) = mpsc::channel(EFFECT_QUEUE);
    spawn_terminal_reader(in_tx.clone());
    spawn_events(events, in_tx.clone());
    tokio::spawn(data::worker(c, fx_rx, in_tx));

    let mut app = App::new(now_ms());
    let _ = fx_tx.try_send(Effect::LoadMe);
    let _ = fx_tx.try_send(Effect::LoadChats);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        if let Err(e) = terminal.draw(|f| view::draw(f, &mut app, &tz)) {
            break Err(ClientError::Io(e));
        }
        let input = tokio::select! {
            i = in_rx.recv() => match i {
                Some(i) => i,
                None => break Ok(()),
            },
            _ = tick.tick() => Input::Tick,
            _ = term_sig.recv() => break Ok(()),
            _ = hup.recv() => break Ok(()),
            _ = tokio::signal::ctrl_c() => break Ok(()),
        };
        if let Input::Gone = input {
            break Err(ClientError::NotRunning);
        }
        for fx in app.update(input, now_ms()) {
            if fx_tx.try_send(fx).is_err() {
                app.note("busy: the daemon is slow to answer");
            }
        }
        if app.quit {
            break Ok(());
        }
    };
    drop(terminal);
    drop(guard);
    result
}
