//! Params and results of the message-action commands (`message.*`, `chat.set`).

use serde::{Deserialize, Serialize};

/// A chat: a contact's name, or with `group` a group's name or id prefix (exactly one).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatParams {
    /// A contact's name.
    #[serde(default)]
    pub to: Option<String>,
    /// A group's name or id prefix.
    #[serde(default)]
    pub group: Option<String>,
}

/// Params of `message.send`: a text that may answer another message. Hand-written `Debug`:
/// the text is the user's.
#[derive(Clone, Serialize, Deserialize)]
pub struct ChatSendParams {
    /// Where to.
    #[serde(flatten)]
    pub chat: ChatParams,
    /// The text.
    pub text: String,
    /// The id of the message it answers (shown quoted).
    #[serde(default)]
    pub reply_to: Option<String>,
}

impl std::fmt::Debug for ChatSendParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatSendParams")
            .field("chat", &self.chat)
            .field("reply_to", &self.reply_to)
            .finish_non_exhaustive()
    }
}

/// Params of `message.forward`: a message (by id) and where it goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardParams {
    /// The message's id.
    pub id: String,
    /// Where to.
    #[serde(flatten)]
    pub chat: ChatParams,
}

/// Params of `message.react`. An empty emoji takes the reaction back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReactParams {
    /// The message's id.
    pub id: String,
    /// The emoji, or empty.
    pub emoji: String,
}

/// Params of `message.edit`. Hand-written `Debug`: the text is the user's.
#[derive(Clone, Serialize, Deserialize)]
pub struct EditParams {
    /// The message's id (one of yours, at most 15 minutes old).
    pub id: String,
    /// The new text.
    pub text: String,
}

impl std::fmt::Debug for EditParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EditParams")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Params of `message.delete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteParams {
    /// The message's id.
    pub id: String,
    /// For everyone (your own message, within 2 days); otherwise only here.
    #[serde(default)]
    pub everyone: bool,
}

/// Params of `message.mark`: star or pin a message, or take the mark off.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarkParams {
    /// The message's id.
    pub id: String,
    /// `star` or `pin`.
    pub mark: String,
    /// On (true) or off.
    pub on: bool,
}

/// What a message action did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ActionResult {
    /// The message's id.
    pub id: String,
    /// `react`, `edit`, `delete`, `delete_for_me`, `star`, `pin`.
    pub action: String,
    /// Whether anything changed (a repeat changes nothing).
    pub changed: bool,
}

/// Params of `chat.set`: change a chat's settings (only those given).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatSetParams {
    /// Which chat.
    #[serde(flatten)]
    pub chat: ChatParams,
    /// Archive (true) or unarchive.
    #[serde(default)]
    pub archived: Option<bool>,
    /// Mute (true) or unmute.
    #[serde(default)]
    pub muted: Option<bool>,
    /// Disappearing messages: off, 5m, 1h, 1d, 7d or 90d (the other side gets it too).
    #[serde(default)]
    pub disappear: Option<String>,
}

/// A chat's settings as shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChatSettingsView {
    /// The contact's or the group's name.
    pub chat: String,
    /// Archived.
    pub archived: bool,
    /// Muted.
    pub muted: bool,
    /// Disappearing timer: off, 5m, 1h, 1d, 7d or 90d.
    pub disappear: String,
}

/// Params of `search`. Hand-written `Debug`: the query is the user's.
#[derive(Clone, Serialize, Deserialize)]
pub struct SearchParams {
    /// Words, "phrases", -exclusions.
    pub text: String,
    /// Only this chat (a contact's `to` or a `group`), when given.
    #[serde(flatten)]
    pub chat: ChatParams,
    /// Most hits (default 20, at most 200).
    #[serde(default = "default_hits")]
    pub limit: usize,
    /// Only group messages that name this user (`kith mentions`' messages).
    #[serde(default)]
    pub mentions: bool,
}

fn default_hits() -> usize {
    20
}

impl std::fmt::Debug for SearchParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchParams")
            .field("chat", &self.chat)
            .finish_non_exhaustive()
    }
}

/// One search hit. Hand-written `Debug`: the snippet is message text.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchHitView {
    /// The message id.
    pub id: String,
    /// The contact's name, or `#` and the group's name.
    pub chat: String,
    /// Who wrote it ("me" or a name).
    pub from: String,
    /// When (ms since the epoch).
    pub sent_at: u64,
    /// The best fragment, matches in `[` `]`.
    pub snippet: String,
    /// Relevance (BM25; higher is better).
    pub score: f32,
}

impl std::fmt::Debug for SearchHitView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchHitView")
            .field("id", &self.id)
            .field("score", &self.score)
            .finish_non_exhaustive()
    }
}
