//! The command table: every command, declared once with the rule that serves it.
//!
//! Each entry names the command type, its JSON-RPC name, its params and result types, how
//! it runs, and the rule:
//!
//! - `read`: after the batch's commit, on the whole engine (`|engine, params|`); it may read
//!   the store and the network's state (and the presence settings do their own small writes).
//! - `write`: inside the batch's write transaction (`|state, tx, params, effects|`); the
//!   rule returns `Ok(answer)` or a store error that fails the whole batch (nothing in it is
//!   acknowledged). The answer goes out after the commit.
//! - `detached`: like `read`, but the rule is handed the reply (`|engine, params, reply|`)
//!   and answers it when it likes, from another thread if it wants: long work (a backup)
//!   that must not hold the engine up.
//! - `later`: like `write`, but the rule keeps the reply and answers it when a peer has
//!   (`|state, tx, params, reply, effects|`): registering with a mailbox, changing the push
//!   endpoint.
//!
//! From the table follow the public command types (`crate::command`), the engine's
//! command enum [`Call`], the read/write split in the actor's batch, and
//! [`for_each_command!`](crate::for_each_command), the list the API server dispatches on.
//!
//! To add a command: write its params and result types in `crate::command` (or reuse
//! some), its rule (a method of the core or engine it belongs to), and one entry here; then
//! the CLI arm in `node/src/cli.rs`.

use kith_store::WriteTx;

use super::groups::Now;
use super::{After, Engine, GroupChange, Reply, State, mailbox_from, reply};
use crate::command::*;
use crate::model::*;

/// Whether a command runs after the batch or inside its write transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// After the commit, on the whole engine.
    Read,
    /// Inside the batch's write transaction.
    Write,
}

macro_rules! kind_of {
    (read) => {
        Kind::Read
    };
    (write) => {
        Kind::Write
    };
    (later) => {
        Kind::Write
    };
    (detached) => {
        Kind::Read
    };
}

/// Runs one read rule (`$e` and `$p` bind the engine and the params for `$body`).
macro_rules! run_read {
    (read, [$e:ident, $p:ident], $body:expr, $eng:expr, $params:expr, $reply:expr) => {{
        let $e: &mut Engine = $eng;
        let $p = $params;
        let _ = $reply.send($body);
    }};
    (detached, [$e:ident, $p:ident, $r:ident], $body:expr, $eng:expr, $params:expr, $reply:expr) => {{
        let $e: &mut Engine = $eng;
        let $p = $params;
        let $r = $reply;
        $body
    }};
    ($other:ident, [$($arg:ident),*], $body:expr, $eng:expr, $params:expr, $reply:expr) => {{
        let _ = ($eng, $params);
        let _ = $reply.send(Err(EngineError::Internal("misrouted command".into())));
    }};
}

/// Runs one write rule in the batch's transaction.
macro_rules! run_write {
    (write, [$st:ident, $w:ident, $p:ident, $after:ident], $body:expr,
     $state:expr, $tx:expr, $params:expr, $reply:expr, $effects:expr) => {{
        let $st: &mut State = $state;
        let $w: &mut WriteTx<'_> = $tx;
        let $p = $params;
        let $after: &mut Vec<After> = $effects;
        let answer = $body?;
        $after.push(reply($reply, answer));
        Ok(())
    }};
    (later, [$st:ident, $w:ident, $p:ident, $r:ident, $after:ident], $body:expr,
     $state:expr, $tx:expr, $params:expr, $reply:expr, $effects:expr) => {{
        let $st: &mut State = $state;
        let $w: &mut WriteTx<'_> = $tx;
        let $p = $params;
        let $r = $reply;
        let $after: &mut Vec<After> = $effects;
        $body
    }};
    (detached, [$($arg:ident),*], $body:expr,
     $state:expr, $tx:expr, $params:expr, $reply:expr, $effects:expr) => {{
        let _ = ($state, $tx, $params, $reply, $effects);
        Err(Fatal::Bug("a detached command reached the write batch"))
    }};
    (read, [$($arg:ident),*], $body:expr,
     $state:expr, $tx:expr, $params:expr, $reply:expr, $effects:expr) => {{
        let _ = ($state, $tx, $params, $reply, $effects);
        Err(Fatal::Bug("a read command reached the write batch"))
    }};
}

