//! Headless tests of the forward picker and the search screen (`screens.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crossterm::event::KeyCode;
use ratatui::style::Color;

use super::app::*;
use super::screens::SearchHit;
use super::tests::{T0, app_with_chats, conversation, ctrl, key, msg, open, render, screen};

fn typed(app: &mut App, text: &str) -> Vec<Effect> {
    let mut fx = Vec::new();
    for c in text.chars() {
        fx.extend(app.update(key(KeyCode::Char(c)), app.now));
    }
    fx
}

fn hit(id: &str, chat: &str, from: &str, snippet: &str) -> SearchHit {
    SearchHit {
        id: id.into(),
        chat: chat.into(),
        from: from.into(),
        sent_at: T0,
        snippet: snippet.into(),
    }
}

#[test]
fn forwarding_a_chosen_message_to_another_chat() {
    let mut app = app_with_chats();
    open(&mut app, conversation());
    app.update(key(KeyCode::Tab), app.now);
    assert_eq!(app.mode, Mode::Select);
    let s = screen(&render(&mut app, 100, 30));
    assert!(s.contains("forward"), "the bar names f: {s}");
    // f opens the chat picker over the conversation.
    assert!(app.update(key(KeyCode::Char('f')), app.now).is_empty());
    assert_eq!(app.mode, Mode::Forward);
    let s = screen(&render(&mut app, 100, 30));
    assert!(s.contains("Forward to"), "{s}");
    assert!(s.contains("# Friends") && s.contains("Dave"), "{s}");
    assert!(s.contains("choose chat"), "the bar: {s}");
    // Esc goes back to choosing, nothing sent.
    assert!(app.update(key(KeyCode::Esc), app.now).is_empty());
    assert_eq!(app.mode, Mode::Select);
    // Down twice (Bob, Friends, Dave) and Enter: the last message goes to Dave.
    app.update(key(KeyCode::Char('f')), app.now);
    app.update(key(KeyCode::Down), app.now);
    app.update(key(KeyCode::Down), app.now);
    let fx = app.update(key(KeyCode::Enter), app.now);
    assert_eq!(
        fx,
        vec![Effect::Forward {
            id: "m7".into(),
            to: ChatKey::Contact("Dave".into())
        }]
    );
    assert_eq!(app.mode, Mode::Compose);
    assert!(app.forward.is_none());
    // Done: a notice; forwarding into the open chat reloads it.
    assert!(
        app.update(Input::Forwarded(ChatKey::Contact("Dave".into())), app.now)
            .is_empty()
    );
    let s = screen(&render(&mut app, 100, 30));
    assert!(s.contains("forwarded to Dave"), "{s}");
    let fx = app.update(Input::Forwarded(ChatKey::Contact("Bob".into())), app.now);
    assert_eq!(
        fx,
        vec![Effect::LoadHistory(
            ChatKey::Contact("Bob".into()),
            HISTORY_PAGE
        )]
    );
    // A deleted message is not forwarded.
    let mut gone = msg("m9", "Bob", "", "read", T0);
    gone.deleted = true;
    app.update(
        Input::History(ChatKey::Contact("Bob".into()), vec![gone], HISTORY_PAGE),
        app.now,
    );
    app.update(key(KeyCode::Tab), app.now);
    app.update(key(KeyCode::Char('f')), app.now);
    assert_eq!(app.mode, Mode::Select);
}

