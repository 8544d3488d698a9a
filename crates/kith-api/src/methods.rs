//! The command model: each method's name, params, result and implementation, defined once
//! and used by both the JSON-RPC server and the CLI.

use std::future::Future;

use kith_engine::{
    ContactView, EngineError, EngineHandle, GroupChange, GroupItemView, GroupSummary, GroupView,
    MailboxView, MessageView, NodeInfo, NodeStatus, PrivacyView, ProfileView, PushView,
    ReceiptsView, Sent, Verification,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One API method.
pub trait Method {
    /// The JSON-RPC method name.
    const NAME: &'static str;
    /// Its params.
    type Params: Serialize + DeserializeOwned + std::marker::Send;
    /// Its result.
    type Output: Serialize + DeserializeOwned + std::marker::Send;
    /// Serves it.
    fn call(
        engine: &EngineHandle,
        params: Self::Params,
    ) -> impl Future<Output = Result<Self::Output, EngineError>> + std::marker::Send;
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

/// `id`: this node's contact code, peer id and addresses.
#[derive(Debug)]
pub struct Id;
impl Method for Id {
    const NAME: &'static str = "id";
    type Params = NoParams;
    type Output = NodeInfo;
    async fn call(e: &EngineHandle, _: NoParams) -> Result<NodeInfo, EngineError> {
        e.info().await
    }
}

/// Params of `contacts.add`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddContactParams {
    /// The contact code.
    pub code: String,
    /// The name to file it under.
    pub name: String,
}

/// `contacts.add`: add a contact from their code.
#[derive(Debug)]
pub struct ContactsAdd;
impl Method for ContactsAdd {
    const NAME: &'static str = "contacts.add";
    type Params = AddContactParams;
    type Output = ContactView;
    async fn call(e: &EngineHandle, p: AddContactParams) -> Result<ContactView, EngineError> {
        e.add_contact(p.code, p.name).await
    }
}

/// Params of `contacts.remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveContactParams {
    /// The contact's name.
    pub name: String,
}

/// `contacts.remove`: remove a contact with its devices, sessions and undelivered messages;
/// the conversation history stays.
#[derive(Debug)]
pub struct ContactsRemove;
impl Method for ContactsRemove {
    const NAME: &'static str = "contacts.remove";
    type Params = RemoveContactParams;
    type Output = ContactView;
    async fn call(e: &EngineHandle, p: RemoveContactParams) -> Result<ContactView, EngineError> {
        e.remove_contact(p.name).await
    }
}

/// `contacts.list`: every contact.
#[derive(Debug)]
pub struct ContactsList;
impl Method for ContactsList {
    const NAME: &'static str = "contacts.list";
    type Params = NoParams;
    type Output = Vec<ContactView>;
    async fn call(e: &EngineHandle, _: NoParams) -> Result<Vec<ContactView>, EngineError> {
        e.contacts().await
    }
}

/// Params of `send`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendParams {
    /// The contact's name.
    pub to: String,
    /// The text.
    pub text: String,
}

