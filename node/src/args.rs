//! The `kith` command line: every command and its arguments (clap). `cli.rs` runs them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Kith: a peer-to-peer, end-to-end encrypted messenger.
#[derive(Debug, Parser)]
#[command(name = "kith", version, about)]
pub(crate) struct Cli {
    /// Where this node keeps its keys and messages [default: $XDG_DATA_HOME/kith].
    #[arg(long, global = true, env = "KITH_HOME")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print JSON Lines for programs instead of text for people.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Without a command on a terminal: also take the mouse (wheel scrolls).
    #[arg(long)]
    pub(crate) mouse: bool,
    /// Without a command, on a terminal, `kith` opens the full-screen chat.
    #[command(subcommand)]
    pub(crate) cmd: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the node in the foreground (Ctrl-C stops it).
    Up {
        /// Start the node in the background and return once its API answers (for scripts
        /// and the README's "Try it"); its log goes to kith.log in the data directory.
        #[arg(long)]
        detach: bool,
        /// When the key file has a passphrase: read it from the first line of this file
        /// (else from the file KITH_PASSPHRASE_FILE names, else it is asked on the terminal).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<std::path::PathBuf>,
        /// Address to listen on (repeatable) [default: all interfaces, TCP and QUIC].
        #[arg(long = "listen", value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// A DHT peer to join through, with its /p2p/ id (repeatable).
        #[arg(long = "bootstrap", value_name = "MULTIADDR")]
        bootstrap: Vec<String>,
        /// Do not announce or look for peers on the LAN (mDNS).
        #[arg(long)]
        no_mdns: bool,
        /// Do not listen at all: dial out only, reachable through relays (as behind a NAT).
        #[arg(long, conflicts_with = "listen")]
        no_listen: bool,
        /// A circuit relay to hold a slot on, with its /p2p/ id (repeatable). Without one, a
        /// node that cannot be dialled picks relays among its bootstrap peers by itself.
        #[arg(long = "relay", value_name = "MULTIADDR")]
        relay: Vec<String>,
        /// Serve as a circuit relay for others (they reserve slots and are dialled through
        /// this node).
        #[arg(long)]
        relay_server: bool,
        /// Treat private and loopback addresses as reachable (a LAN-only network or a test):
        /// AutoNAT probes and answers peers there, and --relay-server offers its service on
        /// them.
        #[arg(long)]
        private_ips: bool,
        /// An address others can reach this node at, if it differs from the listen addresses
        /// (a port forward or a DNS name; repeatable).
        #[arg(long = "external", value_name = "MULTIADDR")]
        external: Vec<String>,
        /// Also serve as a mailbox: keep envelopes for devices that register while they are
        /// offline (for an always-on home server).
        #[arg(long)]
        mailbox: bool,
        /// With --mailbox: most messages kept for one device.
        #[arg(long, value_name = "N", default_value_t = kith_engine::MAILBOX_QUOTA)]
        mailbox_quota: usize,
        /// With --mailbox: how long kept messages wait for their device, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 30 * 24 * 3600)]
        mailbox_retention: u64,
        /// With --mailbox: most ciphertext bytes kept for one device.
        #[arg(long, value_name = "BYTES", default_value_t = kith_engine::MAILBOX_QUOTA_BYTES)]
        mailbox_quota_bytes: u64,
        /// With --mailbox: most sealed media bytes kept for one device (files its senders
        /// could not hand it; a file that would go over is refused whole).
        #[arg(long, value_name = "BYTES", default_value_t = kith_engine::MAILBOX_MEDIA_BYTES)]
        mailbox_media_bytes: u64,
        /// With --mailbox: allow push endpoints on loopback, private or link-local addresses
        /// (for tests and LAN-only setups; otherwise refused to prevent request forgery).
        #[arg(long)]
        push_allow_private: bool,
        /// With --mailbox: allow push endpoints over plain http.
        #[arg(long)]
        push_allow_http: bool,
        /// With --mailbox: only devices that present this invite token may register (8 to
        /// 256 characters; repeatable). Also read from KITH_MAILBOX_TOKENS (comma-separated),
        /// which keeps tokens out of the process list. Without any, registration is open.
        #[arg(
            long = "mailbox-token",
            value_name = "TOKEN",
            env = "KITH_MAILBOX_TOKENS",
            value_delimiter = ',',
            hide_env_values = true
        )]
        mailbox_token: Vec<String>,
        /// With --mailbox: most devices served at once.
        #[arg(long, value_name = "N", default_value_t = kith_engine::MAILBOX_MAX_DEVICES)]
        mailbox_max_devices: usize,
        /// With --mailbox: most devices of one identity served at once.
        #[arg(long, value_name = "N", default_value_t = kith_engine::MAILBOX_DEVICES_PER_IDENTITY)]
        mailbox_devices_per_identity: usize,
        /// With --mailbox: most group topics one device may have kept that no other device
        /// watches.
        #[arg(long, value_name = "N", default_value_t = kith_engine::MAILBOX_TOPICS_PER_DEVICE)]
        mailbox_topics_per_device: usize,
        /// Requests one peer may make a minute; more are answered busy, and a peer far over
        /// it is blocked for a while.
        #[arg(long, value_name = "N", default_value_t = kith_engine::net_limits::REQUESTS_PER_MINUTE)]
        requests_per_minute: u32,
        /// Requests of one connection open at once.
        #[arg(long, value_name = "N", default_value_t = kith_engine::net_limits::REQUEST_STREAMS)]
        request_streams: usize,
        /// DHT records held for others, in all.
        #[arg(long, value_name = "N", default_value_t = kith_engine::net_limits::DHT_RECORDS)]
        dht_records: usize,
        /// DHT records one peer may put here an hour.
        #[arg(long, value_name = "N", default_value_t = kith_engine::net_limits::DHT_PUTS_PER_HOUR)]
        dht_puts_per_hour: u32,
        /// The address calls' media binds: `0.0.0.0` (every interface but loopback) or one
        /// address, such as 127.0.0.1 for calls between nodes on one machine.
        #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
        call_bind: std::net::IpAddr,
        /// How long a call rings before it counts as missed or unanswered, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 45)]
        ring_timeout: u64,
        /// Tests only: how long stories show on this node, in seconds (24 hours if unset).
        #[arg(long, value_name = "SECS", hide = true)]
        story_lifetime_secs: Option<u64>,
    },
    /// Show this node's contact code and addresses.
    Id,
    /// Manage contacts.
    #[command(subcommand)]
    Contacts(ContactsCmd),
    /// Manage the mailboxes that keep messages for you while you are offline.
    #[command(subcommand)]
    Mailbox(MailboxCmd),
    /// Push wake-ups: with no subcommand, show the endpoint's host and each mailbox's answer.
    Push {
        #[command(subcommand)]
        cmd: Option<PushCmd>,
    },
    /// Send a text message to a contact, or with --group to a group.
    #[command(override_usage = "kith send NAME TEXT\n       kith send --group GROUP TEXT")]
    Send {
        /// Send to this group (its name or a 4+ digit prefix of its id) instead.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// The contact's name (with --group: the text; with --group and a file: nothing).
        #[arg(value_name = "NAME", required_unless_present_any = ["group"])]
        name: Option<String>,
        /// The text.
        #[arg(value_name = "TEXT")]
        text: Option<String>,
        /// Answer this message (its id); it is shown quoted.
        #[arg(long, value_name = "ID")]
        reply_to: Option<String>,
        /// Send this file (up to 2 GiB): a photo, video or document.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["text", "voice"])]
        file: Option<std::path::PathBuf>,
        /// Send this recording (Opus in Ogg) as a voice note.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["text", "file"])]
        voice: Option<std::path::PathBuf>,
        /// A caption for --file.
        #[arg(long, value_name = "TEXT", requires = "file")]
        caption: Option<String>,
    },
    /// Write the file of a message somewhere (downloading it first if needed).
    Save {
        /// The message id (as `kith history` shows it).
        id: String,
        /// Where to write it (a file, or a folder to put it in by its name); default: the
        /// current folder.
        #[arg(long, value_name = "PATH")]
        to: Option<std::path::PathBuf>,
        /// Write the photo's thumbnail instead of the file.
        #[arg(long)]
        thumbnail: bool,
    },
    /// Download the file of a message now (one that did not download by itself).
    Download {
        /// The message id.
        id: String,
    },
    /// Files sent and received: with no subcommand, list them with sizes and states.
    Media {
        #[command(subcommand)]
        cmd: Option<MediaCmd>,
    },
    /// Show the conversation with a contact, or with --group a group's.
    History {
        /// The contact's name.
        #[arg(required_unless_present = "group", conflicts_with = "group")]
        name: Option<String>,
        /// Show this group (its name or a 4+ digit prefix of its id) instead.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// How many of the latest messages.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Group chats: create, change, leave (see also `kith groups`, `kith send --group`).
    ///
    /// GROUP is a group's name, or a unique prefix (4+ hex digits) of its id as `kith groups`
    /// shows it.
    #[command(subcommand)]
    Group(GroupCmd),
    /// List your groups: id prefix, name, members, whether you are an admin, unread.
    Groups,
    /// Who has one of your group messages, and who read it, with times.
    Receipts {
        /// The message id (as `kith send --group` printed it).
        id: String,
    },
    /// Mark a conversation read (the contact sees "read").
    Read {
        /// The contact's name.
        name: String,
    },
    /// Stream incoming messages and state changes.
    Watch,
    /// Show the safety number to compare with a contact.
    Verify {
        /// The contact's name.
        name: String,
    },
    /// Show connections and the outbox size; `kith status post|list|view|delete|privacy`:
    /// status updates (stories) your contacts see for 24 hours.
    Status {
        #[command(subcommand)]
        story: Option<crate::stories::StatusCmd>,
    },
    /// Show a contact (or with `--group`, a group) that you are typing (it disappears by
    /// itself after a few seconds).
    Typing {
        /// The contact's name (with `--group`, the group's name or id).
        name: String,
        /// Show the members of the group NAME that you are typing there.
        #[arg(long)]
        group: bool,
        /// Recording audio instead of typing.
        #[arg(long, conflicts_with = "stop")]
        recording: bool,
        /// Stopped typing.
        #[arg(long)]
        stop: bool,
    },
    /// Your profile: with no subcommand, show it.
    Profile {
        #[command(subcommand)]
        cmd: Option<ProfileCmd>,
    },
    /// Who sees your last seen, online status and photo, and read receipts: with no
    /// subcommand, show the settings.
    Privacy {
        #[command(subcommand)]
        cmd: Option<PrivacyCmd>,
    },
    /// Block a contact: their messages are dropped without notice and they see nothing of
    /// you (no online, last seen, typing or profile).
    Block {
        /// The contact's name.
        name: String,
    },
    /// Unblock a contact.
    Unblock {
        /// The contact's name.
        name: String,
    },
    /// With no name: the full-screen chat (as `kith` alone). With a name: a line-mode
    /// conversation for scripts and plain terminals: shows it, marks it read, prints new
    /// messages as they arrive and sends each line you type (`/quit` or Ctrl-D to leave).
    Chat {
        /// The contact's name (line mode).
        name: Option<String>,
        /// Full screen: also take the mouse (wheel scrolls).
        #[arg(long, conflicts_with = "name")]
        mouse: bool,
    },
    #[command(flatten)]
    Calls(crate::calls::CallCmd),
    /// Encrypted backups: create, restore, schedule.
    #[command(subcommand)]
    Backup(crate::backup_cmd::BackupCmd),
    /// On a new device (a fresh data directory, daemon running): show a one-time code to
    /// link it to your identity, and wait until a linked device approves it.
    Link {
        /// This device's name among your devices.
        #[arg(long)]
        name: Option<String>,
        /// Exit once linked, without waiting for the history (`kith devices history`
        /// shows it later).
        #[arg(long)]
        no_wait: bool,
    },
    /// Your devices; `approve CODE` links a new one, `remove NAME` removes one.
    Devices {
        #[command(subcommand)]
        cmd: Option<crate::devices_cmd::DevicesCmd>,
    },
    /// Protect the key file (and so the store, sealed at rest) with a passphrase.
    #[command(subcommand)]
    Passphrase(crate::passphrase_cmd::PassphraseCmd),
    /// Save a contact's profile photo (kept sealed at rest) to a new file.
    Photo {
        /// The contact.
        contact: String,
        /// Where to write it (a new file).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Print a shell completion script (e.g. `kith completions bash > ~/.local/share/bash-completion/completions/kith`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `kith man > ~/.local/share/man/man1/kith.1`.
    Man,
    /// Search your history: ranked matches with snippets (every word must match, or
    /// `a OR b`; "phrases", -exclusions).
    Search {
        /// What to look for.
        text: String,
        /// Only the chat with this contact.
        #[arg(long, value_name = "NAME", conflicts_with = "group")]
        chat: Option<String>,
        /// Only this group.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Most results.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only group messages that name you (`kith mentions`).
        #[arg(long)]
        mentions: bool,
    },
    /// The group messages that name you (`@name`), newest first.
    Mentions {
        /// Most results.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// React to a message (one reaction per person; a new one replaces yours).
    React {
        /// The message id (as `kith history` shows it).
        id: String,
        /// The emoji.
        #[arg(required_unless_present = "remove")]
        emoji: Option<String>,
        /// Take your reaction back.
        #[arg(long, conflicts_with = "emoji")]
        remove: bool,
    },
    /// Edit one of your messages (within 15 minutes of sending; shown "edited").
    Edit {
        /// The message id.
        id: String,
        /// The new text.
        text: String,
    },
    /// Delete a message here, or with --everyone one of yours for everyone (within 2 days).
    Delete {
        /// The message id.
        id: String,
        /// For everyone: a tombstone replaces it on every device and member.
        #[arg(long)]
        everyone: bool,
    },
    /// Forward a message to a contact, or with --group to a group.
    Forward {
        /// The message id.
        id: String,
        /// The contact's name.
        #[arg(required_unless_present = "group", conflicts_with = "group")]
        name: Option<String>,
        /// Forward to this group instead.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
    },
    /// Star a message (--off to unstar).
    Star {
        /// The message id.
        id: String,
        /// Take the star off.
        #[arg(long)]
        off: bool,
    },
    /// Pin a message in its chat (--off to unpin).
    Pin {
        /// The message id.
        id: String,
        /// Unpin.
        #[arg(long)]
        off: bool,
    },
    /// Archive a chat (--off to unarchive).
    Archive {
        /// The contact's name.
        #[arg(required_unless_present = "group", conflicts_with = "group")]
        name: Option<String>,
        /// A group instead.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Unarchive.
        #[arg(long)]
        off: bool,
    },
    /// Mute a chat (--off to unmute).
    Mute {
        /// The contact's name.
        #[arg(required_unless_present = "group", conflicts_with = "group")]
        name: Option<String>,
        /// A group instead.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Unmute.
        #[arg(long)]
        off: bool,
    },
    /// Disappearing messages in a chat: off, 5m, 1h, 1d, 7d or 90d (the other side gets
    /// the setting too).
    #[command(
        override_usage = "kith disappear NAME TIMER\n       kith disappear --group GROUP TIMER"
    )]
    Disappear {
        /// Set it for this group instead.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// The contact's name (with --group: the timer).
        #[arg(value_name = "NAME")]
        name: String,
        /// off, 5m, 1h, 1d, 7d or 90d.
        #[arg(value_name = "TIMER")]
        timer: Option<String>,
    },
}

