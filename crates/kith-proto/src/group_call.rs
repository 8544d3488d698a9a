//! Group calls: a mesh of direct WebRTC calls between the members who join, signalled with
//! these bodies through the ordinary E2EE sessions between member devices (so every DTLS
//! fingerprint is bound to a verified identity, as for a 1:1 call).
//!
//! A member rings the group ([`GroupCallMsg::Ring`] to every other member); a member who
//! answers says so to all of them ([`GroupCallMsg::Join`]); every member already in the
//! call then offers a direct call to the one who joined ([`GroupCallMsg::Offer`], answered
//! with [`GroupCallMsg::Answer`]). When two members offer to each other at once, the offer
//! with the larger call id wins on both sides. [`GroupCallMsg::Leave`] ends a member's part.

use kith_types::GroupId;
use serde::{Deserialize, Serialize};

use crate::DecodeError;
use crate::wire::MAX_CALL_SDP;

/// Most people in one group call (a full mesh: each keeps a direct call with every other).
pub const MAX_GROUP_CALL: usize = 8;

/// A group call's signalling (inside [`crate::wire::Body::GroupCall`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupCallMsg {
    /// The sender rings the group: `room` is the call's id, chosen by the sender.
    Ring {
        /// The group.
        group: GroupId,
        /// The group call's id.
        room: u128,
        /// When the sender rang (sender's clock, ms): a ring older than the ringing time
        /// is kept as missed, never rung.
        sent_at_ms: u64,
    },
    /// The sender is in the call now: members already in it offer it a direct call.
    Join {
        /// The group.
        group: GroupId,
        /// The group call.
        room: u128,
    },
    /// A direct call inside the group call: the sender's WebRTC offer.
    Offer {
        /// The group call.
        room: u128,
        /// The direct call's id.
        call: u128,
        /// The SDP offer (at most [`MAX_CALL_SDP`] bytes).
        sdp: String,
    },
    /// The answer to an [`GroupCallMsg::Offer`].
    Answer {
        /// The group call.
        room: u128,
        /// The direct call.
        call: u128,
        /// The SDP answer (at most [`MAX_CALL_SDP`] bytes).
        sdp: String,
    },
    /// The sender left the group call (or stopped ringing it).
    Leave {
        /// The group call.
        room: u128,
    },
}

impl GroupCallMsg {
    /// Checks the sizes a peer could abuse.
    pub fn check(&self) -> Result<(), DecodeError> {
        match self {
            GroupCallMsg::Offer { sdp, .. } | GroupCallMsg::Answer { sdp, .. }
                if sdp.len() > MAX_CALL_SDP =>
            {
                Err(DecodeError::Invalid("call description too long"))
            }
            _ => Ok(()),
        }
    }

    /// The group call it belongs to.
    pub fn room(&self) -> u128 {
        match self {
            GroupCallMsg::Ring { room, .. }
            | GroupCallMsg::Join { room, .. }
            | GroupCallMsg::Offer { room, .. }
            | GroupCallMsg::Answer { room, .. }
            | GroupCallMsg::Leave { room } => *room,
        }
    }
}

impl std::fmt::Debug for GroupCallMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Descriptions name addresses and keys: only their length is shown.
        match self {
            GroupCallMsg::Ring { room, .. } => write!(f, "Ring({room:x})"),
            GroupCallMsg::Join { room, .. } => write!(f, "Join({room:x})"),
            GroupCallMsg::Offer { room, call, sdp } => {
                write!(f, "Offer({room:x}, {call:x}, {} bytes)", sdp.len())
            }
            GroupCallMsg::Answer { room, call, sdp } => {
                write!(f, "Answer({room:x}, {call:x}, {} bytes)", sdp.len())
            }
            GroupCallMsg::Leave { room } => write!(f, "Leave({room:x})"),
        }
    }
}