/// `send`: queue a text message; returns its id once it is durably queued.
#[derive(Debug)]
pub struct Send;
impl Method for Send {
    const NAME: &'static str = "send";
    type Params = SendParams;
    type Output = Sent;
    async fn call(e: &EngineHandle, p: SendParams) -> Result<Sent, EngineError> {
        e.send(p.to, p.text).await
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

/// `history`: the latest messages with a contact, oldest first.
#[derive(Debug)]
pub struct History;
impl Method for History {
    const NAME: &'static str = "history";
    type Params = HistoryParams;
    type Output = Vec<MessageView>;
    async fn call(e: &EngineHandle, p: HistoryParams) -> Result<Vec<MessageView>, EngineError> {
        e.history(p.with, p.limit.min(MAX_HISTORY)).await
    }
}

/// Result of `read`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadResult {
    /// How many messages were newly marked read.
    pub marked: usize,
}

/// `read`: mark a conversation read and send read receipts.
#[derive(Debug)]
pub struct Read;
impl Method for Read {
    const NAME: &'static str = "read";
    type Params = WithContact;
    type Output = ReadResult;
    async fn call(e: &EngineHandle, p: WithContact) -> Result<ReadResult, EngineError> {
        e.mark_read(p.with)
            .await
            .map(|marked| ReadResult { marked })
    }
}

/// `verify`: the safety number with a contact.
#[derive(Debug)]
pub struct Verify;
impl Method for Verify {
    const NAME: &'static str = "verify";
    type Params = WithContact;
    type Output = Verification;
    async fn call(e: &EngineHandle, p: WithContact) -> Result<Verification, EngineError> {
        e.verify(p.with).await
    }
}

/// `status`: connected peers and outbox size.
#[derive(Debug)]
pub struct Status;
impl Method for Status {
    const NAME: &'static str = "status";
    type Params = NoParams;
    type Output = NodeStatus;
    async fn call(e: &EngineHandle, _: NoParams) -> Result<NodeStatus, EngineError> {
        e.status().await
    }
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

/// `mailbox.add`: register this device with a mailbox, which then keeps envelopes for it
/// while it is offline; the user record in the DHT lists it for senders.
#[derive(Debug)]
pub struct MailboxAdd;
impl Method for MailboxAdd {
    const NAME: &'static str = "mailbox.add";
    type Params = AddMailboxParams;
    type Output = MailboxView;
    async fn call(e: &EngineHandle, p: AddMailboxParams) -> Result<MailboxView, EngineError> {
        e.add_mailbox(p.code, p.token).await
    }
}

/// `mailbox.list`: the mailboxes this device is registered with.
#[derive(Debug)]
pub struct MailboxList;
impl Method for MailboxList {
    const NAME: &'static str = "mailbox.list";
    type Params = NoParams;
    type Output = Vec<MailboxView>;
    async fn call(e: &EngineHandle, _: NoParams) -> Result<Vec<MailboxView>, EngineError> {
        e.mailboxes().await
    }
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

/// `push.set`: set this device's push endpoint (UnifiedPush style); it is stored and sent to
/// every mailbox, which POSTs a content-free wake-up to it when mail arrives while this
/// device is away. Fails if a mailbox refuses it.
#[derive(Debug)]
pub struct PushSet;
impl Method for PushSet {
    const NAME: &'static str = "push.set";
    type Params = SetPushParams;
    type Output = PushView;
    async fn call(e: &EngineHandle, p: SetPushParams) -> Result<PushView, EngineError> {
        e.set_push(Some(p.endpoint)).await
    }
}

/// `push.clear`: remove the push endpoint here and at every mailbox.
#[derive(Debug)]
pub struct PushClear;
impl Method for PushClear {
    const NAME: &'static str = "push.clear";
    type Params = NoParams;
    type Output = PushView;
    async fn call(e: &EngineHandle, _: NoParams) -> Result<PushView, EngineError> {
        e.set_push(None).await
    }
}

/// `push.get`: whether a push endpoint is set (its host only) and what each mailbox answered.
#[derive(Debug)]
pub struct PushGet;
impl Method for PushGet {
    const NAME: &'static str = "push.get";
    type Params = NoParams;
    type Output = PushView;
    async fn call(e: &EngineHandle, _: NoParams) -> Result<PushView, EngineError> {
        e.push().await
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

/// Result of methods that only succeed or fail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    /// Always true.
    pub ok: bool,
}

/// `typing`: show a contact that you are typing (or recording, or stopped). Sent only to
/// their connected devices, never stored; it expires on their side after a few seconds.
#[derive(Debug)]
pub struct Typing;
impl Method for Typing {
    const NAME: &'static str = "typing";
    type Params = TypingParams;
    type Output = Done;
    async fn call(e: &EngineHandle, p: TypingParams) -> Result<Done, EngineError> {
        e.typing(p.with, &p.state).await.map(|()| Done { ok: true })
    }
}

/// `profile.get`: your profile.
#[derive(Debug)]
pub struct ProfileGet;
impl Method for ProfileGet {
    const NAME: &'static str = "profile.get";
    type Params = NoParams;
    type Output = ProfileView;
    async fn call(e: &EngineHandle, _: NoParams) -> Result<ProfileView, EngineError> {
        e.profile().await
    }
}

/// Params of `profile.set`; each part given replaces the current one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
}

/// `profile.set`: change your profile; contacts get it at once (or when next connected).
#[derive(Debug)]
pub struct ProfileSet;
impl Method for ProfileSet {
    const NAME: &'static str = "profile.set";
    type Params = SetProfileParams;
    type Output = ProfileView;
    async fn call(e: &EngineHandle, p: SetProfileParams) -> Result<ProfileView, EngineError> {
        let avatar = match (p.avatar, p.remove_avatar) {
            (Some(_), true) => {
                return Err(EngineError::BadSetting(
                    "give a photo or remove it, not both".into(),
                ));
            }
            (Some(path), false) => Some(Some(read_photo(&path).await?)),
            (None, true) => Some(None),
            (None, false) => None,
        };
        e.set_profile(p.name, p.about, avatar).await
    }
}

/// Reads a photo file, refusing anything over the photo limit without reading it all.
async fn read_photo(path: &std::path::Path) -> Result<Vec<u8>, EngineError> {
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

/// `privacy.get`: who sees what.
#[derive(Debug)]
pub struct PrivacyGet;
impl Method for PrivacyGet {
    const NAME: &'static str = "privacy.get";
    type Params = NoParams;
    type Output = PrivacyView;
    async fn call(e: &EngineHandle, _: NoParams) -> Result<PrivacyView, EngineError> {
        e.privacy().await
    }
}

/// Params of `privacy.set`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetPrivacyParams {
    /// `last-seen`, `online`, `profile-photo` or `read-receipts`.
    pub key: String,
    /// `everyone`, `contacts` or `nobody` (`on` or `off` for read receipts).
    pub value: String,
}

/// `privacy.set`: change one privacy setting.
#[derive(Debug)]
pub struct PrivacySet;
impl Method for PrivacySet {
    const NAME: &'static str = "privacy.set";
    type Params = SetPrivacyParams;
    type Output = PrivacyView;
    async fn call(e: &EngineHandle, p: SetPrivacyParams) -> Result<PrivacyView, EngineError> {
        e.set_privacy(p.key, p.value).await
    }
}

/// Params naming a contact to block or unblock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockParams {
    /// The contact's name.
    pub name: String,
}

/// `block`: block a contact: their messages are dropped, they see nothing of you.
#[derive(Debug)]
pub struct Block;
impl Method for Block {
    const NAME: &'static str = "block";
    type Params = BlockParams;
    type Output = ContactView;
    async fn call(e: &EngineHandle, p: BlockParams) -> Result<ContactView, EngineError> {
        e.block(p.name, true).await
    }
}

/// `unblock`: unblock a contact.
#[derive(Debug)]
pub struct Unblock;
impl Method for Unblock {
    const NAME: &'static str = "unblock";
    type Params = BlockParams;
    type Output = ContactView;
    async fn call(e: &EngineHandle, p: BlockParams) -> Result<ContactView, EngineError> {
        e.block(p.name, false).await
    }
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

/// `group.create`: create a group with these contacts; you are its first admin.
#[derive(Debug)]
pub struct GroupCreate;
impl Method for GroupCreate {
    const NAME: &'static str = "group.create";
    type Params = GroupCreateParams;
    type Output = GroupView;
    async fn call(e: &EngineHandle, p: GroupCreateParams) -> Result<GroupView, EngineError> {
        e.group_create(p.name, p.members).await
    }
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

/// One method per kind of group change: each has its own params and returns the group.
macro_rules! group_change {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $params:ty, |$p:ident| $change:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $ty;
        impl Method for $ty {
            const NAME: &'static str = $name;
            type Params = $params;
            type Output = GroupView;
            async fn call(e: &EngineHandle, $p: $params) -> Result<GroupView, EngineError> {
                let change = $change;
                e.group_change($p.group, change).await
            }
        }
    };
}

group_change!(
    /// `group.add`: add a contact to a group (admins only).
    GroupAdd, "group.add", GroupMemberParams, |p| GroupChange::Add(p.member.clone())
);
group_change!(
    /// `group.remove`: remove a member (admins only); the group's keys are renewed.
    GroupRemove, "group.remove", GroupMemberParams, |p| GroupChange::Remove(p.member.clone())
);
group_change!(
    /// `group.promote`: make a member an admin (admins only).
    GroupPromote, "group.promote", GroupMemberParams, |p| GroupChange::Promote(p.member.clone())
);
group_change!(
    /// `group.demote`: make an admin a plain member (admins only).
    GroupDemote, "group.demote", GroupMemberParams, |p| GroupChange::Demote(p.member.clone())
);
group_change!(
    /// `group.rename`: rename a group (admins only).
    GroupRename, "group.rename", GroupRenameParams, |p| GroupChange::Rename(p.name.clone())
);
group_change!(
    /// `group.describe`: set a group's description (admins only).
    GroupDescribe, "group.describe", GroupDescribeParams, |p| GroupChange::Describe(p.text.clone())
);
group_change!(
    /// `group.leave`: leave a group.
    GroupLeave, "group.leave", GroupParams, |p| GroupChange::Leave
);
group_change!(
    /// `group.delete`: forget a group you left or were removed from.
    GroupDelete, "group.delete", GroupParams, |p| GroupChange::Delete
);

/// `groups`: the groups you are in, or were in and have not deleted.
#[derive(Debug)]
pub struct Groups;
impl Method for Groups {
    const NAME: &'static str = "groups";
    type Params = NoParams;
    type Output = Vec<GroupSummary>;
    async fn call(e: &EngineHandle, _: NoParams) -> Result<Vec<GroupSummary>, EngineError> {
        e.groups().await
    }
}

/// `group.info`: one group's id, name, description and members.
#[derive(Debug)]
pub struct GroupInfo;
impl Method for GroupInfo {
    const NAME: &'static str = "group.info";
    type Params = GroupParams;
    type Output = GroupView;
    async fn call(e: &EngineHandle, p: GroupParams) -> Result<GroupView, EngineError> {
        e.group_info(p.group).await
    }
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

/// `group.send`: send a text to a group; returns its id once it is stored.
#[derive(Debug)]
pub struct GroupSend;
impl Method for GroupSend {
    const NAME: &'static str = "group.send";
    type Params = GroupSendParams;
    type Output = Sent;
    async fn call(e: &EngineHandle, p: GroupSendParams) -> Result<Sent, EngineError> {
        e.group_send(p.group, p.text).await
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

/// `group.history`: the latest messages of a group, oldest first, with membership changes
/// among them.
#[derive(Debug)]
pub struct GroupHistory;
impl Method for GroupHistory {
    const NAME: &'static str = "group.history";
    type Params = GroupHistoryParams;
    type Output = Vec<GroupItemView>;
    async fn call(
        e: &EngineHandle,
        p: GroupHistoryParams,
    ) -> Result<Vec<GroupItemView>, EngineError> {
        e.group_history(p.group, p.limit.min(MAX_HISTORY)).await
    }
}

/// `group.read`: mark a group read and send read receipts to the senders.
#[derive(Debug)]
pub struct GroupRead;
impl Method for GroupRead {
    const NAME: &'static str = "group.read";
    type Params = GroupParams;
    type Output = ReadResult;
    async fn call(e: &EngineHandle, p: GroupParams) -> Result<ReadResult, EngineError> {
        e.group_mark_read(p.group)
            .await
            .map(|marked| ReadResult { marked })
    }
}

/// Params of `receipts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptsParams {
    /// The id of one of your group messages.
    pub id: String,
}

/// `receipts`: who has one of your group messages, and who read it, with times.
#[derive(Debug)]
pub struct Receipts;
impl Method for Receipts {
    const NAME: &'static str = "receipts";
    type Params = ReceiptsParams;
    type Output = ReceiptsView;
    async fn call(e: &EngineHandle, p: ReceiptsParams) -> Result<ReceiptsView, EngineError> {
        e.receipts(p.id).await
    }
}

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
