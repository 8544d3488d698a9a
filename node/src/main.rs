//! `kith`: the Kith daemon (`kith up`) and the commands that talk to it.
//!
//! This binary only parses arguments, sets up logging and wires the engine and the API
//! together. Exit codes: 0 ok, 1 usage or user error, 2 internal error, 3 daemon not running
//! or network failure.

mod actions;
mod args;
mod backup_cmd;
mod calls;
mod cli;
mod clock;
mod devices_cmd;
mod line_chat;
mod media_cmd;
mod media_out;
mod message_lines;
mod output;
mod passphrase_cmd;
mod qr;
mod safe;
mod setup;
mod stories;
mod tui;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
