//! The full-screen chat's state and its update function, with no I/O: `App::update` takes
//! one [`Input`] (a key, a daemon event, an answer to an earlier request) and the time, changes
//! the state and returns the [`Effect`]s to carry out (requests to the daemon). Drawing
//! (`view.rs`) only reads the state; the terminal and the daemon are in `mod.rs`.

use crossterm::event::KeyEvent;
use serde_json::Value;

use super::extras::{self, Story};
use super::input::{self, Composer};
use super::screens::{self, SearchHit};

/// How long a peer's typing shows after its last signal (the daemon's value, 6 s).
pub const TYPING_SHOWN_MS: u64 = 6_000;
/// How often our own "typing" is sent again while the user types.
pub const TYPING_RESEND_MS: u64 = 2_000;
/// How long a notice stays in the bar.
pub const NOTICE_MS: u64 = 5_000;
/// Messages asked for when a conversation opens; scrolling to the top asks for more.
pub const HISTORY_PAGE: usize = 500;
/// The most messages held for one conversation (the daemon's own cap).
pub const HISTORY_MAX: usize = 10_000;

/// A chat: with a contact (by name) or a group (by id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChatKey {
    /// A contact, by the name the user gave it.
    Contact(String),
    /// A group, by its id (32 hex digits).
    Group(String),
}

/// The last message of a chat, as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// Its id.
    pub id: String,
    /// "me" or the sender's name.
    pub from: String,
    /// Its text (or the file's name).
    pub text: String,
    /// When it was written (ms).
    pub at: u64,
    /// Our own message's state.
    pub status: Option<String>,
}

/// One line of the chat list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEntry {
    /// Which chat.
    pub key: ChatKey,
    /// The contact's or group's name.
    pub title: String,
    /// Incoming messages not read yet.
    pub unread: usize,
    /// The latest message.
    pub last: Option<Preview>,
    /// `online`, `offline`, `unknown`, or for a group "N members".
    pub presence: String,
    /// Their typing state and until when it shows (ms).
    pub typing: Option<(String, u64)>,
    /// Muted chat.
    pub muted: bool,
    /// Archived chat (listed last).
    pub archived: bool,
    /// A group message not read yet names you (`@you`).
    pub mentioned: bool,
}

/// A file carried by a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The name the sender gave.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// waiting, downloading, ready or failed.
    pub state: String,
    /// 0 to 100.
    pub percent: u8,
}

/// One message of the open conversation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Message id.
    pub id: String,
    /// "me" or the sender's name.
    pub from: String,
    /// The text (may hold newlines; escaped when drawn).
    pub text: String,
    /// Outgoing: pending, sent, delivered or read. Incoming: delivered or read.
    pub status: String,
    /// When it was written (ms).
    pub sent_at: u64,
    /// The start of the message it answers.
    pub quote: Option<String>,
    /// Who reacted with what ("me" or a name).
    pub reactions: Vec<(String, String)>,
    /// The file it carries.
    pub attachment: Option<Attachment>,
    /// Edited by its author.
    pub edited: bool,
    /// Deleted for everyone.
    pub deleted: bool,
    /// Forwarded.
    pub forwarded: bool,
    /// A group membership change, not a message.
    pub event: bool,
    /// Starred by this user.
    pub starred: bool,
    /// Pinned by this user.
    pub pinned: bool,
}

/// The conversation on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// Which chat.
    pub key: ChatKey,
    /// Its name.
    pub title: String,
    /// Oldest first.
    pub messages: Vec<Message>,
    /// How many were asked for (more exist when `messages.len() == limit`).
    pub limit: usize,
    /// Messages hidden below the view (0: the newest is at the bottom).
    pub scroll: usize,
    /// The message chosen for an action.
    pub selected: Option<usize>,
}

/// What the keys do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Moving in the chat list.
    List,
    /// Writing in the open conversation.
    Compose,
    /// Choosing a message (to reply or react).
    Select,
    /// Choosing a reaction for the selected message.
    React,
    /// Choosing the chat to forward the selected message to.
    Forward,
    /// The search screen.
    Search,
    /// The stories screen.
    Stories,
    /// Adding a contact.
    AddContact,
    /// Choosing the chosen chat's disappearing timer.
    Timer,
}

