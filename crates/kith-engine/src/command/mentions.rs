//! Params and results of `mentions`: the group messages that name this user.

use serde::{Deserialize, Serialize};

/// Params of `mentions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MentionsParams {
    /// At most this many, newest first.
    pub limit: usize,
}

/// A group message that names this user. Hand-written `Debug`: no text.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MentionView {
    /// The group's name.
    pub group: String,
    /// The group id.
    pub group_id: String,
    /// The message id.
    pub id: String,
    /// Who wrote it.
    pub from: String,
    /// Its text.
    pub text: String,
    /// When the sender wrote it (ms since the epoch).
    pub sent_at: u64,
    /// Read already.
    pub read: bool,
}

impl std::fmt::Debug for MentionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MentionView")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
