//! Headless tests of the full-screen chat: each screen drawn on ratatui's `TestBackend`,
//! and the update function driven with keys and daemon events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use jiff::tz::TimeZone;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use serde_json::json;

use super::app::*;
use super::view;

/// 2023-11-14 22:13:20 UTC.
pub(super) const T0: u64 = 1_700_000_000_000;
const DAY: u64 = 86_400_000;

pub(super) fn screen(b: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..b.area.height {
        for x in 0..b.area.width {
            out.push_str(b[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

pub(super) fn render(app: &mut App, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::draw(f, app, &TimeZone::UTC)).unwrap();
    t.backend().buffer().clone()
}

pub(super) fn key(code: KeyCode) -> Input {
    Input::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub(super) fn ctrl(c: char) -> Input {
    Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

pub(super) fn chat(name: &str, unread: usize, last: Option<(&str, &str, &str)>) -> ChatEntry {
    ChatEntry {
        key: ChatKey::Contact(name.into()),
        title: name.into(),
        unread,
        last: last.map(|(from, text, status)| Preview {
            id: format!("{name}-last"),
            from: from.into(),
            text: text.into(),
            at: T0,
            status: (!status.is_empty()).then(|| status.to_string()),
        }),
        presence: "unknown".into(),
        typing: None,
        muted: false,
        archived: false,
        mentioned: false,
    }
}

pub(super) fn msg(id: &str, from: &str, text: &str, status: &str, at: u64) -> Message {
    Message {
        id: id.into(),
        from: from.into(),
        text: text.into(),
        status: status.into(),
        sent_at: at,
        ..Message::default()
    }
}

pub(super) fn app_with_chats() -> App {
    let mut app = App::new(T0 + 60_000);
    let mut bob = chat("Bob", 2, Some(("Bob", "see you at eight", "")));
    bob.presence = "online".into();
    let mut dave = chat("Dave", 0, Some(("me", "ok", "read")));
    dave.typing = Some(("typing".into(), T0 + 100_000));
    let friends = ChatEntry {
        key: ChatKey::Group("ab".repeat(16)),
        title: "Friends".into(),
        presence: "3 members".into(),
        ..chat("Friends", 0, Some(("Carol", "picnic?", "")))
    };
    app.update(Input::Chats(vec![bob, friends, dave]), T0 + 60_000);
    app
}

/// Opens the first chat and loads `messages` into it.
pub(super) fn open(app: &mut App, messages: Vec<Message>) {
    let fx = app.update(key(KeyCode::Enter), app.now);
    let key0 = app.conv.as_ref().unwrap().key.clone();
    assert_eq!(
        fx,
        vec![
            Effect::LoadHistory(key0.clone(), HISTORY_PAGE),
            Effect::MarkRead(key0.clone())
        ]
    );
    app.update(Input::History(key0, messages, HISTORY_PAGE), app.now);
}

pub(super) fn conversation() -> Vec<Message> {
    let mut quoted = msg("m3", "Bob", "yes, with the cake", "read", T0 + DAY);
    quoted.quote = Some("shall we meet on Saturday?".into());
    quoted.reactions = vec![("me".into(), "👍".into()), ("Bob".into(), "❤️".into())];
    let mut file = msg("m5", "Bob", "", "delivered", T0 + DAY + 2_000);
    file.attachment = Some(Attachment {
        name: "photo.jpg".into(),
        size: 1_234_567,
        state: "downloading".into(),
        percent: 40,
    });
    let mut edited = msg("m6", "me", "fixed typo", "sent", T0 + DAY + 3_000);
    edited.edited = true;
    vec![
        msg("m1", "me", "shall we meet on Saturday?", "read", T0),
        msg("m2", "me", "at the park", "delivered", T0 + 1_000),
        quoted,
        msg("m4", "me", "great", "delivered", T0 + DAY + 1_000),
        file,
        edited,
        msg("m7", "me", "on its way", "pending", T0 + DAY + 4_000),
    ]
}

#[test]
fn chat_list_shows_unread_counts_last_message_presence_and_typing() {
    let mut app = app_with_chats();
    let b = render(&mut app, 100, 16);
    let s = screen(&b);
    assert!(s.contains("Chats (1 unread)"), "{s}");
    assert!(s.contains("● Bob"), "online dot: {s}");
    assert!(s.contains("see you at eight"), "{s}");
    assert!(s.contains(" 2 "), "unread badge: {s}");
    assert!(s.contains("# Friends"), "{s}");
    assert!(s.contains("Carol: picnic?"), "group sender: {s}");
    assert!(s.contains("typing…"), "Dave types: {s}");
    assert!(s.contains("22:13"), "time of the last message: {s}");
    assert!(s.contains("Choose a chat"), "{s}");
    assert!(s.contains("Enter") && s.contains("open"), "help bar: {s}");
}

#[test]
fn conversation_shows_ticks_day_separators_replies_reactions_and_files() {
    let mut app = app_with_chats();
    open(&mut app, conversation());
    let b = render(&mut app, 100, 30);
    let s = screen(&b);
    for want in [
        "Tuesday 14 November 2023",
        "Wednesday 15 November 2023",
        "22:13 you ✓✓",
        "┃ shall we meet on Saturday?",
        "yes, with the cake",
        "you",
        "photo.jpg · 1.2 MB · downloading 40%",
        "(edited)",
        "you ✓ (edited)",
        "you ◷",
        "Bob · online",
        "Message",
        "Enter",
    ] {
        assert!(s.contains(want), "missing {want:?}:\n{s}");
    }
    // A reaction line under the replied message: who reacted.
    let lines: Vec<&str> = s.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains("yes, with the cake"))
        .unwrap();
    assert!(
        lines[i + 1].contains("👍") && lines[i + 1].contains("you"),
        "{}",
        lines[i + 1]
    );
    assert!(lines[i + 1].contains("Bob"), "{}", lines[i + 1]);
    // Read is blue, delivered is not (the conversation pane starts at column 30).
    let ticks: Vec<(u16, u16)> = (0..b.area.height)
        .filter(|&y| row(&b, y, 30).contains("you ✓✓"))
        .map(|y| {
            (
                (30..b.area.width)
                    .find(|&x| b[(x, y)].symbol() == "✓")
                    .unwrap(),
                y,
            )
        })
        .collect();
    assert_eq!(ticks.len(), 3, "m1 read, m2 and m4 delivered:\n{s}");
    assert_eq!(b[ticks[0]].fg, Color::LightBlue, "read");
    assert_ne!(b[ticks[1]].fg, Color::LightBlue, "delivered");
}

fn row(b: &Buffer, y: u16, from: u16) -> String {
    (from..b.area.width).map(|x| b[(x, y)].symbol()).collect()
}

#[test]
fn help_screen_lists_the_keys() {
    let mut app = app_with_chats();
    app.update(key(KeyCode::F(1)), app.now);
    let s = screen(&render(&mut app, 100, 50));
    for want in [
        "Keys",
        "Chat list",
        "Conversation",
        "send",
        "new line",
        "reply to it",
        "Ctrl+Y",
    ] {
        assert!(s.contains(want), "missing {want:?}:\n{s}");
    }
    app.update(key(KeyCode::Char('x')), app.now);
    assert!(!app.help, "any key closes the help");
}

#[test]
fn narrow_terminal_shows_one_pane_at_a_time() {
    let mut app = app_with_chats();
    let s = screen(&render(&mut app, 40, 12));
    assert!(
        s.contains("Bob") && !s.contains("Message"),
        "list only:\n{s}"
    );
    open(&mut app, conversation());
    let s = screen(&render(&mut app, 40, 12));
    assert!(
        s.contains("Message") && !s.contains("Chats"),
        "conversation only:\n{s}"
    );
    assert!(
        s.contains("on its way"),
        "newest message at the bottom:\n{s}"
    );
    // Too small for anything still draws without panicking.
    render(&mut app, 5, 3);
    render(&mut app, 1, 1);
}

#[test]
fn peer_text_cannot_reach_the_terminal_as_control_sequences() {
    let mut app = app_with_chats();
    let evil = "hi\x1b[2J\x1b]0;pwned\x07\u{202e}";
    open(
        &mut app,
        vec![msg("e1", "Bob\x1b[31m", evil, "delivered", T0)],
    );
    let s = screen(&render(&mut app, 100, 20));
    assert!(
        !s.contains('\x1b') && !s.contains('\u{202e}') && !s.contains('\x07'),
        "{s:?}"
    );
    assert!(s.contains("hi\\u{1b}[2J"), "{s}");
}

#[test]
fn typing_a_message_sends_typing_then_the_text_with_its_reply() {
    let mut app = app_with_chats();
    open(&mut app, conversation());
    let fx = app.update(key(KeyCode::Char('h')), T0);
    assert_eq!(fx, vec![Effect::Typing("Bob".into(), "typing")]);
    // Within 2 s no repeat; after, one more.
    assert!(app.update(key(KeyCode::Char('i')), T0 + 500).is_empty());
    assert_eq!(
        app.update(key(KeyCode::Char('!')), T0 + 2_500),
        vec![Effect::Typing("Bob".into(), "typing")]
    );
    // Alt+Enter breaks the line; Enter sends.
    app.update(
        Input::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT)),
        T0 + 2_600,
    );
    app.update(key(KeyCode::Char('x')), T0 + 2_700);
    assert_eq!(app.composer.text(), "hi!\nx");
    // Choose the message before last (Tab, Up) and answer it.
    app.update(key(KeyCode::Tab), T0 + 2_800);
    app.update(key(KeyCode::Up), T0 + 2_800);
    app.update(key(KeyCode::Char('r')), T0 + 2_800);
    assert_eq!(app.reply_to.as_ref().unwrap().0, "m6");
    let s = screen(&render(&mut app, 100, 30));
    assert!(s.contains("replying to: fixed typo"), "{s}");
    let fx = app.update(key(KeyCode::Enter), T0 + 3_000);
    assert_eq!(
        fx,
        vec![Effect::Send {
            key: ChatKey::Contact("Bob".into()),
            text: "hi!\nx".into(),
            reply_to: Some("m6".into()),
        }]
    );
    assert!(app.composer.is_empty() && app.reply_to.is_none());
    // Up on an empty composer brings the sent text back (input history).
    let fx = app.update(key(KeyCode::Up), T0 + 3_100);
    assert_eq!(app.composer.text(), "hi!\nx");
    assert_eq!(fx, vec![Effect::Typing("Bob".into(), "typing")]);
    // Down past the newest entry goes back to the empty draft: we stopped typing.
    let fx = app.update(key(KeyCode::Down), T0 + 3_200);
    assert!(app.composer.is_empty());
    assert_eq!(fx, vec![Effect::Typing("Bob".into(), "stopped")]);
}

#[test]
fn reacting_to_a_chosen_message() {
    let mut app = app_with_chats();
    open(&mut app, conversation());
    app.update(key(KeyCode::Tab), T0);
    assert_eq!(app.mode, Mode::Select);
    app.update(key(KeyCode::Char('e')), T0);
    assert_eq!(app.mode, Mode::React);
    let s = screen(&render(&mut app, 100, 30));
    assert!(s.contains("React:") && s.contains("0 remove"), "{s}");
    let fx = app.update(key(KeyCode::Char('1')), T0);
    assert_eq!(
        fx,
        vec![Effect::React {
            key: ChatKey::Contact("Bob".into()),
            id: "m7".into(),
            emoji: "👍".into(),
        }]
    );
    assert_eq!(app.mode, Mode::Compose);
    // The answer reloads the conversation.
    assert_eq!(
        app.update(Input::Acted(ChatKey::Contact("Bob".into())), T0),
        vec![Effect::LoadHistory(
            ChatKey::Contact("Bob".into()),
            HISTORY_PAGE
        )]
    );
}

#[test]
fn events_move_chats_count_unread_and_raise_ticks() {
    let mut app = app_with_chats();
    open(&mut app, conversation());
    // A message from Dave (not open): to the top, unread 1, the choice stays on Bob.
    let fx = app.update(
        Input::Event(json!({"event":"message","contact":"Dave","id":"d1","text":"hello","sent_at":T0 + 2*DAY})),
        T0,
    );
    assert!(fx.is_empty(), "{fx:?}");
    assert_eq!(app.chats[0].title, "Dave");
    assert_eq!(app.chats[0].unread, 1);
    assert_eq!(app.chats[0].typing, None, "a message ends typing");
    assert_eq!(app.selected_chat().unwrap().title, "Bob");
    // A message from Bob (open): reloaded and marked read, not unread.
    let fx = app.update(
        Input::Event(
            json!({"event":"message","contact":"Bob","id":"b9","text":"yo","sent_at":T0 + 2*DAY}),
        ),
        T0,
    );
    let bob = ChatKey::Contact("Bob".into());
    assert_eq!(
        fx,
        vec![
            Effect::LoadHistory(bob.clone(), HISTORY_PAGE),
            Effect::MarkRead(bob)
        ]
    );
    assert_eq!(app.chats[0].unread, 0);
    // ✓ → ✓✓ → read on our message.
    app.update(
        Input::Event(json!({"event":"status","contact":"Bob","id":"m7","status":"delivered"})),
        T0,
    );
    let s = screen(&render(&mut app, 100, 30));
    assert!(!s.contains("you ◷"), "{s}");
    // Typing shows in the header and goes after 6 s.
    app.update(
        Input::Event(json!({"event":"typing","contact":"Bob","state":"typing"})),
        T0,
    );
    assert!(screen(&render(&mut app, 100, 30)).contains("Bob · typing…"));
    app.update(Input::Tick, T0 + TYPING_SHOWN_MS + 1);
    assert!(screen(&render(&mut app, 100, 30)).contains("Bob · online"));
    // A ringing call shows with its keys; Ctrl+X declines.
    app.update(
        Input::Event(json!({"event":"call","call":"c1","contact":"Bob","direction":"incoming","state":"ringing"})),
        T0,
    );
    assert!(screen(&render(&mut app, 100, 30)).contains("Bob is calling: Ctrl+Y answer"));
    assert_eq!(
        app.update(ctrl('x'), T0),
        vec![Effect::Decline("c1".into())]
    );
    assert!(app.call.is_none());
}

#[test]
fn scrolling_a_long_conversation_shows_older_messages_and_asks_for_more() {
    let mut app = app_with_chats();
    let many: Vec<Message> = (0..HISTORY_PAGE)
        .map(|i| {
            msg(
                &format!("x{i}"),
                "Bob",
                &format!("message {i}"),
                "read",
                T0 + i as u64,
            )
        })
        .collect();
    open(&mut app, many);
    assert!(screen(&render(&mut app, 100, 20)).contains("message 499"));
    app.update(key(KeyCode::PageUp), T0);
    let b = render(&mut app, 100, 20);
    let s: String = (0..20).map(|y| row(&b, y, 30) + "\n").collect();
    assert!(
        s.contains("message 494") && !s.contains("message 499"),
        "{s}"
    );
    assert!(s.contains("5 newer"), "{s}");
    // At the top, more history is asked for.
    let mut fx = Vec::new();
    for _ in 0..100 {
        fx.extend(app.update(key(KeyCode::PageUp), T0));
    }
    assert_eq!(
        fx,
        vec![Effect::LoadHistory(
            ChatKey::Contact("Bob".into()),
            2 * HISTORY_PAGE
        )]
    );
}

#[test]
fn quitting_keys() {
    let mut app = app_with_chats();
    app.update(key(KeyCode::Char('q')), T0);
    assert!(app.quit);
    let mut app = app_with_chats();
    open(&mut app, conversation());
    app.update(key(KeyCode::Char('q')), T0);
    assert!(!app.quit, "q is text in the composer");
    app.update(ctrl('c'), T0);
    assert!(app.quit);
}

#[test]
fn group_mentions_are_flagged_and_highlighted() {
    assert!(mentions("hi @ada, cake?", "Ada Lovelace"));
    assert!(mentions("@ADA", "Ada"));
    assert!(
        !mentions("hi @adam", "Ada"),
        "another name that starts the same"
    );
    assert!(
        !mentions("mail ada@example.org", "Example"),
        "not an @ of a name"
    );
    assert!(!mentions("hi @ada", ""));

    let mut app = app_with_chats();
    app.update(Input::Me("Ada".into()), T0);
    let friends = ChatKey::Group("ab".repeat(16));
    // Our name in the text without the sender's flag is no mention (the flag is resolved
    // to members by the sender and carried in the message).
    app.update(
        Input::Event(
            json!({"event":"group_message","group":"Friends","group_id":"ab".repeat(16),
            "from":"Carol","id":"g0","text":"@ada is a name","sent_at":T0}),
        ),
        T0,
    );
    assert!(
        !app.chats
            .iter()
            .find(|c| c.key == friends)
            .unwrap()
            .mentioned
    );
    app.update(
        Input::Event(
            json!({"event":"group_message","group":"Friends","group_id":"ab".repeat(16),
            "from":"Carol","id":"g1","text":"@ada are you coming?","sent_at":T0 + 1,
            "mentioned":true}),
        ),
        T0,
    );
    let entry = app.chats.iter().find(|c| c.key == friends).unwrap();
    assert!(entry.mentioned && entry.unread == 2);
    let b = render(&mut app, 100, 16);
    let s = screen(&b);
    let y = (0..16)
        .find(|&y| row(&b, y, 0).contains("Carol: @ada"))
        .unwrap();
    assert!(row(&b, y, 0).contains('@'), "{s}");
    assert!(
        (0..30).any(|x| b[(x, y)].symbol() == "@" && b[(x, y)].fg == Color::Yellow && x > 20),
        "the @ flag beside the unread count:\n{s}"
    );
    // Opening the group clears the flag; in the conversation, @ada is on yellow.
    app.list_sel = app.chats.iter().position(|c| c.key == friends).unwrap();
    open(
        &mut app,
        vec![Message {
            id: "g1".into(),
            from: "Carol".into(),
            text: "@ada are you coming? ask @bob".into(),
            status: "delivered".into(),
            sent_at: T0,
            ..Message::default()
        }],
    );
    assert!(
        !app.chats
            .iter()
            .find(|c| c.key == friends)
            .unwrap()
            .mentioned
    );
    let b = render(&mut app, 100, 16);
    let y = (0..16)
        .find(|&y| row(&b, y, 30).contains("@ada are you"))
        .unwrap();
    let x = (30..100).find(|&x| b[(x, y)].symbol() == "@").unwrap();
    assert_eq!(b[(x, y)].bg, Color::Yellow, "you, on yellow");
    let x2 = (x + 1..100).find(|&x| b[(x, y)].symbol() == "@").unwrap();
    assert_eq!(
        (b[(x2, y)].fg, b[(x2, y)].bg),
        (Color::Yellow, Color::Reset),
        "another name"
    );
}

#[test]
fn group_conversation_shows_members_senders_and_membership_changes() {
    let mut app = app_with_chats();
    app.list_sel = 1;
    let mut joined = msg("op1", "Ada", "Ada added Bob", "", T0);
    joined.event = true;
    open(
        &mut app,
        vec![
            joined,
            msg("g1", "Carol", "picnic?", "delivered", T0 + 1_000),
            msg("g2", "me", "yes!", "read", T0 + 2_000),
        ],
    );
    assert_eq!(
        app.conv.as_ref().unwrap().key,
        ChatKey::Group("ab".repeat(16))
    );
    let s = screen(&render(&mut app, 100, 20));
    for want in [
        "# Friends · 3 members",
        "— Ada added Bob —",
        "22:13 Carol",
        "22:13 you ✓✓",
    ] {
        assert!(s.contains(want), "missing {want:?}:\n{s}");
    }
    // Typing in a group tells its members; sending goes to the group.
    let fx = app.update(key(KeyCode::Char('k')), T0);
    assert_eq!(fx, vec![Effect::GroupTyping("ab".repeat(16), "typing")]);
    let fx = app.update(key(KeyCode::Enter), T0);
    assert_eq!(
        fx,
        vec![Effect::Send {
            key: ChatKey::Group("ab".repeat(16)),
            text: "k".into(),
            reply_to: None
        }]
    );
    // A group receipt raises the tick of our message.
    app.update(
        Input::History(
            ChatKey::Group("ab".repeat(16)),
            vec![msg("g3", "me", "k", "sent", T0 + 3_000)],
            HISTORY_PAGE,
        ),
        T0,
    );
    app.update(
        Input::Event(json!({"event":"group_status","group":"Friends","id":"g3","delivered":2,"read":0,"of":2})),
        T0,
    );
    assert_eq!(app.conv.as_ref().unwrap().messages[0].status, "delivered");
}

#[test]
fn changing_and_deleting_a_chosen_message() {
    let mut app = app_with_chats();
    open(&mut app, conversation());
    let bob = ChatKey::Contact("Bob".into());
    // Tab chooses m7 (ours); Up, Up: m5 (Bob's): c refuses, X refuses, x deletes for me.
    app.update(key(KeyCode::Tab), T0);
    app.update(key(KeyCode::Up), T0);
    app.update(key(KeyCode::Up), T0);
    assert!(app.update(key(KeyCode::Char('c')), T0).is_empty());
    assert!(app.editing.is_none() && app.notice.is_some());
    assert!(app.update(key(KeyCode::Char('X')), T0).is_empty());
    assert_eq!(
        app.update(key(KeyCode::Char('x')), T0),
        vec![Effect::Delete {
            key: bob.clone(),
            id: "m5".into(),
            everyone: false
        }]
    );
    // Our m6: c puts its text in the composer; Enter saves the change.
    app.update(key(KeyCode::Tab), T0);
    app.update(key(KeyCode::Up), T0);
    app.update(key(KeyCode::Char('c')), T0);
    assert_eq!(app.editing.as_deref(), Some("m6"));
    assert_eq!(app.composer.text(), "fixed typo");
    assert!(screen(&render(&mut app, 100, 30)).contains("changing your message"));
    app.update(key(KeyCode::Backspace), T0);
    let fx = app.update(key(KeyCode::Enter), T0);
    assert_eq!(
        fx,
        vec![Effect::Edit {
            key: bob.clone(),
            id: "m6".into(),
            text: "fixed typ".into()
        }]
    );
    assert!(app.editing.is_none());
    // Esc cancels a change and empties the composer; X deletes ours for everyone.
    app.update(key(KeyCode::Tab), T0);
    app.update(key(KeyCode::Char('c')), T0);
    app.update(key(KeyCode::Esc), T0);
    assert!(app.editing.is_none() && app.composer.is_empty() && app.mode == Mode::Compose);
    app.update(key(KeyCode::Tab), T0);
    assert_eq!(
        app.update(key(KeyCode::Char('X')), T0),
        vec![Effect::Delete {
            key: bob,
            id: "m7".into(),
            everyone: true
        }]
    );
}

#[test]
fn group_typing_shows_who_types_in_the_list_and_the_conversation() {
    let mut app = app_with_chats();
    let ev = |member: &str, state: &str| {
        Input::Event(json!({"event":"group_typing","group":"Friends",
            "group_id":"ab".repeat(16),"member":member,"state":state}))
    };
    app.update(ev("Ada", "typing"), T0 + 60_000);
    let s = screen(&render(&mut app, 100, 20));
    assert!(s.contains("Ada is typing…"), "in the chat list: {s}");
    // Someone else's stop leaves Ada's indicator; hers takes it away.
    app.update(ev("Carol", "stopped"), T0 + 60_000);
    assert!(screen(&render(&mut app, 100, 20)).contains("Ada is typing…"));
    app.update(ev("Ada", "stopped"), T0 + 60_000);
    assert!(!screen(&render(&mut app, 100, 20)).contains("Ada is typing"));
    // In the open conversation it shows in the header, and runs out by itself.
    app.list_sel = 1;
    open(&mut app, vec![msg("g1", "Carol", "picnic?", "read", T0)]);
    app.update(ev("Carol", "recording"), T0 + 60_000);
    let s = screen(&render(&mut app, 100, 20));
    assert!(s.contains("Friends · Carol is recording…"), "{s}");
    app.update(Input::Tick, T0 + 60_000 + TYPING_SHOWN_MS + 1);
    assert!(!screen(&render(&mut app, 100, 20)).contains("recording…"));
    // A group that is not in the list is ignored.
    app.update(
        Input::Event(
            json!({"event":"group_typing","group":"X","group_id":"cd".repeat(16),
            "member":"Eve","state":"typing"}),
        ),
        T0 + 60_000,
    );
    assert!(!screen(&render(&mut app, 100, 20)).contains("Eve is"));
}

#[test]
fn starring_and_pinning_a_chosen_message() {
    let mut app = app_with_chats();
    open(&mut app, conversation());
    let bob = ChatKey::Contact("Bob".into());
    app.update(key(KeyCode::Tab), T0);
    let fx = app.update(key(KeyCode::Char('s')), T0);
    let mark = |mark, on| Effect::Mark {
        key: bob.clone(),
        id: "m7".into(),
        mark,
        on,
    };
    assert_eq!(fx, vec![mark("star", true)]);
    assert_eq!(app.mode, Mode::Select, "still choosing");
    assert_eq!(
        app.update(key(KeyCode::Char('p')), T0),
        vec![mark("pin", true)]
    );
    // The reloaded conversation shows the marks; the keys now take them off.
    let mut msgs = conversation();
    let last = msgs.last_mut().unwrap();
    last.starred = true;
    last.pinned = true;
    app.update(Input::History(bob.clone(), msgs, HISTORY_PAGE), T0);
    let s = screen(&render(&mut app, 100, 30));
    assert!(s.contains("★") && s.contains("📌"), "{s}");
    if app.mode != Mode::Select {
        app.update(key(KeyCode::Tab), T0);
    }
    assert_eq!(
        app.update(key(KeyCode::Char('s')), T0),
        vec![mark("star", false)]
    );
    assert_eq!(
        app.update(key(KeyCode::Char('p')), T0),
        vec![mark("pin", false)]
    );
    // The help lists the keys.
    app.update(key(KeyCode::F(1)), T0);
    assert!(screen(&render(&mut app, 100, 50)).contains("star / pin it"));
}