macro_rules! commands {
    ($(
        $(#[doc = $doc:literal])*
        $kind:ident $ty:ident = $name:literal, $params:ty => $out:ty,
            |$($arg:ident),*| $body:expr;
    )*) => {
        /// The command types, one per entry of the table (re-exported by `crate::command`).
        pub mod list {
            use super::*;
            $(
                $(#[doc = $doc])*
                #[derive(Debug)]
                pub struct $ty;

                impl Command for $ty {
                    const NAME: &'static str = $name;
                    type Params = $params;
                    type Output = $out;

                    fn prepare(
                        p: $params,
                        ctx: &PrepareCtx,
                    ) -> impl ::core::future::Future<Output = Result<$params, EngineError>>
                           + ::core::marker::Send {
                        <$params as Prepare>::prepare(p, ctx.clone())
                    }

                    fn queue(p: $params, reply: Reply<$out>) -> Queued {
                        Queued(Call::$ty(p, reply))
                    }
                }
            )*
        }

        /// A command in the engine's queue: its params and the caller's reply channel.
        pub(crate) enum Call {
            $( $ty($params, Reply<$out>), )*
        }

        impl Call {
            /// Whether it runs after the batch or in its write transaction.
            pub(super) fn kind(&self) -> Kind {
                match self {
                    $( Call::$ty(..) => kind_of!($kind), )*
                }
            }

            /// Runs a read command on the engine and answers it.
            pub(super) fn read(self, engine: &mut Engine) {
                match self {
                    $( Call::$ty(p, r) => run_read!($kind, [$($arg),*], $body, engine, p, r), )*
                }
            }

            /// Runs a write command in the batch's transaction; the answer goes out after the
            /// commit.
            pub(super) fn write(
                self,
                state: &mut State,
                tx: &mut WriteTx<'_>,
                effects: &mut Vec<After>,
            ) -> Result<(), Fatal> {
                match self {
                    $( Call::$ty(p, r) =>
                        run_write!($kind, [$($arg),*], $body, state, tx, p, r, effects), )*
                }
            }
        }

        /// Calls `$callback!` with the list of every command type (the API server builds its
        /// method dispatch from it).
        #[macro_export]
        macro_rules! for_each_command {
            ($callback:ident) => {
                $callback!($($crate::command::$ty),*)
            };
        }
    };
}

/// Params that need work on the caller's side before they are queued (see
/// [`Command::prepare`]); nearly all need none.
pub(crate) trait Prepare: Sized + ::core::marker::Send + 'static {
    fn prepare(
        self,
        ctx: PrepareCtx,
    ) -> impl ::core::future::Future<Output = Result<Self, EngineError>> + ::core::marker::Send
    {
        let _ = ctx;
        async { Ok(self) }
    }
}

macro_rules! no_prepare {
    ($($t:ty),* $(,)?) => { $( impl Prepare for $t {} )* };
}

no_prepare!(
    NoParams,
    WithContact,
    AddContactParams,
    RemoveContactParams,
    SendParams,
    HistoryParams,
    AddMailboxParams,
    SetPushParams,
    TypingParams,
    SetPrivacyParams,
    BlockParams,
    GroupCreateParams,
    GroupParams,
    GroupMemberParams,
    GroupRenameParams,
    GroupDescribeParams,
    GroupSendParams,
    GroupHistoryParams,
    ReceiptsParams,
    CallParams,
    AnswerParams,
    CallIdParams,
    MuteParams,
    MessageParams,
    AutoDownloadParams,
    MediaClearParams,
    ChatSendParams,
    ForwardParams,
    ReactParams,
    EditParams,
    DeleteParams,
    MarkParams,
    ChatSetParams,
    SearchParams,
    StatusViewParams,
    StatusDeleteParams,
    StatusPrivacyParams,
    LinkStartParams,
    ApproveParams,
    DeviceNameParams,
);

// Group typing indicators (`actor/group_typing.rs`) and mentions (`actor/mentions.rs`).
no_prepare!(GroupTypingParams, MentionsParams);

// Saving a file sealed at rest (`actor/media_save.rs`).
no_prepare!(MediaSaveParams, ContactPhotoParams);

impl Prepare for SetProfileParams {
    /// Reads the photo the params name (bounded by the photo limit) on the caller's task.
    async fn prepare(mut self, _ctx: PrepareCtx) -> Result<Self, EngineError> {
        if let Some(path) = &self.avatar
            && !self.remove_avatar
        {
            self.photo = Some(read_photo(path).await?);
        }
        Ok(self)
    }
}

commands! {
    /// `id`: this node's contact code, peer id and addresses.
    read Id = "id", NoParams => NodeInfo,
        |e, _p| e.info();
    /// `contacts.add`: add a contact from their code.
    write ContactsAdd = "contacts.add", AddContactParams => ContactView,
        |st, w, p, after| st.add_contact_synced(w, &p.code, &p.name, after);
    /// `contacts.remove`: remove a contact with its devices, sessions and undelivered
    /// messages; the conversation history stays.
    write ContactsRemove = "contacts.remove", RemoveContactParams => ContactView,
        |st, w, p, after| st.remove_contact_synced(w, &p.name, after);
    /// `contacts.list`: every contact.
    read ContactsList = "contacts.list", NoParams => Vec<ContactView>,
        |e, _p| e.contacts();
    /// `send`: queue a text message; returns its id once it is durably queued.
    write Send = "send", SendParams => Sent,
        |st, w, p, after| st.send(w, &p.to, p.text, after);
    /// `history`: the latest messages with a contact, oldest first.
    read History = "history", HistoryParams => Vec<MessageView>,
        |e, p| e.history(&p.with, p.limit.min(MAX_HISTORY));
    /// `read`: mark a conversation read and send read receipts.
    write Read = "read", WithContact => ReadResult,
        |st, w, p, after| st
            .mark_read(w, &p.with, after)
            .map(|r| r.map(|marked| ReadResult { marked }));
    /// `verify`: the safety number with a contact.
    read Verify = "verify", WithContact => Verification,
        |e, p| e.verify(&p.with);
    /// `status`: connected peers and outbox size.
    read Status = "status", NoParams => NodeStatus,
        |e, _p| e.status();
    /// `mailbox.add`: register this device with a mailbox, which then keeps envelopes for
    /// it while it is offline; the user record in the DHT lists it for senders.
    later MailboxAdd = "mailbox.add", AddMailboxParams => MailboxView,
        |_st, _w, p, r, after| {
            match mailbox_from(p.code.trim()) {
                Ok(mailbox) => after.push(After::Register(mailbox, p.token, Some(r))),
                Err(e) => {
                    let _ = r.send(Err(e));
                }
            }
            Ok(())
        };
    /// `mailbox.list`: the mailboxes this device is registered with.
    read MailboxList = "mailbox.list", NoParams => Vec<MailboxView>,
        |e, _p| Ok(e.st.mailbox_views());
    /// `push.set`: set this device's push endpoint (UnifiedPush style); it is stored and
    /// sent to every mailbox, which POSTs a content-free wake-up to it when mail arrives
    /// while this device is away. Fails if a mailbox refuses it.
    later PushSet = "push.set", SetPushParams => PushView,
        |st, w, p, r, after| st.set_push_endpoint(w, Some(p.endpoint), r, after);
    /// `push.clear`: remove the push endpoint here and at every mailbox.
    later PushClear = "push.clear", NoParams => PushView,
        |st, w, _p, r, after| st.set_push_endpoint(w, None, r, after);
    /// `push.get`: whether a push endpoint is set (its host only) and what each mailbox
    /// answered.
    read PushGet = "push.get", NoParams => PushView,
        |e, _p| Ok(e.st.push_view());
    /// `typing`: show a contact that you are typing (or recording, or stopped). Sent only to
    /// their connected devices, never stored; it expires on their side after a few seconds.
    read Typing = "typing", TypingParams => Done,
        |e, p| e.typing_cmd(&p.with, &p.state).map(|()| Done { ok: true });
    /// `group.typing`: show the members of a group that you are typing (or recording, or
    /// stopped). Sent only to their connected devices, never stored; it expires on their
    /// side after a few seconds.
    read GroupTyping = "group.typing", GroupTypingParams => Done,
        |e, p| e.group_typing_cmd(&p.group, &p.state).map(|()| Done { ok: true });
    /// `profile.get`: your profile.
    read ProfileGet = "profile.get", NoParams => ProfileView,
        |e, _p| Ok(e.st.social.my_profile_view());
    /// `profile.set`: change your profile; contacts get it at once (or when next
    /// connected).
    read ProfileSet = "profile.set", SetProfileParams => ProfileView,
        |e, p| e.set_profile_cmd(p);
    /// `privacy.get`: who sees what.
    read PrivacyGet = "privacy.get", NoParams => PrivacyView,
        |e, _p| Ok(e.st.social.privacy.view());
    /// `privacy.set`: change one privacy setting.
    read PrivacySet = "privacy.set", SetPrivacyParams => PrivacyView,
        |e, p| e.set_privacy(&p.key, &p.value);
    /// `block`: block a contact: their messages are dropped, they see nothing of you.
    read Block = "block", BlockParams => ContactView,
        |e, p| e.block(&p.name, true);
    /// `unblock`: unblock a contact.
    read Unblock = "unblock", BlockParams => ContactView,
        |e, p| e.block(&p.name, false);
    /// `group.create`: create a group with these contacts; you are its first admin.
    write GroupCreate = "group.create", GroupCreateParams => GroupView,
        |st, w, p, after| st.group_create(w, &p.name, &p.members, Now::read(), after);
    /// `group.add`: add a contact to a group (admins only).
    write GroupAdd = "group.add", GroupMemberParams => GroupView,
        |st, w, p, after| st.group_change(w, &p.group, GroupChange::Add(p.member), Now::read(), after);
    /// `group.remove`: remove a member (admins only); the group's keys are renewed.
    write GroupRemove = "group.remove", GroupMemberParams => GroupView,
        |st, w, p, after| st.group_change(w, &p.group, GroupChange::Remove(p.member), Now::read(), after);
    /// `group.promote`: make a member an admin (admins only).
    write GroupPromote = "group.promote", GroupMemberParams => GroupView,
        |st, w, p, after| st.group_change(w, &p.group, GroupChange::Promote(p.member), Now::read(), after);
    /// `group.demote`: make an admin a plain member (admins only).
    write GroupDemote = "group.demote", GroupMemberParams => GroupView,
        |st, w, p, after| st.group_change(w, &p.group, GroupChange::Demote(p.member), Now::read(), after);
    /// `group.rename`: rename a group (admins only).
    write GroupRename = "group.rename", GroupRenameParams => GroupView,
        |st, w, p, after| st.group_change(w, &p.group, GroupChange::Rename(p.name), Now::read(), after);
    /// `group.describe`: set a group's description (admins only).
    write GroupDescribe = "group.describe", GroupDescribeParams => GroupView,
        |st, w, p, after| st.group_change(w, &p.group, GroupChange::Describe(p.text), Now::read(), after);
    /// `group.leave`: leave a group.
    write GroupLeave = "group.leave", GroupParams => GroupView,
        |st, w, p, after| st.group_change(w, &p.group, GroupChange::Leave, Now::read(), after);
    /// `group.delete`: forget a group you left or were removed from.
    write GroupDelete = "group.delete", GroupParams => GroupView,
        |st, w, p, after| st.group_change(w, &p.group, GroupChange::Delete, Now::read(), after);
    /// `groups`: the groups you are (or were) in, with unread counts.
    write Groups = "groups", NoParams => Vec<GroupSummary>,
        |st, w, _p, _after| st.group_list(w).map(Ok);
    /// `group.info`: one group's id, name, description and members.
    write GroupInfo = "group.info", GroupParams => GroupView,
        |st, w, p, _after| st.group_info(w, &p.group);
    /// `group.send`: send a text to a group; returns its id once it is stored.
    write GroupSend = "group.send", GroupSendParams => Sent,
        |st, w, p, after| st.group_send(w, &p.group, p.text, Now::read(), after);
    /// `group.history`: the latest messages of a group, oldest first, with membership
    /// changes among them.
    write GroupHistory = "group.history", GroupHistoryParams => Vec<GroupItemView>,
        |st, w, p, _after| st.group_history_view(w, &p.group, p.limit.min(MAX_HISTORY));
    /// `group.read`: mark a group read and send read receipts to the senders.
    write GroupRead = "group.read", GroupParams => ReadResult,
        |st, w, p, after| st
            .group_mark_read(w, &p.group, Now::read(), after)
            .map(|r| r.map(|marked| ReadResult { marked }));
    /// `receipts`: who has one of your group messages, and who read it, with times.
    write Receipts = "receipts", ReceiptsParams => ReceiptsView,
        |st, w, p, _after| st.receipts_view(w, &p.id);
    /// `call`: ring every device of a contact (`audio_in` / `audio_out`: WAV files instead
    /// of a microphone and a speaker).
    read Dial = "call", CallParams => CallView,
        |e, p| e.call_dial(p);
    /// `call.answer`: take the ringing call.
    read PickUp = "call.answer", AnswerParams => CallView,
        |e, p| e.call_answer(p);
    /// `call.decline`: refuse the ringing call; the caller sees "declined".
    read DeclineRing = "call.decline", CallIdParams => Done,
        |e, p| e.call_decline(p);
    /// `call.hangup`: end the call (or stop calling).
    read HangUp = "call.hangup", CallIdParams => Done,
        |e, p| e.call_hangup(p);
    /// `call.mute`: mute or unmute your sound in the call.
    read MuteSound = "call.mute", MuteParams => CallView,
        |e, p| e.call_mute(p.muted);
    /// `call.current`: the call going on, if any.
    read Ongoing = "call.current", NoParams => Option<CallView>,
        |e, _p| Ok(e.call_current());
    /// `calls`: the call history, newest first.
    read RecentCalls = "calls", NoParams => Vec<CallRecordView>,
        |e, _p| e.call_history();
    /// `send.file`: send a file (photo, video, document; a voice note with `voice`) with an
    /// optional caption; returns the message id once it is queued.
    write SendFile = "send.file", SendFileParams => Sent,
        |st, w, p, after| st.send_file(w, p, after);
    /// `group.send.file`: send a file to a group, sealed once: members fetch it from the
    /// sender or from each other.
    write GroupSendFile = "group.send.file", GroupSendFileParams => Sent,
        |st, w, p, after| st.group_send_file(w, p, Now::read(), after);
    /// `media.download`: download the file of a message now.
    write MediaDownload = "media.download", MessageParams => AttachmentView,
        |st, w, p, after| st.download(w, &p, after);
    /// `media.get`: the file of one message, with its state and path once it is here.
    read MediaGet = "media.get", MessageParams => AttachmentView,
        |e, p| e.media_get(&p);
    /// `media`: every file sent and received, with sizes and states.
    read MediaList = "media", NoParams => Vec<AttachmentView>,
        |e, _p| e.media_list();
    /// `media.clear`: delete the received files of a conversation; returns bytes freed.
    write MediaClear = "media.clear", MediaClearParams => u64,
        |st, w, p, _after| st.media_clear(w, &p.chat);
    /// `media.auto-download`: files up to this size download by themselves.
    write MediaAutoDownload = "media.auto-download", AutoDownloadParams => u64,
        |st, w, p, _after| st.set_auto_download(w, p.max_bytes);
    /// `media.save`: write a file that is here, opened (files are sealed at rest), to a new
    /// file; returns its size (`actor/media_save.rs`).
    detached MediaSave = "media.save", MediaSaveParams => u64,
        |e, p, r| e.media_save(p, r);
    /// `contact.photo`: write a contact's profile photo (sealed at rest) to a new file;
    /// returns its size (`actor/media_save.rs`).
    read ContactPhoto = "contact.photo", ContactPhotoParams => u64,
        |e, p| e.contact_photo(&p);

    // Message actions (issue 18): the rules are in `cores/chat`, the I/O in `actor/chat.rs`.
    /// `message.send`: a text to a contact (`to`) or group (`group`), optionally answering
    /// another message (`reply_to`).
    write MessageSend = "message.send", ChatSendParams => Sent,
        |st, w, p, after| st.chat_send(w, &p.chat, p.text, p.reply_to.as_deref(), false, after);
    /// `message.forward`: send a copy of a message to another chat, marked forwarded.
    write MessageForward = "message.forward", ForwardParams => Sent,
        |st, w, p, after| st.chat_forward(w, &p.id, &p.chat, after);
    /// `message.react`: react to a message (one reaction per person; empty takes it back).
    write MessageReact = "message.react", ReactParams => ActionResult,
        |st, w, p, after| st.chat_act(w, &p.id, |target, _| kith_proto::chat::ChatAction::React {
            target,
            emoji: p.emoji,
        }, after);
    /// `message.edit`: change the text of one of your messages (within 15 minutes).
    write MessageEdit = "message.edit", EditParams => ActionResult,
        |st, w, p, after| st.chat_act(w, &p.id, |target, at_ms| kith_proto::chat::ChatAction::Edit {
            target,
            text: p.text,
            at_ms,
        }, after);
    /// `message.delete`: delete a message here, or with `everyone` one of yours for
    /// everyone (within 2 days: a tombstone replaces it on every device and member).
    write MessageDelete = "message.delete", DeleteParams => ActionResult,
        |st, w, p, after| if p.everyone {
            st.chat_act(w, &p.id, |target, at_ms| kith_proto::chat::ChatAction::Delete {
                target,
                at_ms,
            }, after)
        } else {
            st.chat_mark(w, &p.id, "delete_for_me", true)
        };
    /// `message.mark`: star or pin a message (`mark`: star or pin), or take it off.
    write MessageMark = "message.mark", MarkParams => ActionResult,
        |st, w, p, _after| st.chat_mark(w, &p.id, &p.mark, p.on);
    /// `chat.set`: archive, mute, or set the disappearing timer of a chat (the timer goes
    /// to the other side too).
    write ChatSet = "chat.set", ChatSetParams => ChatSettingsView,
        |st, w, p, after| st.chat_set(w, &p, after);
    /// `search`: ranked matches in this node's history (tantivy), with snippets; in one
    /// chat when `to` or `group` is given.
    write Search = "search", SearchParams => Vec<SearchHitView>,
        |st, w, p, _after| st.search_cmd(w, &p);

    /// `mentions`: the group messages that name this user (`@name`), newest first.
    write Mentions = "mentions", MentionsParams => Vec<MentionView>,
        |st, w, p, _after| st.mentions_list(w, p.limit).map(Ok);

    // Status updates (stories): the rules are in `cores/stories`, the I/O in
    // `actor/stories.rs`.
    /// `status.post`: a story to the contacts the status privacy setting allows, for 24 h.
    write StatusPost = "status.post", StatusPostParams => StatusPosted,
        |st, w, p, after| st.status_post(w, p, after);
    /// `status.list`: this user's stories with their viewers, then the contacts' stories.
    read StatusList = "status.list", NoParams => Vec<StoryView>,
        |e, _p| e.status_list();
    /// `status.view`: a contact's stories, marked viewed (the views go back with read
    /// receipts on).
    write StatusView = "status.view", StatusViewParams => Vec<StoryView>,
        |st, w, p, after| st.status_view(w, &p.name, after);
    /// `status.delete`: take one of this user's stories back, here and at its audience.
    write StatusDelete = "status.delete", StatusDeleteParams => bool,
        |st, w, p, after| st.status_delete(w, &p.id, after);
    /// `status.privacy`: show or set who sees this user's stories.
    write StatusPrivacySet = "status.privacy", StatusPrivacyParams => StatusPrivacyView,
        |st, w, p, _after| st.status_privacy(w, p);

    /// `backup.create`: write an encrypted backup of this node (key file, store, media) to
    /// a file; the store is read from one snapshot while the node goes on.
    detached BackupCreate = "backup.create", BackupCreateParams => BackupDone,
        |e, p, r| e.backup_create(p, r);
    /// `backup.schedule`: make backups into a folder at an interval, keeping the newest
    /// few (an interval of 0 turns it off).
    write BackupSchedule = "backup.schedule", BackupScheduleParams => BackupScheduleView,
        |st, w, p, _after| st.backup_schedule(w, p);
    /// `backup.schedule.get`: the backup schedule and how its last run went.
    read BackupScheduleGet = "backup.schedule.get", NoParams => BackupScheduleView,
        |e, _p| Ok(e.backup_schedule_view());
    // Linked devices (issue 17): `actor/devices`.
    write LinkStart = "link.start", LinkStartParams => LinkView,
        |st, w, p, _after| st.link_start(w, p.name);
    read LinkStatus = "link.status", NoParams => LinkView,
        |e, _p| Ok(e.st.link_view());
    later DevicesApprove = "devices.approve", ApproveParams => LinkView,
        |st, w, p, r, after| st.link_approve(w, &p.code, p.history_days, r, after);
    later DevicesConfirm = "devices.confirm", NoParams => LinkView,
        |st, w, _p, r, after| st.link_confirm(w, r, after);
    read Devices = "devices", NoParams => Vec<DeviceView>,
        |e, _p| e.devices_view();
    write DevicesRemove = "devices.remove", DeviceNameParams => DeviceView,
        |st, w, p, after| st.remove_own_device(w, &p.name, after);
    /// `devices.history`: the history handed over at link time, as it comes (new device)
    /// or goes (approving device).
    read DevicesHistory = "devices.history", NoParams => HistoryProgressView,
        |e, _p| e.history_progress();
}
