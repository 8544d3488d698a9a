//! The command model: every command the engine serves, declared once.
//!
//! A command is a type implementing [`Command`]: its JSON-RPC name, its typed params and
//! result. The table in `actor/table.rs` declares each one with the rule that serves it;
//! from that one entry follow the command type, the engine's command enum, whether it runs in
//! the batch's write transaction, and its place in [`for_each_command!`](crate::for_each_command),
//! which the API server uses for its method list. Callers run a command with
//! [`EngineHandle::call`](crate::EngineHandle::call); the CLI and bots reach the same commands
//! through the JSON-RPC API (`kith-api`).
//!
//! This module holds the trait and the params and result types; the command types themselves
//! (`Send`, `History`, `GroupCreate`, …) are re-exported here from the table.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::EngineError;

pub use crate::actor::table::list::*;

mod chat;
pub use chat::*;
mod stories;
pub use stories::*;

mod backup;
pub use backup::*;
mod media_save;
pub use media_save::*;

mod mentions;
pub use mentions::*;
mod devices;
pub use devices::*;

/// One command.
pub trait Command: 'static {
    /// The JSON-RPC method name.
    const NAME: &'static str;
    /// Its params.
    type Params: Serialize + DeserializeOwned + std::marker::Send + 'static;
    /// Its result.
    type Output: Serialize + DeserializeOwned + std::marker::Send + 'static;

    /// Work done on the caller's side before the command is queued (reading a file the params
    /// name, so the engine never waits on a file); most commands need none.
    fn prepare(
        p: Self::Params,
        ctx: &PrepareCtx,
    ) -> impl Future<Output = Result<Self::Params, EngineError>> + std::marker::Send {
        let _ = ctx;
        async { Ok(p) }
    }

    /// Wraps the params and the reply channel for the engine's queue.
    #[doc(hidden)]
    fn queue(p: Self::Params, reply: crate::actor::Reply<Self::Output>) -> Queued;
}

/// What [`Command::prepare`] may use on the caller's side.
#[derive(Debug, Clone)]
pub struct PrepareCtx {
    /// Where the node keeps media files (`<data>/media`).
    pub media_dir: std::path::PathBuf,
}

/// A command with its params and reply channel, ready for the engine's queue.
#[doc(hidden)]
pub struct Queued(pub(crate) crate::actor::table::Call);

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queued { .. }")
    }
}

/// No params.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NoParams {}

/// Params naming a contact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WithContact {
    /// The contact's name.
    pub with: String,
}

/// Params of `contacts.add`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddContactParams {
    /// The contact code.
    pub code: String,
    /// The name to file it under.
    pub name: String,
}

/// Params of `contacts.remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveContactParams {
    /// The contact's name.
    pub name: String,
}

/// Params of `send`. Hand-written `Debug`: the text is the user's.
#[derive(Clone, Serialize, Deserialize)]
pub struct SendParams {
    /// The contact's name.
    pub to: String,
    /// The text.
    pub text: String,
}

/// Params of `send.file`.
#[derive(Clone, Serialize, Deserialize)]
pub struct SendFileParams {
    /// The contact's name.
    pub to: String,
    /// The file to send (a path the daemon can read).
    pub path: String,
    /// A caption (may be empty).
    #[serde(default)]
    pub caption: String,
    /// Send it as a voice note.
    #[serde(default)]
    pub voice: bool,
    /// Filled by `prepare`: the imported file's manifest.
    #[serde(skip)]
    pub manifest: Option<kith_proto::media::Manifest>,
}

impl std::fmt::Debug for SendFileParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendFileParams")
            .field("to", &self.to)
            .field("voice", &self.voice)
            .finish_non_exhaustive()
    }
}

