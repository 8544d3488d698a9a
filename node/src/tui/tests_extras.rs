//! Headless tests of the stories screen, calls and files from the screen (`extras.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crossterm::event::KeyCode;
use serde_json::json;

use super::app::*;
use super::extras::Story;
use super::tests::{T0, app_with_chats, conversation, ctrl, key, open, render, screen};

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(key(KeyCode::Char(c)), app.now);
    }
}

#[test]
fn stories_screen_shows_statuses_viewers_and_posts_one() {
    let mut app = app_with_chats();
    let fx = app.update(ctrl('t'), app.now);
    assert_eq!(fx, vec![Effect::LoadStories]);
    assert_eq!(app.mode, Mode::Stories);
    let mine = Story {
        id: "s1".into(),
        from: "me".into(),
        mine: true,
        posted_at: T0,
        text: "at the beach".into(),
        viewed: true,
        viewers: vec!["Bob".into(), "Dave".into()],
    };
    let bobs = Story {
        id: "s2".into(),
        from: "Bob".into(),
        posted_at: T0,
        text: "new bike\u{1b}[2J".into(),
        ..Story::default()
    };
    app.update(Input::Stories(vec![mine, bobs]), app.now);
    let s = screen(&render(&mut app, 100, 24));
    for want in [
        "Stories (24 h)",
        "you · 22:13 · at the beach",
        "seen by 2: Bob, Dave",
        "● Bob · 22:13 · new bike\\u{1b}[2J",
        "new status",
    ] {
        assert!(s.contains(want), "missing {want:?}:\n{s}");
    }
    // Enter on your own does nothing; on Bob's it shows them (and tells Bob).
    assert!(app.update(key(KeyCode::Enter), app.now).is_empty());
    app.update(key(KeyCode::Down), app.now);
    let fx = app.update(key(KeyCode::Enter), app.now);
    assert_eq!(fx, vec![Effect::ViewStories("Bob".into())]);
    // n writes a status; Enter posts it.
    app.update(key(KeyCode::Char('n')), app.now);
    typed(&mut app, "off to the hillz");
    app.update(key(KeyCode::Backspace), app.now);
    typed(&mut app, "s");
    let s = screen(&render(&mut app, 100, 24));
    assert!(s.contains("New status: off to the hills"), "{s}");
    let fx = app.update(key(KeyCode::Enter), app.now);
    assert_eq!(fx, vec![Effect::PostStatus("off to the hills".into())]);
    let fx = app.update(Input::Posted(2), app.now);
    assert_eq!(fx, vec![Effect::LoadStories]);
    assert!(screen(&render(&mut app, 100, 24)).contains("status posted to 2 contacts"));
    app.update(key(KeyCode::Esc), app.now);
    assert_eq!(app.mode, Mode::List);
}

#[test]
fn calling_the_open_chat_shows_the_call_and_hangs_up() {
    let mut app = app_with_chats();
    open(&mut app, conversation());
    let fx = app.update(ctrl('g'), app.now);
    assert_eq!(fx, vec![Effect::Dial("Bob".into())]);
    app.update(
        Input::Calling(Ring {
            call: "c1".into(),
            contact: "Bob".into(),
            state: "ringing".into(),
            outgoing: true,
        }),
        app.now,
    );
    let s = screen(&render(&mut app, 100, 24));
    assert!(s.contains("Calling Bob: ringing · Ctrl+X hang up"), "{s}");
    // Its events move the state on; Ctrl+Y answers only calls that ring here.
    let ev = json!({"event": "call", "call": "c1", "contact": "Bob",
        "direction": "outgoing", "state": "connected"});
    app.update(Input::Event(ev), app.now);
    assert!(screen(&render(&mut app, 100, 24)).contains("Calling Bob: connected"));
    assert!(app.update(ctrl('y'), app.now).is_empty());
    // A second call is refused while one goes on.
    assert!(app.update(ctrl('g'), app.now).is_empty());
    let fx = app.update(ctrl('x'), app.now);
    assert_eq!(fx, vec![Effect::HangUp("c1".into())]);
    assert!(app.call.is_none());
    // A call started elsewhere (`kith call`) shows from its event too.
    let ev = json!({"event": "call", "call": "c2", "contact": "Dave",
        "direction": "outgoing", "state": "ringing"});
    app.update(Input::Event(ev), app.now);
    assert!(app.call.as_ref().is_some_and(|r| r.outgoing));
}

#[test]
fn a_chosen_messages_file_is_downloaded_with_d() {
    let mut app = app_with_chats();
    open(&mut app, conversation());
    app.update(key(KeyCode::Tab), app.now);
    // The last message has no file: a notice, nothing asked.
    assert!(app.update(key(KeyCode::Char('d')), app.now).is_empty());
    assert!(app.notice.is_some());
    // Two up is photo.jpg.
    app.notice = None;
    app.update(key(KeyCode::Up), app.now);
    app.update(key(KeyCode::Up), app.now);
    let s = screen(&render(&mut app, 100, 30));
    assert!(s.contains("download"), "the bar names d: {s}");
    let fx = app.update(key(KeyCode::Char('d')), app.now);
    assert_eq!(fx, vec![Effect::Download("m5".into())]);
    app.update(
        Input::Notice("photo.jpg is saved: /tmp/photo.jpg".into()),
        app.now,
    );
    assert!(screen(&render(&mut app, 100, 30)).contains("photo.jpg is saved"));
}

