//! Params and results of the status (story) commands (`status.*`).

use serde::{Deserialize, Serialize};

/// Params of `status.post`. Hand-written `Debug`: the text is the user's.
#[derive(Clone, Serialize, Deserialize)]
pub struct StatusPostParams {
    /// The text (with a photo: its caption, which may be empty).
    #[serde(default)]
    pub text: String,
    /// A photo to post (a path the daemon can read): the story shows it, and its audience
    /// fetches it like a photo message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
    /// Filled by `prepare`: the imported photo's manifest.
    #[serde(skip)]
    pub manifest: Option<kith_proto::media::Manifest>,
}

impl std::fmt::Debug for StatusPostParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusPostParams").finish_non_exhaustive()
    }
}

/// A story posted: its id, how many contacts it went to, and when it goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusPosted {
    /// The story's id.
    pub id: String,
    /// Contacts it went to.
    pub audience: usize,
    /// When it expires (ms since the epoch).
    pub expires_at: u64,
}

/// Params of `status.view`: a contact's stories are shown, and marked viewed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusViewParams {
    /// The contact's name.
    pub name: String,
}

/// Params of `status.delete`: one of this user's stories.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusDeleteParams {
    /// The story's id.
    pub id: String,
}

/// Params of `status.privacy`: who sees this user's stories. `mode` is `contacts` (every
/// contact this user added), `except` (all of them but `people`) or `only` (just
/// `people`); without a mode the setting is only shown.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusPrivacyParams {
    /// `contacts`, `except` or `only`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Contact names for `except` and `only`.
    #[serde(default)]
    pub people: Vec<String>,
}

/// Who sees this user's stories.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusPrivacyView {
    /// `contacts`, `except` or `only`.
    pub mode: String,
    /// The contacts named by the mode.
    pub people: Vec<String>,
}

/// One story, as `kith status list` shows it. Hand-written `Debug`: the text is a person's.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoryView {
    /// Its id.
    pub id: String,
    /// Who posted it: a contact's name, or `me`.
    pub from: String,
    /// This user's own.
    pub mine: bool,
    /// When it was posted (ms since the epoch).
    pub posted_at: u64,
    /// When it goes (ms since the epoch).
    pub expires_at: u64,
    /// The text.
    pub text: String,
    /// This user viewed it (others' stories).
    pub viewed: bool,
    /// For this user's own: how many contacts it went to.
    pub audience: usize,
    /// For this user's own: who viewed it, and when (ms).
    pub viewers: Vec<(String, u64)>,
    /// Its photo, with where the file stands (for a contact's: waiting, downloading, ready
    /// with its path, or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<crate::model::AttachmentView>,
}

impl std::fmt::Debug for StoryView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoryView")
            .field("id", &self.id)
            .field("mine", &self.mine)
            .field("viewers", &self.viewers.len())
            .finish_non_exhaustive()
    }
}