#[test]
fn search_screen_finds_ranks_and_jumps_to_the_message() {
    let mut app = app_with_chats();
    // `/` in the list opens it; letters write the query; Enter asks the daemon.
    app.update(key(KeyCode::Char('/')), app.now);
    assert_eq!(app.mode, Mode::Search);
    assert!(typed(&mut app, "picnic cakx").is_empty());
    app.update(key(KeyCode::Backspace), app.now);
    typed(&mut app, "e");
    let s = screen(&render(&mut app, 100, 24));
    assert!(s.contains("🔍") && s.contains(" picnic cake▏"), "{s}");
    let fx = app.update(key(KeyCode::Enter), app.now);
    assert_eq!(fx, vec![Effect::Search("picnic cake".into())]);
    // Hits: best first, chat, sender, snippet with the matches highlighted; peer text escaped.
    let hits = vec![
        hit("g1", "#Friends", "Carol", "a [picnic] with [cake]\u{1b}[2J"),
        hit("m3", "Bob", "Bob", "yes, with the [cake]"),
    ];
    app.update(Input::Found("picnic cake".into(), hits), app.now);
    let b = render(&mut app, 100, 24);
    let s = screen(&b);
    assert!(s.contains("#Friends · Carol"), "{s}");
    assert!(s.contains("a picnic with cake\\u{1b}[2J"), "{s}");
    assert!(s.contains("Bob · Bob"), "{s}");
    assert!(!s.contains('\u{1b}'), "no raw escape: {s}");
    let (x, y) = (0..b.area.height)
        .find_map(|y| {
            let line: String = (0..b.area.width).map(|x| b[(x, y)].symbol()).collect();
            line.find("a picnic")
                .map(|i| (line[..i + 2].chars().count() as u16, y))
        })
        .unwrap();
    assert_eq!(b[(x, y)].symbol(), "p");
    assert_eq!(b[(x, y)].fg, Color::Yellow, "a match is highlighted");
    assert!(s.contains("search / open"), "the bar: {s}");
    // Down and Enter: Bob's chat opens and, once its history is there, m3 is chosen.
    app.update(key(KeyCode::Down), app.now);
    let fx = app.update(key(KeyCode::Enter), app.now);
    let bob = ChatKey::Contact("Bob".into());
    assert_eq!(
        fx,
        vec![
            Effect::LoadHistory(bob.clone(), HISTORY_PAGE),
            Effect::MarkRead(bob.clone())
        ]
    );
    app.update(
        Input::History(bob.clone(), conversation(), HISTORY_PAGE),
        app.now,
    );
    assert_eq!(app.mode, Mode::Select);
    let c = app.conv.as_ref().unwrap();
    assert_eq!(c.messages[c.selected.unwrap()].id, "m3");
    assert!(app.jump.is_none());
    // Ctrl+F from the composer opens it again with the same hits; Esc goes back there.
    app.update(key(KeyCode::Esc), app.now);
    assert_eq!(app.mode, Mode::Compose);
    app.update(ctrl('f'), app.now);
    assert_eq!((app.mode, app.search.hits.len()), (Mode::Search, 2));
    app.update(key(KeyCode::Esc), app.now);
    assert_eq!(app.mode, Mode::Compose);
}

#[test]
fn a_hit_older_than_the_loaded_history_asks_for_more() {
    let mut app = app_with_chats();
    app.update(ctrl('f'), app.now);
    typed(&mut app, "old");
    app.update(key(KeyCode::Enter), app.now);
    app.update(
        Input::Found("old".into(), vec![hit("m0", "Bob", "Bob", "an [old] one")]),
        app.now,
    );
    app.update(key(KeyCode::Enter), app.now);
    let bob = ChatKey::Contact("Bob".into());
    // A full page without it: four times as many are asked for.
    let page: Vec<Message> = (1..=HISTORY_PAGE)
        .map(|i| msg(&format!("n{i}"), "Bob", "new", "read", T0 + i as u64))
        .collect();
    let fx = app.update(Input::History(bob.clone(), page, HISTORY_PAGE), app.now);
    assert_eq!(fx, vec![Effect::LoadHistory(bob.clone(), 4 * HISTORY_PAGE)]);
    // Not there at all: a notice, and writing goes on.
    let fx = app.update(
        Input::History(
            bob,
            vec![msg("n1", "Bob", "new", "read", T0)],
            4 * HISTORY_PAGE,
        ),
        app.now,
    );
    assert!(fx.is_empty());
    assert!(app.jump.is_none());
    assert_eq!(app.mode, Mode::Compose);
    assert!(app.notice.is_some());
}
