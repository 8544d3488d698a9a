//! Group receipts as `kith receipts` shows them.

use serde::{Deserialize, Serialize};

/// Who has one of this user's group messages, as `kith receipts` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReceiptsView {
    /// The message id.
    pub id: String,
    /// The group's name.
    pub group: String,
    /// Members it went to.
    pub of: u32,
    /// Per member: when it was delivered and read (ms), if it was.
    pub members: Vec<MemberReceipt>,
}

/// One member's receipt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberReceipt {
    /// The member's name.
    pub name: String,
    /// When their device stored it.
    pub delivered_at: Option<u64>,
    /// When they read it.
    pub read_at: Option<u64>,
}