/// A call ringing here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    /// The call id.
    pub call: String,
    /// Who calls.
    pub contact: String,
    /// `ringing`, `connecting`, `connected`…
    pub state: String,
    /// We called.
    pub outgoing: bool,
}

/// What happened.
#[derive(Debug)]
pub enum Input {
    /// A key.
    Key(KeyEvent),
    /// Pasted text (bracketed paste).
    Paste(String),
    /// Mouse wheel: positive up.
    Wheel(i32),
    /// The terminal changed size (drawn anew anyway).
    Resize,
    /// Time passes (clears typing and notices).
    Tick,
    /// The chat list, loaded.
    Chats(Vec<ChatEntry>),
    /// A conversation, loaded.
    History(ChatKey, Vec<Message>, usize),
    /// A daemon event (`kith watch`'s JSON).
    Event(Value),
    /// A message of ours was queued.
    Sent(ChatKey),
    /// A reaction was taken.
    Acted(ChatKey),
    /// A message was forwarded to this chat.
    Forwarded(ChatKey),
    /// The hits of a search: the query and the hits.
    Found(String, Vec<SearchHit>),
    /// Stories, newest first.
    Stories(Vec<Story>),
    /// Our status went out to this many contacts.
    Posted(usize),
    /// Our call started.
    Calling(Ring),
    /// A line for the bar (a file's state).
    Notice(String),
    /// A contact was added, under this name.
    Added(String),
    /// A chat's settings after `chat.set`.
    ChatSet(ChatKey, super::settings::Settings),
    /// Your own profile name (to find `@you` in groups).
    Me(String),
    /// A request failed.
    Failed(String),
    /// The daemon went away (the app ends).
    Gone,
}

