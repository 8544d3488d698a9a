//! The local API: JSON-RPC 2.0 over a Unix socket in the data directory, one JSON object per
//! line. The CLI is a client of it, and so can be any bot or front end.
//!
//! Every method is a command of the engine's table, defined once there (`kith_engine::command`,
//! re-exported as [`methods`]): its name, its typed params and result, and the rule that
//! serves it. The server's dispatch follows from the same table
//! (`kith_engine::for_each_command!`); the client calls `Client::call::<M>(params)`.
//! `docs/api.md` lists the methods.
//!
//! `watch` is a subscription: after its result, the server writes notifications
//! `{"jsonrpc":"2.0","method":"event","params":EVENT}` on the same connection.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod client;
pub mod methods;
mod server;

pub use client::{Client, ClientError};
pub use methods::Method;
pub use server::serve;

/// The socket's file name inside the data directory.
pub const SOCKET_NAME: &str = "kith.sock";
/// Longest request line the daemon reads.
pub const MAX_LINE: usize = 1 << 20;
/// Longest response line the client reads (a long history is bigger than a request).
pub const MAX_RESPONSE: usize = 64 << 20;

/// JSON-RPC error codes used by Kith. Application errors use the CLI exit code as their code.
pub mod codes {
    /// Not JSON.
    pub const PARSE: i64 = -32700;
    /// Not a JSON-RPC request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Params do not fit the method.
    pub const INVALID_PARAMS: i64 = -32602;
}