/// `kith group …`.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupCmd {
    /// Create a group with some contacts; you are its first admin.
    Create {
        /// The group's name.
        name: String,
        /// Contacts to add, comma-separated (more can be added later).
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        members: Vec<String>,
    },
    /// Add a contact to a group (admins only).
    Add {
        /// The group.
        group: String,
        /// The contact's name.
        contact: String,
    },
    /// Remove a member (admins only); they cannot read what is sent afterwards.
    Remove {
        /// The group.
        group: String,
        /// The member's name.
        contact: String,
    },
    /// Make a member an admin (admins only).
    Promote {
        /// The group.
        group: String,
        /// The member's name.
        contact: String,
    },
    /// Make an admin a plain member (admins only).
    Demote {
        /// The group.
        group: String,
        /// The member's name.
        contact: String,
    },
    /// Rename a group (admins only).
    Rename {
        /// The group.
        group: String,
        /// The new name.
        name: String,
    },
    /// Set a group's description (admins only).
    Describe {
        /// The group.
        group: String,
        /// The description.
        text: String,
    },
    /// Leave a group (it stays listed until you delete it).
    Leave {
        /// The group.
        group: String,
    },
    /// Forget a group you left or were removed from.
    Delete {
        /// The group.
        group: String,
    },
    /// Show a group: id, description, members (admins marked).
    Info {
        /// The group.
        group: String,
    },
    /// Mark a group read (the senders see "read by").
    Read {
        /// The group.
        group: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MailboxCmd {
    /// Register with a mailbox node: its contact code (from `kith id` on it) or an address
    /// ending in /p2p/<peer id>.
    Add {
        /// The mailbox node's contact code or /p2p/ address.
        code: String,
        /// An invite token, if the mailbox's operator gave you one.
        #[arg(long)]
        token: Option<String>,
    },
    /// List your mailboxes.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PushCmd {
    /// Set the push endpoint (UnifiedPush URL) your mailboxes wake this device through.
    Set {
        /// The endpoint URL (https; it is kept secret and never logged).
        url: String,
    },
    /// Stop push wake-ups.
    Clear,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCmd {
    /// Change your name, about text or photo; your contacts get it at once.
    Set {
        /// Your display name.
        #[arg(long)]
        name: Option<String>,
        /// A line about you.
        #[arg(long)]
        about: Option<String>,
        /// A photo: a PNG, JPEG or WebP file of up to 256 KiB.
        #[arg(long, value_name = "FILE", conflicts_with = "no_avatar")]
        avatar: Option<PathBuf>,
        /// Remove your photo.
        #[arg(long)]
        no_avatar: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PrivacyCmd {
    /// Change one setting: last-seen, online or profile-photo to everyone, contacts or
    /// nobody; read-receipts to on or off (off: you neither send nor see them).
    Set {
        /// last-seen, online, profile-photo or read-receipts.
        key: String,
        /// everyone, contacts or nobody; on or off.
        value: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContactsCmd {
    /// Add a contact from their code (`kith id` on their side).
    Add {
        /// Their contact code.
        code: String,
        /// The name to use for them.
        #[arg(long)]
        name: String,
    },
    /// Remove a contact (undelivered messages to them are dropped; history stays).
    Remove {
        /// The contact's name.
        name: String,
    },
    /// List contacts.
    List,
}

/// `kith media` subcommands.
#[derive(Debug, Subcommand)]
pub enum MediaCmd {
    /// Delete the received files of a conversation (they can be downloaded again).
    Clear {
        /// The contact's name.
        chat: String,
    },
    /// Files up to this size (bytes, or with K, M or G) download by themselves; photos and
    /// voice notes always do.
    AutoDownload {
        /// The size.
        size: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The command definition is consistent (clap's own checks: no two commands or flags
    /// with one name, valid defaults): a merge that gives two commands one name fails here,
    /// not at the user's first `kith`.
    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
