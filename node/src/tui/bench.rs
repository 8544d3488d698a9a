//! Frame time of the full-screen chat with 10,000 chats and a 100,000-message conversation,
//! scrolling (issue 18's target: under 16 ms a frame). Ignored in regular runs; run it with
//!
//! ```text
//! cargo test -p kith --release --bin kith tui_frame_time -- --ignored --nocapture
//! ```
//!
//! It draws on ratatui's `TestBackend` (no terminal I/O: what it measures is the layout and
//! drawing the app does each frame) and prints p50, p95 and the worst frame.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use jiff::tz::TimeZone;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::app::*;
use super::view;

const CHATS: usize = 10_000;
const MESSAGES: usize = 100_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(what: &str, mut times: Vec<Duration>) -> Duration {
    times.sort();
    let (p50, p95, max) = (
        percentile(&times, 0.50),
        percentile(&times, 0.95),
        *times.last().unwrap(),
    );
    println!(
        "{what}: {} frames, p50 {:.3} ms, p95 {:.3} ms, max {:.3} ms",
        times.len(),
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    p95
}

fn big_app(now: u64) -> App {
    let mut app = App::new(now);
    let chats: Vec<ChatEntry> = (0..CHATS)
        .map(|i| ChatEntry {
            key: ChatKey::Contact(format!("contact {i:05}")),
            title: format!("contact {i:05}"),
            unread: i % 7,
            last: Some(Preview {
                id: format!("p{i}"),
                from: if i % 2 == 0 {
                    "me".into()
                } else {
                    format!("contact {i:05}")
                },
                text: format!("the last thing said in chat {i}, long enough to be cut at the edge"),
                at: now - (i as u64) * 60_000,
                status: (i % 2 == 0).then(|| "delivered".into()),
            }),
            presence: if i % 3 == 0 { "online" } else { "offline" }.into(),
            typing: (i % 50 == 0).then(|| ("typing".into(), u64::MAX)),
            muted: i % 11 == 0,
            archived: false,
            mentioned: i % 13 == 0,
        })
        .collect();
    app.update(Input::Chats(chats), now);
    app
}

#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn tui_frame_time() {
    let now = 1_765_000_000_000u64;
    let tz = TimeZone::UTC;
    let mut app = big_app(now);
    let mut term = Terminal::new(TestBackend::new(160, 48)).unwrap();
    let key = |c| Input::Key(KeyEvent::new(c, KeyModifiers::NONE));

    // The chat list: move down through all 10,000 chats, one frame per key.
    let mut times = Vec::new();
    for _ in 0..2_000 {
        app.update(key(KeyCode::PageDown), now);
        let t = Instant::now();
        term.draw(|f| view::draw(f, &mut app, &tz)).unwrap();
        times.push(t.elapsed());
    }
    let list_p95 = report("chat list, 10,000 chats, PgDn", times);

    // A 100,000-message conversation (replies, reactions, files, days), scrolled from the
    // newest to the oldest, a page per frame.
    let messages: Vec<Message> = (0..MESSAGES)
        .map(|i| Message {
            id: format!("{i:026}"),
            from: if i % 3 == 0 { "me".into() } else { "contact 00000".into() },
            text: format!("message number {i}: some words to wrap across the width of the pane, and a second sentence for good measure"),
            status: ["sent", "delivered", "read"][i % 3].into(),
            sent_at: now - ((MESSAGES - i) as u64) * 600_000,
            quote: (i % 10 == 0).then(|| "an earlier message being answered".into()),
            reactions: if i % 5 == 0 {
                vec![("me".into(), "👍".into()), ("contact 00000".into(), "❤️".into())]
            } else {
                Vec::new()
            },
            attachment: (i % 25 == 0).then(|| Attachment {
                name: "holiday.jpg".into(),
                size: 2_345_678,
                state: "ready".into(),
                percent: 100,
            }),
            ..Message::default()
        })
        .collect();
    app.list_sel = 0;
    app.update(key(KeyCode::Enter), now);
    let k = ChatKey::Contact("contact 00000".into());
    app.update(Input::History(k, messages, MESSAGES), now);
    let mut times = Vec::new();
    let mut frames = 0;
    while app.conv.as_ref().unwrap().scroll + 1 < MESSAGES && frames < 25_000 {
        app.update(key(KeyCode::PageUp), now);
        let t = Instant::now();
        term.draw(|f| view::draw(f, &mut app, &tz)).unwrap();
        times.push(t.elapsed());
        frames += 1;
    }
    let conv_p95 = report("conversation, 100,000 messages, PgUp to the top", times);
    assert!(list_p95 < Duration::from_millis(16), "list frames too slow");
    assert!(
        conv_p95 < Duration::from_millis(16),
        "conversation frames too slow"
    );
}
