//! Params and results of the linked-device commands (`link.*`, `devices.*`).

use serde::{Deserialize, Serialize};

/// Params of `link.start` (on the new, empty device).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LinkStartParams {
    /// The name this device goes by among the person's devices.
    #[serde(default)]
    pub name: Option<String>,
}

/// Params of `devices.approve` (on a device already linked). Hand-written `Debug`: the code
/// is a secret.
#[derive(Clone, Serialize, Deserialize)]
pub struct ApproveParams {
    /// The code the new device shows.
    pub code: String,
    /// Days of history handed to the new device (90 when absent; 0: none).
    #[serde(default)]
    pub history_days: Option<u32>,
}

impl std::fmt::Debug for ApproveParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApproveParams").finish_non_exhaustive()
    }
}

/// Params naming one of this person's devices.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceNameParams {
    /// The device's name (as `kith devices` lists it).
    pub name: String,
}

/// Where a link stands, on either side. Hand-written `Debug`: the code is a secret.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct LinkView {
    /// `waiting` (new device, code shown), `confirm` (words to compare), `linked`,
    /// `failed`, or `none`.
    pub state: String,
    /// The one-time code (new device, while waiting).
    #[serde(default)]
    pub code: Option<String>,
    /// The confirmation words both screens show.
    #[serde(default)]
    pub words: Option<String>,
    /// The other device's name (approver: the new device; new device: the approver's).
    #[serde(default)]
    pub device: Option<String>,
    /// Why it failed, or what to do next.
    #[serde(default)]
    pub detail: Option<String>,
}

impl std::fmt::Debug for LinkView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkView")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// One device of this person.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceView {
    /// Its name.
    pub name: String,
    /// Its peer id.
    pub peer_id: String,
    /// This device.
    pub this: bool,
    /// Connected now.
    pub online: bool,
    /// When it was linked (ms), if known.
    pub linked_ms: Option<u64>,
    /// When this device last heard from it (ms, since the daemon started).
    pub last_seen: Option<u64>,
    /// Its platform (`os/arch`), once it told.
    #[serde(default)]
    pub platform: Option<String>,
}

/// The history handed over at link time (`devices.history`, and `kith link`'s bar).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryProgressView {
    /// `waiting` (nothing came yet), `receiving`, `done` (new device), or `sending`
    /// (the approving device's walk).
    pub state: String,
    /// Conversations handed over entirely.
    pub conversations_done: u32,
    /// Conversations in all.
    pub conversations: u32,
    /// Messages walked (those outside the days asked for included).
    pub messages_done: u64,
    /// Messages in all.
    pub messages: u64,
    /// Messages stored here (new ones; those already here are not counted).
    #[serde(default)]
    pub stored: u64,
}