/// Params of `group.send.file`.
#[derive(Clone, Serialize, Deserialize)]
pub struct GroupSendFileParams {
    /// The group (its name or a 4+ digit prefix of its id).
    pub group: String,
    /// The file to send (a path the daemon can read).
    pub path: String,
    /// A caption (may be empty).
    #[serde(default)]
    pub caption: String,
    /// Send it as a voice note.
    #[serde(default)]
    pub voice: bool,
    /// Filled by `prepare`: the imported file's manifest.
    #[serde(skip)]
    pub manifest: Option<kith_proto::media::Manifest>,
}

impl std::fmt::Debug for GroupSendFileParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSendFileParams")
            .field("voice", &self.voice)
            .finish_non_exhaustive()
    }
}

/// Params naming one message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageParams {
    /// The message id.
    pub id: String,
}

/// Params of `media.auto-download`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AutoDownloadParams {
    /// Files up to this many bytes download by themselves (photos and voice notes always).
    pub max_bytes: u64,
}

/// Params naming a conversation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaClearParams {
    /// The contact's name.
    pub chat: String,
}

impl std::fmt::Debug for SendParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendParams")
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// Params of `history`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryParams {
    /// The contact's name.
    pub with: String,
    /// How many of the latest messages (default 50).
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    50
}

/// Most messages one `history` call returns.
pub const MAX_HISTORY: usize = 10_000;

/// Result of `read`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadResult {
    /// How many messages were newly marked read.
    pub marked: usize,
}

/// Params of `mailbox.add`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddMailboxParams {
    /// The mailbox node's contact code (`kith id` on it).
    pub code: String,
    /// An invite token, for mailboxes that require one.
    #[serde(default)]
    pub token: Option<String>,
}

/// Params of `push.set`. Hand-written `Debug`: the URL holds the push server's token.
#[derive(Clone, Serialize, Deserialize)]
pub struct SetPushParams {
    /// The push endpoint (an http or https URL, up to 1024 bytes).
    pub endpoint: String,
}

impl std::fmt::Debug for SetPushParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetPushParams { .. }")
    }
}

/// Params of `typing`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TypingParams {
    /// The contact's name.
    pub with: String,
    /// `typing`, `recording` or `stopped`.
    pub state: String,
}

/// Params of `group.typing`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupTypingParams {
    /// The group's name or id.
    pub group: String,
    /// `typing`, `recording` or `stopped`.
    pub state: String,
}

/// Result of methods that only succeed or fail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    /// Always true.
    pub ok: bool,
}

/// Params of `profile.set`; each part given replaces the current one.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct SetProfileParams {
    /// Display name (up to 64 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// About text (up to 256 characters).
    #[serde(default)]
    pub about: Option<String>,
    /// A PNG, JPEG or WebP file (up to 256 KiB) to use as the photo.
    #[serde(default)]
    pub avatar: Option<std::path::PathBuf>,
    /// Remove the photo.
    #[serde(default)]
    pub remove_avatar: bool,
    /// The photo's bytes, read from `avatar` by [`Command::prepare`] on the caller's side
    /// (never sent over the API).
    #[serde(skip)]
    pub photo: Option<Vec<u8>>,
}

impl std::fmt::Debug for SetProfileParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetProfileParams")
            .field("name", &self.name)
            .field("avatar", &self.avatar)
            .field("remove_avatar", &self.remove_avatar)
            .field("photo_bytes", &self.photo.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

/// Reads a photo file, refusing anything over the photo limit without reading it all.
pub(crate) async fn read_photo(path: &std::path::Path) -> Result<Vec<u8>, EngineError> {
    use tokio::io::AsyncReadExt;
    let max = kith_proto::signal::MAX_AVATAR;
    let f = tokio::fs::File::open(path)
        .await
        .map_err(|e| EngineError::BadSetting(format!("cannot read {}: {e}", path.display())))?;
    let mut buf = Vec::new();
    f.take(max as u64 + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| EngineError::BadSetting(format!("cannot read {}: {e}", path.display())))?;
    if buf.len() > max {
        return Err(EngineError::BadSetting(format!(
            "the photo is larger than {} KiB",
            max / 1024
        )));
    }
    Ok(buf)
}

/// Params of `privacy.set`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetPrivacyParams {
    /// `last-seen`, `online`, `profile-photo` or `read-receipts`.
    pub key: String,
    /// `everyone`, `contacts` or `nobody` (`on` or `off` for read receipts).
    pub value: String,
}