/// What the runtime does for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Load every chat.
    LoadChats,
    /// Load the latest `limit` messages of a chat.
    LoadHistory(ChatKey, usize),
    /// Send a text, maybe answering a message.
    Send {
        /// Where.
        key: ChatKey,
        /// What.
        text: String,
        /// The id of the message answered.
        reply_to: Option<String>,
    },
    /// React to a message ("" takes the reaction back).
    React {
        /// In which chat (to reload it).
        key: ChatKey,
        /// The message.
        id: String,
        /// The emoji.
        emoji: String,
    },
    /// Change the text of one of our messages.
    Edit {
        /// In which chat (to reload it).
        key: ChatKey,
        /// The message.
        id: String,
        /// The new text.
        text: String,
    },
    /// Delete a message here, or one of ours for everyone.
    Delete {
        /// In which chat (to reload it).
        key: ChatKey,
        /// The message.
        id: String,
        /// For everyone (a tombstone on every device and member).
        everyone: bool,
    },
    /// Star or pin a message (`mark`: star or pin), or take it off.
    Mark {
        /// In which chat (to reload it).
        key: ChatKey,
        /// The message.
        id: String,
        /// `star` or `pin`.
        mark: &'static str,
        /// On or off.
        on: bool,
    },
    /// Mark a chat read.
    MarkRead(ChatKey),
    /// Learn your own profile name.
    LoadMe,
    /// Tell a contact we type (`typing`) or stopped.
    Typing(String, &'static str),
    /// Tell a group's members (the group by id) we type (`typing`) or stopped.
    GroupTyping(String, &'static str),
    /// Forward a message to a chat.
    Forward {
        /// The message.
        id: String,
        /// Where to.
        to: ChatKey,
    },
    /// Search the history.
    Search(String),
    /// Load the stories.
    LoadStories,
    /// Show a contact's stories (they are marked seen), then load the stories.
    ViewStories(String),
    /// Post a text status.
    PostStatus(String),
    /// Call a contact.
    Dial(String),
    /// Ring a group (by its id): a group call of up to 8 people.
    DialGroup(String),
    /// Hang up a call.
    HangUp(String),
    /// Download a message's file.
    Download(String),
    /// Add a contact from their code.
    AddContact {
        /// Their code.
        code: String,
        /// The name to file them under.
        name: String,
    },
    /// Archive, mute or set the disappearing timer of a chat (`chat.set`).
    ChatSet(ChatKey, super::settings::Change),
    /// Take the ringing call.
    Answer(String),
    /// Refuse the ringing call.
    Decline(String),
}

/// The whole state of the screen.
#[derive(Debug)]
pub struct App {
    /// Every chat, latest activity first.
    pub chats: Vec<ChatEntry>,
    /// The chosen line of the list.
    pub list_sel: usize,
    /// The first line of the list shown (kept by the drawing).
    pub list_top: usize,
    /// The open conversation.
    pub conv: Option<Conversation>,
    /// What the user writes.
    pub composer: Composer,
    /// What the keys do.
    pub mode: Mode,
    /// The help screen is shown.
    pub help: bool,
    /// The message being answered: id and the start of its text.
    pub reply_to: Option<(String, String)>,
    /// The id of our message being edited (the composer holds its new text).
    pub editing: Option<String>,
    /// A call ringing or going on.
    pub call: Option<Ring>,
    /// A line for the bar, until when (ms).
    pub notice: Option<(String, u64)>,
    /// When our "typing" went out last (ms), while we type.
    pub typing_sent: Option<u64>,
    /// The chat list was loaded once.
    pub loaded: bool,
    /// Your profile name, once known (group messages naming `@it` are mentions).
    pub me: Option<String>,
    /// The user asked to leave.
    pub quit: bool,
    /// A message being forwarded, and the chat chosen for it.
    pub forward: Option<screens::Forward>,
    /// The search screen's query and hits.
    pub search: screens::Search,
    /// Where Esc leaves the search screen for.
    pub search_back: Mode,
    /// A message to choose once its chat's history arrives (a search hit opened).
    pub jump: Option<String>,
    /// The stories screen.
    pub stories: extras::Stories,
    /// The add-a-contact form.
    pub adding: Option<super::contacts::AddContact>,
    /// The time of the last update (ms).
    pub now: u64,
}

impl App {
    /// An empty screen; the runtime asks for [`Effect::LoadChats`] first.
    pub fn new(now: u64) -> Self {
        Self {
            chats: Vec::new(),
            list_sel: 0,
            list_top: 0,
            conv: None,
            composer: Composer::default(),
            mode: Mode::List,
            help: false,
            reply_to: None,
            editing: None,
            call: None,
            notice: None,
            typing_sent: None,
            loaded: false,
            me: None,
            quit: false,
            forward: None,
            search: screens::Search::default(),
            search_back: Mode::List,
            jump: None,
            stories: extras::Stories::default(),
            adding: None,
            now,
        }
    }

    /// Takes one input; returns what to ask of the daemon.
    pub fn update(&mut self, input: Input, now: u64) -> Vec<Effect> {
        self.now = now;
        let mut fx = Vec::new();
        match input {
            Input::Key(k) => input::key(self, k, &mut fx),
            Input::Paste(text) => input::paste(self, &text, &mut fx),
            Input::Wheel(n) => self.scroll_by(n, &mut fx),
            Input::Resize => {}
            Input::Tick => self.expire(),
            Input::Chats(chats) => self.set_chats(chats),
            Input::History(key, messages, limit) => {
                self.set_history(key, messages, limit);
                screens::after_history(self, &mut fx);
            }
            Input::Event(ev) => self.event(&ev, &mut fx),
            Input::Sent(key) | Input::Acted(key) => {
                if self.is_open(&key) {
                    let limit = self.conv.as_ref().map_or(HISTORY_PAGE, |c| c.limit);
                    fx.push(Effect::LoadHistory(key, limit));
                }
            }
            Input::Forwarded(key) => {
                let title = self.chat_mut(&key).map(|c| c.title.clone());
                self.note(format!("forwarded to {}", title.unwrap_or_default()));
                if self.is_open(&key) {
                    let limit = self.conv.as_ref().map_or(HISTORY_PAGE, |c| c.limit);
                    fx.push(Effect::LoadHistory(key, limit));
                }
            }
            Input::Found(query, hits) => screens::found(self, query, hits),
            Input::Stories(list) => extras::set_stories(self, list),
            Input::Posted(n) => {
                let s = if n == 1 { "" } else { "s" };
                self.note(format!("status posted to {n} contact{s}"));
                fx.push(Effect::LoadStories);
            }
            Input::Calling(r) => {
                if self.call.is_none() {
                    self.call = Some(r);
                }
            }
            Input::Notice(text) => self.note(text),
            Input::Added(name) => {
                self.note(format!("{name} added"));
                fx.push(Effect::LoadChats);
            }
            Input::ChatSet(key, v) => super::settings::applied(self, key, v),
            Input::Me(name) => self.me = (!name.trim().is_empty()).then_some(name),
            Input::Failed(e) => self.note(e),
            Input::Gone => self.quit = true,
        }
        fx
    }

    /// Shows a line in the bar for a few seconds.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notice = Some((text.into(), self.now + NOTICE_MS));
    }

    /// Whether `key` is the open conversation.
    pub fn is_open(&self, key: &ChatKey) -> bool {
        self.conv.as_ref().is_some_and(|c| &c.key == key)
    }

    /// The chosen chat of the list.
    pub fn selected_chat(&self) -> Option<&ChatEntry> {
        self.chats.get(self.list_sel)
    }

    /// Opens the chat chosen in the list.
    pub fn open_selected(&mut self, fx: &mut Vec<Effect>) {
        let Some(chat) = self.chats.get_mut(self.list_sel) else {
            return;
        };
        let key = chat.key.clone();
        chat.unread = 0;
        chat.mentioned = false;
        if !self.conv.as_ref().is_some_and(|c| c.key == key) {
            self.conv = Some(Conversation {
                key: key.clone(),
                title: chat.title.clone(),
                messages: Vec::new(),
                limit: HISTORY_PAGE,
                scroll: 0,
                selected: None,
            });
            self.reply_to = None;
            self.editing = None;
            self.composer = Composer::with_history(std::mem::take(&mut self.composer));
        }
        self.mode = Mode::Compose;
        fx.push(Effect::LoadHistory(key.clone(), HISTORY_PAGE));
        fx.push(Effect::MarkRead(key));
    }

    /// Scrolls the conversation by `n` messages (positive: older), asking for more history
    /// at the top.
    pub fn scroll_by(&mut self, n: i32, fx: &mut Vec<Effect>) {
        let Some(c) = self.conv.as_mut() else {
            return;
        };
        let len = c.messages.len();
        let s = (c.scroll as i64 + i64::from(n)).clamp(0, len.saturating_sub(1) as i64);
        c.scroll = s as usize;
        if c.scroll + 1 >= len && len >= c.limit && c.limit < HISTORY_MAX {
            c.limit = (c.limit * 2).min(HISTORY_MAX);
            fx.push(Effect::LoadHistory(c.key.clone(), c.limit));
        }
    }

    fn expire(&mut self) {
        let now = self.now;
        for c in &mut self.chats {
            if c.typing.as_ref().is_some_and(|(_, until)| *until <= now) {
                c.typing = None;
            }
        }
        if self.notice.as_ref().is_some_and(|(_, until)| *until <= now) {
            self.notice = None;
        }
    }

    fn set_chats(&mut self, chats: Vec<ChatEntry>) {
        let chosen = self.selected_chat().map(|c| c.key.clone());
        self.chats = chats;
        self.list_sel = chosen
            .and_then(|k| self.chats.iter().position(|c| c.key == k))
            .unwrap_or(0);
        if let Some(conv) = &self.conv
            && let Some(c) = self.chats.iter_mut().find(|c| c.key == conv.key)
        {
            c.unread = 0;
        }
        self.loaded = true;
    }

    fn set_history(&mut self, key: ChatKey, messages: Vec<Message>, limit: usize) {
        let Some(c) = self.conv.as_mut().filter(|c| c.key == key) else {
            return;
        };
        // Keep the view on the same message when older ones are added above.
        let chosen = c
            .selected
            .and_then(|i| c.messages.get(i))
            .map(|m| m.id.clone());
        c.messages = messages;
        c.limit = limit;
        c.scroll = c.scroll.min(c.messages.len().saturating_sub(1));
        c.selected = chosen.and_then(|id| c.messages.iter().position(|m| m.id == id));
        if let Some(last) = c.messages.last()
            && let Some(entry) = self.chats.iter_mut().find(|e| e.key == key)
        {
            entry.last = Some(preview(last));
        }
    }

    fn chat_mut(&mut self, key: &ChatKey) -> Option<&mut ChatEntry> {
        self.chats.iter_mut().find(|c| &c.key == key)
    }

    /// A new message in a chat: the list moves it to the top; an open conversation reloads.
    fn arrived(&mut self, key: ChatKey, p: Preview, named: bool, fx: &mut Vec<Effect>) {
        let open = self.is_open(&key) && self.mode != Mode::List;
        let Some(pos) = self.chats.iter().position(|c| c.key == key) else {
            fx.push(Effect::LoadChats);
            return;
        };
        let mut entry = self.chats.remove(pos);
        entry.last = Some(p);
        entry.typing = None;
        if !open {
            entry.unread += 1;
            entry.mentioned |= named;
        }
        let chosen = self.selected_chat().map(|c| c.key.clone());
        self.chats.insert(0, entry);
        self.list_sel = if pos == self.list_sel {
            0
        } else {
            chosen
                .and_then(|k| self.chats.iter().position(|c| c.key == k))
                .unwrap_or(0)
        };
        if self.is_open(&key) {
            let limit = self.conv.as_ref().map_or(HISTORY_PAGE, |c| c.limit);
            fx.push(Effect::LoadHistory(key.clone(), limit));
            if open {
                fx.push(Effect::MarkRead(key));
            }
        }
    }

    fn event(&mut self, ev: &Value, fx: &mut Vec<Effect>) {
        let s = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let n = |k: &str| ev.get(k).and_then(Value::as_u64).unwrap_or(0);
        match ev.get("event").and_then(Value::as_str).unwrap_or("") {
            "message" => {
                let p = Preview {
                    id: s("id"),
                    from: s("contact"),
                    text: s("text"),
                    at: n("sent_at"),
                    status: None,
                };
                self.arrived(ChatKey::Contact(s("contact")), p, false, fx);
            }
            "group_message" => {
                let p = Preview {
                    id: s("id"),
                    from: s("from"),
                    text: s("text"),
                    at: n("sent_at"),
                    status: None,
                };
                // The flag the sender set (`@name` resolved to us), not our name in the text.
                let named = ev.get("mentioned").and_then(Value::as_bool) == Some(true);
                self.arrived(ChatKey::Group(s("group_id")), p, named, fx);
            }
            "status" => {
                let (id, status) = (s("id"), s("status"));
                self.set_status(&ChatKey::Contact(s("contact")), &id, &status);
            }
            "group_status" => {
                let id = s("id");
                let (d, r, of) = (n("delivered"), n("read"), n("of"));
                let status = if of > 0 && r >= of {
                    "read"
                } else if of > 0 && d >= of {
                    "delivered"
                } else {
                    "sent"
                };
                let key = self.chats.iter().find_map(|c| match &c.key {
                    ChatKey::Group(_) if c.title == s("group") => Some(c.key.clone()),
                    _ => None,
                });
                if let Some(key) = key {
                    self.set_status(&key, &id, status);
                }
            }
            "typing" => {
                let until = self.now + TYPING_SHOWN_MS;
                let state = s("state");
                if let Some(c) = self.chat_mut(&ChatKey::Contact(s("contact"))) {
                    c.typing = (state != "stopped").then_some((state, until));
                }
            }
            "group_typing" => self.group_typing(ev),
            "presence" => {
                let online = ev.get("online").and_then(Value::as_bool).unwrap_or(false);
                if let Some(c) = self.chat_mut(&ChatKey::Contact(s("contact"))) {
                    c.presence = if online { "online" } else { "offline" }.into();
                }
            }
            "new_contact" | "group_changed" => fx.push(Effect::LoadChats),
            "message_changed" | "media" => {
                let chat = if ev.get("chat").is_some() {
                    s("chat")
                } else {
                    s("contact")
                };
                if let Some(c) = &self.conv
                    && c.title == chat
                {
                    fx.push(Effect::LoadHistory(c.key.clone(), c.limit));
                }
            }
            "call" => extras::call_event(self, ev),
            _ => {}
        }
    }

    fn set_status(&mut self, key: &ChatKey, id: &str, status: &str) {
        if let Some(c) = self.conv.as_mut().filter(|c| &c.key == key)
            && let Some(m) = c.messages.iter_mut().rev().find(|m| m.id == id)
        {
            m.status = status.to_string();
        }
        if let Some(c) = self.chat_mut(key)
            && let Some(p) = c.last.as_mut().filter(|p| p.id == id)
        {
            p.status = Some(status.to_string());
        }
    }

    /// Our own text changed: say we type (at most every 2 s), or that we stopped; in a
    /// group, to its members.
    pub fn typed(&mut self, fx: &mut Vec<Effect>) {
        let Some(key) = self.conv.as_ref().map(|c| c.key.clone()) else {
            return;
        };
        let effect = |state| match &key {
            ChatKey::Contact(name) => Effect::Typing(name.clone(), state),
            ChatKey::Group(id) => Effect::GroupTyping(id.clone(), state),
        };
        if self.composer.is_empty() {
            if self.typing_sent.take().is_some() {
                fx.push(effect("stopped"));
            }
        } else if self
            .typing_sent
            .is_none_or(|t| self.now >= t + TYPING_RESEND_MS)
        {
            self.typing_sent = Some(self.now);
            fx.push(effect("typing"));
        }
    }

    /// Sends what the composer holds.
    pub fn send(&mut self, fx: &mut Vec<Effect>) {
        let Some(c) = &mut self.conv else {
            return;
        };
        let text = self.composer.take();
        if text.trim().is_empty() {
            return;
        }
        c.scroll = 0;
        c.selected = None;
        let key = c.key.clone();
        self.typing_sent = None;
        if let Some(id) = self.editing.take() {
            fx.push(Effect::Edit { key, id, text });
            return;
        }
        let reply_to = self.reply_to.take().map(|(id, _)| id);
        if let Some(e) = self.chats.iter_mut().find(|e| e.key == key) {
            e.last = Some(Preview {
                id: String::new(),
                from: "me".into(),
                text: text.clone(),
                at: self.now,
                status: Some("pending".into()),
            });
        }
        fx.push(Effect::Send {
            key,
            text,
            reply_to,
        });
    }
}

/// A message as the chat list shows it.
pub fn preview(m: &Message) -> Preview {
    let text = match &m.attachment {
        Some(a) if m.text.is_empty() => format!("📎 {}", a.name),
        _ if m.deleted => "this message was deleted".into(),
        _ => m.text.clone(),
    };
    Preview {
        id: m.id.clone(),
        from: m.from.clone(),
        text,
        at: m.sent_at,
        status: (m.from == "me").then(|| m.status.clone()),
    }
}

/// Whether `text` names `name` with an `@`: `@` and the name's first word, in any case,
/// not inside a word (an email address is not a mention) and not followed by a letter or
/// digit.
pub fn mentions(text: &str, name: &str) -> bool {
    let Some(first) = name.split_whitespace().next() else {
        return false;
    };
    let want = format!("@{}", first.to_lowercase());
    let text = text.to_lowercase();
    text.match_indices(&want).any(|(i, m)| {
        let before = text[..i].chars().next_back();
        let after = text[i + m.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}