#[test]
fn adding_a_contact_from_the_list() {
    let mut app = app_with_chats();
    assert!(screen(&render(&mut app, 100, 24)).contains("add contact"));
    app.update(key(KeyCode::Char('a')), app.now);
    assert_eq!(app.mode, Mode::AddContact);
    // The code is pasted; Enter with no name yet goes to the name.
    app.update(Input::Paste(" kith1codeofeve\n".into()), app.now);
    assert!(app.update(key(KeyCode::Enter), app.now).is_empty());
    assert!(app.adding.as_ref().unwrap().on_name);
    typed(&mut app, "Eve");
    let s = screen(&render(&mut app, 100, 24));
    assert!(s.contains("Add a contact"), "{s}");
    assert!(s.contains("Code: kith1codeofeve"), "{s}");
    assert!(s.contains("Name: Eve▏"), "{s}");
    let fx = app.update(key(KeyCode::Enter), app.now);
    assert_eq!(
        fx,
        vec![Effect::AddContact {
            code: "kith1codeofeve".into(),
            name: "Eve".into()
        }]
    );
    assert_eq!(app.mode, Mode::List);
    let fx = app.update(Input::Added("Eve".into()), app.now);
    assert_eq!(fx, vec![Effect::LoadChats]);
    assert!(screen(&render(&mut app, 100, 24)).contains("Eve added"));
    // Esc cancels.
    app.update(key(KeyCode::Char('a')), app.now);
    assert!(app.update(key(KeyCode::Esc), app.now).is_empty());
    assert_eq!((app.mode, app.adding.is_none()), (Mode::List, true));
}

#[test]
fn a_group_chat_rings_the_group_and_its_members_show_as_notes() {
    let mut app = app_with_chats();
    // The list's group entry, selected, then Ctrl+G.
    while app.selected_chat().map(|c| c.title.as_str()) != Some("Friends") {
        app.update(key(KeyCode::Down), app.now);
    }
    let fx = app.update(ctrl('g'), app.now);
    assert_eq!(fx, vec![Effect::DialGroup("ab".repeat(16))]);
    let ring = json!({"event": "call", "call": "r1", "contact": "me", "group": "Friends",
        "direction": "outgoing", "state": "ringing"});
    app.update(Input::Event(ring), app.now);
    let joined = json!({"event": "call", "call": "r1", "contact": "Carol",
        "group": "Friends", "direction": "outgoing", "state": "member_joined"});
    app.update(Input::Event(joined), app.now);
    let s = screen(&render(&mut app, 100, 24));
    assert!(s.contains("Calling Friends: ringing"), "{s}");
    assert!(s.contains("Carol joined the call in Friends"), "{s}");
    // Someone else's group call rings here with who rang.
    let mut app = app_with_chats();
    let ring = json!({"event": "call", "call": "r2", "contact": "Bob", "group": "Friends",
        "direction": "incoming", "state": "ringing"});
    app.update(Input::Event(ring), app.now);
    assert_eq!(
        app.call.as_ref().map(|r| r.contact.as_str()),
        Some("Friends (Bob)")
    );
}

#[test]
fn the_chosen_chat_is_muted_archived_and_given_a_timer_from_the_list() {
    use super::settings::{Change, Settings};
    let mut app = app_with_chats();
    let key = app.selected_chat().unwrap().key.clone();
    let title = app.selected_chat().unwrap().title.clone();
    let fx = app.update(key_char('m'), app.now);
    assert_eq!(fx, vec![Effect::ChatSet(key.clone(), Change::Muted(true))]);
    let set = |muted, archived| Settings {
        muted,
        archived,
        disappear: "off".into(),
    };
    app.update(Input::ChatSet(key.clone(), set(true, false)), app.now);
    assert!(app.chats.iter().any(|c| c.key == key && c.muted));
    assert!(screen(&render(&mut app, 100, 24)).contains(&format!("{title} muted")));

    let fx = app.update(key_char('z'), app.now);
    assert_eq!(
        fx,
        vec![Effect::ChatSet(key.clone(), Change::Archived(true))]
    );
    app.update(Input::ChatSet(key.clone(), set(true, true)), app.now);
    // Archived chats go to the end of the list, marked.
    assert_eq!(app.chats.last().map(|c| &c.key), Some(&key));
    assert!(screen(&render(&mut app, 100, 24)).contains(&format!("{title} (archived)")));

    app.list_sel = app.chats.len() - 1;
    assert!(app.update(key_char('t'), app.now).is_empty());
    assert_eq!(app.mode, Mode::Timer);
    assert!(screen(&render(&mut app, 120, 24)).contains("disappearing messages: 0 off"));
    let fx = app.update(key_char('3'), app.now);
    assert_eq!(
        fx,
        vec![Effect::ChatSet(key, Change::Disappear("1d".into()))]
    );
    assert_eq!(app.mode, Mode::List);
}

fn key_char(c: char) -> Input {
    key(KeyCode::Char(c))
}
