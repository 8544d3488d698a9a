//! Calls as `call`, `call.current` and `calls` show them.

use serde::{Deserialize, Serialize};

/// A call, as `call`, `call.answer` and `call.current` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallView {
    /// The call id.
    pub call: String,
    /// The contact's name.
    pub contact: String,
    /// `incoming` or `outgoing`.
    pub direction: String,
    /// `connecting`, `ringing`, `connected` or `reconnecting`.
    pub state: String,
    /// Our sound is muted.
    pub muted: bool,
    /// A group call: the group's name (`contact` is who rang).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A group call: the members we are connected with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<String>,
    /// The live quality, as last measured (every 2 s once connected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<CallQualityView>,
}

/// Live quality of a call (WebRTC statistics of the selected path and the audio streams).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallQualityView {
    /// Round-trip time, ms.
    pub rtt_ms: u32,
    /// Packets lost of those expected from the peer, per thousand.
    pub loss_permille: u32,
    /// Jitter of what arrives, ms.
    pub jitter_ms: u32,
    /// Received bitrate, kbit/s.
    pub recv_kbps: u32,
    /// Sent bitrate, kbit/s.
    pub send_kbps: u32,
    /// Audio packets received so far.
    pub packets: u64,
}

/// One call of the history (`calls`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallRecordView {
    /// The call id.
    pub call: String,
    /// The contact's name.
    pub contact: String,
    /// `incoming` or `outgoing`.
    pub direction: String,
    /// When it started ringing (ms since the epoch).
    pub started_at: u64,
    /// How long it was connected, ms.
    pub duration_ms: u64,
    /// How it ended (see [`super::Event::Call`]).
    pub outcome: String,
    /// An incoming call nobody answered.
    pub missed: bool,
    /// A group call: the group's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}
