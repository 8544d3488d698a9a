//! The command model, as the API sees it: every method is a command of the engine's table
//! ([`kith_engine::command`]), with its name, typed params and result, declared there once.
//! This module re-exports those types under the API's names, and adds what belongs to the
//! API alone: the `watch` subscription.

pub use kith_engine::Command as Method;
pub use kith_engine::command::*;
use serde::{Deserialize, Serialize};

/// Result of `watch` (then events follow as notifications).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscribed {
    /// Always true.
    pub subscribed: bool,
}

/// The name of the `watch` subscription method.
pub const WATCH: &str = "watch";
/// The notification method carrying events.
pub const EVENT: &str = "event";