/// Params naming a contact to block or unblock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockParams {
    /// The contact's name.
    pub name: String,
}

/// Params of `group.create`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupCreateParams {
    /// The group's name (1 to 64 characters).
    pub name: String,
    /// The contacts to add, by name (may be empty).
    #[serde(default)]
    pub members: Vec<String>,
}

/// Params naming a group: its name or a unique prefix (4+ hex digits) of its id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupParams {
    /// The group's name or id prefix.
    pub group: String,
}

/// Params naming a group and one of its members (or a contact to add).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupMemberParams {
    /// The group's name or id prefix.
    pub group: String,
    /// The contact's name (`me` for yourself where that makes sense).
    pub member: String,
}

/// Params of `group.rename`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupRenameParams {
    /// The group's name or id prefix.
    pub group: String,
    /// The new name (1 to 64 characters).
    pub name: String,
}

/// Params of `group.describe`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupDescribeParams {
    /// The group's name or id prefix.
    pub group: String,
    /// The new description (may be empty).
    pub text: String,
}

/// Params of `group.send`. Hand-written `Debug`: the text is the user's.
#[derive(Clone, Serialize, Deserialize)]
pub struct GroupSendParams {
    /// The group's name or id prefix.
    pub group: String,
    /// The text.
    pub text: String,
}

impl std::fmt::Debug for GroupSendParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSendParams")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// Params of `group.history`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupHistoryParams {
    /// The group's name or id prefix.
    pub group: String,
    /// How many of the latest messages (default 50).
    #[serde(default = "default_limit")]
    pub limit: usize,
}

/// Params of `receipts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptsParams {
    /// The id of one of your group messages.
    pub id: String,
}

/// The sound and video of a call: files instead of devices, or no devices (in `call` and
/// `call.answer`, at the top level of their params).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallMedia {
    /// A WAV file (48 kHz, 16-bit) sent as the microphone (a full path: the daemon reads it).
    #[serde(default)]
    pub audio_in: Option<std::path::PathBuf>,
    /// A WAV file the other side's sound is written to (a full path).
    #[serde(default)]
    pub audio_out: Option<std::path::PathBuf>,
    /// Use no sound device: without `audio_in` the call sends silence, without
    /// `audio_out` it plays nothing (scripts, tests). By default the daemon's default
    /// microphone and speaker stand in for missing files.
    #[serde(default)]
    pub no_audio_device: bool,
    /// Send video: the frames of `video_in`, or a built-in test pattern (an offered video
    /// track is always received).
    #[serde(default)]
    pub video: bool,
    /// An IVF file of VP8 frames sent as the camera (a full path).
    #[serde(default)]
    pub video_in: Option<std::path::PathBuf>,
    /// An IVF file the other side's video frames are written to (a full path).
    #[serde(default)]
    pub video_out: Option<std::path::PathBuf>,
}

/// Params of `call`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallParams {
    /// The contact to call.
    pub to: String,
    /// Sound and video.
    #[serde(flatten)]
    pub media: CallMedia,
    /// `to` names a group: ring its other members (at most 8 people in all).
    #[serde(default)]
    pub group: bool,
}

/// Params of `call.answer`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AnswerParams {
    /// The call id (or its start); the ringing call when absent.
    #[serde(default)]
    pub call: Option<String>,
    /// Sound and video.
    #[serde(flatten)]
    pub media: CallMedia,
}

/// Params of `call.decline` and `call.hangup`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallIdParams {
    /// The call id (or its start); the current call when absent.
    #[serde(default)]
    pub call: Option<String>,
}

/// Params of `call.mute`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MuteParams {
    /// Mute (true) or unmute (false).
    pub muted: bool,
}
