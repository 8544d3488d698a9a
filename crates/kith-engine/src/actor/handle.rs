//! The handle callers hold: a cheap `Clone` that queues commands on the engine actor's
//! bounded channel and waits for their answers. `call::<C>` runs any command of the table
//! (`table.rs`); the named methods are shorthands for in-process callers.

use super::*;

pub(super) enum Cmd {
    /// A command of the table (`table.rs`).
    Call(Box<Call>),
    /// Test hooks for group ops (a misbehaving member).
    #[cfg(feature = "test-hooks")]
    Group(GroupCmd),
    Shutdown(oneshot::Sender<()>),
}

/// A cheap, cloneable handle to the engine actor.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    pub(super) tx: mpsc::Sender<Cmd>,
    pub(super) events: broadcast::Sender<Event>,
    /// What commands prepare with on the caller's side (the media directory).
    pub(super) ctx: crate::command::PrepareCtx,
    /// The node's metrics registry (libp2p's and Kith's).
    pub(super) metrics: std::sync::Arc<kith_net::metrics::Metrics>,
    #[cfg(feature = "test-hooks")]
    pub(super) faults: kith_store::Faults,
}

impl EngineHandle {
    /// The node's metrics (libp2p's and Kith's), for `/metrics`.
    pub fn metrics(&self) -> std::sync::Arc<kith_net::metrics::Metrics> {
        self.metrics.clone()
    }

    /// Runs one command of the table and waits for its answer.
    pub async fn call<C: Command>(&self, params: C::Params) -> Result<C::Output, EngineError> {
        let params = C::prepare(params, &self.ctx).await?;
        let (reply, rx) = oneshot::channel();
        let Queued(call) = C::queue(params, reply);
        self.tx
            .send(Cmd::Call(Box::new(call)))
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    // Shorthands for the commands that in-process callers (net-sim, tests, the bootstrap
    // node) use most; each is `call` with its params.

    /// The contact code and addresses.
    pub async fn info(&self) -> Result<NodeInfo, EngineError> {
        self.call::<cmd::Id>(NoParams {}).await
    }

    /// Adds (or updates) a contact from their code.
    pub async fn add_contact(
        &self,
        code: String,
        name: String,
    ) -> Result<ContactView, EngineError> {
        self.call::<cmd::ContactsAdd>(AddContactParams { code, name })
            .await
    }

    /// Removes a contact, its devices, sessions and undelivered messages (history stays).
    pub async fn remove_contact(&self, name: String) -> Result<ContactView, EngineError> {
        self.call::<cmd::ContactsRemove>(RemoveContactParams { name })
            .await
    }

    /// Every contact.
    pub async fn contacts(&self) -> Result<Vec<ContactView>, EngineError> {
        self.call::<cmd::ContactsList>(NoParams {}).await
    }

    /// Queues a text message; returns once it is durably in the outbox.
    pub async fn send(&self, to: String, text: String) -> Result<Sent, EngineError> {
        self.call::<cmd::Send>(SendParams { to, text }).await
    }

    /// The last `limit` messages with a contact, oldest first.
    pub async fn history(
        &self,
        with: String,
        limit: usize,
    ) -> Result<Vec<MessageView>, EngineError> {
        self.call::<cmd::History>(HistoryParams { with, limit })
            .await
    }

    /// Marks a conversation read (sending read receipts); returns how many messages changed.
    pub async fn mark_read(&self, with: String) -> Result<usize, EngineError> {
        let r = self.call::<cmd::Read>(WithContact { with }).await?;
        Ok(r.marked)
    }

    /// The safety number with a contact.
    pub async fn verify(&self, with: String) -> Result<Verification, EngineError> {
        self.call::<cmd::Verify>(WithContact { with }).await
    }

    /// Connections and queue sizes.
    pub async fn status(&self) -> Result<NodeStatus, EngineError> {
        self.call::<cmd::Status>(NoParams {}).await
    }

    /// Registers this device with a mailbox (given by its contact code); returns once the
    /// mailbox accepted.
    pub async fn add_mailbox(
        &self,
        code: String,
        token: Option<String>,
    ) -> Result<MailboxView, EngineError> {
        self.call::<cmd::MailboxAdd>(AddMailboxParams { code, token })
            .await
    }

    /// Tells a contact's connected devices that this user is `typing`, `recording` or
    /// `stopped`. Never stored or sent through a mailbox; repeats within 2 s are dropped.
    pub async fn typing(&self, to: String, state: &str) -> Result<(), EngineError> {
        let state = state.to_string();
        self.call::<cmd::Typing>(TypingParams { with: to, state })
            .await
            .map(|_| ())
    }

    /// This user's profile.
    pub async fn profile(&self) -> Result<ProfileView, EngineError> {
        self.call::<cmd::ProfileGet>(NoParams {}).await
    }

    /// The privacy settings.
    pub async fn privacy(&self) -> Result<PrivacyView, EngineError> {
        self.call::<cmd::PrivacyGet>(NoParams {}).await
    }

    /// Changes one privacy setting (`last-seen`, `online`, `profile-photo`: everyone,
    /// contacts or nobody; `read-receipts`: on or off).
    pub async fn set_privacy(
        &self,
        key: String,
        value: String,
    ) -> Result<PrivacyView, EngineError> {
        self.call::<cmd::PrivacySet>(SetPrivacyParams { key, value })
            .await
    }

    /// Blocks (or unblocks) a contact.
    pub async fn block(&self, name: String, blocked: bool) -> Result<ContactView, EngineError> {
        if blocked {
            self.call::<cmd::Block>(BlockParams { name }).await
        } else {
            self.call::<cmd::Unblock>(BlockParams { name }).await
        }
    }

    /// Creates a group with these contacts; this user is its first admin.
    pub async fn group_create(
        &self,
        name: String,
        members: Vec<String>,
    ) -> Result<GroupView, EngineError> {
        self.call::<cmd::GroupCreate>(GroupCreateParams { name, members })
            .await
    }

    /// Changes a group (given by name or id prefix): members, admins, name, description;
    /// leaving; deleting a group one has left.
    pub async fn group_change(
        &self,
        group: String,
        change: GroupChange,
    ) -> Result<GroupView, EngineError> {
        let member = |member| GroupMemberParams {
            group: group.clone(),
            member,
        };
        match change {
            GroupChange::Add(m) => self.call::<cmd::GroupAdd>(member(m)).await,
            GroupChange::Remove(m) => self.call::<cmd::GroupRemove>(member(m)).await,
            GroupChange::Promote(m) => self.call::<cmd::GroupPromote>(member(m)).await,
            GroupChange::Demote(m) => self.call::<cmd::GroupDemote>(member(m)).await,
            GroupChange::Rename(name) => {
                self.call::<cmd::GroupRename>(GroupRenameParams { group, name })
                    .await
            }
            GroupChange::Describe(text) => {
                self.call::<cmd::GroupDescribe>(GroupDescribeParams { group, text })
                    .await
            }
            GroupChange::Leave => self.call::<cmd::GroupLeave>(GroupParams { group }).await,
            GroupChange::Delete => self.call::<cmd::GroupDelete>(GroupParams { group }).await,
        }
    }

    /// One group: members, admins, description.
    pub async fn group_info(&self, group: String) -> Result<GroupView, EngineError> {
        self.call::<cmd::GroupInfo>(GroupParams { group }).await
    }

    /// Sends a text to a group; returns once it is stored (it is published at once, and
    /// members who miss it fetch it from any member later).
    pub async fn group_send(&self, group: String, text: String) -> Result<Sent, EngineError> {
        self.call::<cmd::GroupSend>(GroupSendParams { group, text })
            .await
    }

    /// The last `limit` messages of a group, with membership changes among them.
    pub async fn group_history(
        &self,
        group: String,
        limit: usize,
    ) -> Result<Vec<GroupItemView>, EngineError> {
        self.call::<cmd::GroupHistory>(GroupHistoryParams { group, limit })
            .await
    }

    #[cfg(feature = "test-hooks")]
    async fn group<T>(&self, make: impl FnOnce(Reply<T>) -> GroupCmd) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Group(make(reply)))
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Sends a message action to a contact (`to`) or group as is, skipping this node's own
    /// rules (plays a hostile contact or member).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn test_chat_action(
        &self,
        to: Option<&str>,
        group: Option<&str>,
        action: kith_proto::chat::ChatAction,
    ) -> Result<(), EngineError> {
        let chat = crate::command::ChatParams {
            to: to.map(str::to_string),
            group: group.map(str::to_string),
        };
        self.group(|reply| GroupCmd::Chat {
            chat,
            action,
            reply,
        })
        .await
    }

    /// The ops in this node's log for a group (to replay them).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn test_group_ops(
        &self,
        group: &str,
    ) -> Result<Vec<kith_proto::group::GroupOp>, EngineError> {
        let group = group.to_string();
        self.group(|reply| GroupCmd::Ops { group, reply }).await
    }

    /// An op on the group's current heads signed by this node's identity, with no admin
    /// check (what a non-admin could make). Not inserted locally.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn test_sign_group_op(
        &self,
        group: &str,
        kind: kith_proto::group::OpKind,
    ) -> Result<kith_proto::group::GroupOp, EngineError> {
        let group = group.to_string();
        self.group(|reply| GroupCmd::Sign {
            group,
            parents: None,
            kind,
            reply,
        })
        .await
    }

    /// Like [`Self::test_sign_group_op`], naming these parents (made up, say) instead of the
    /// heads.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn test_sign_group_op_on(
        &self,
        group: &str,
        parents: Vec<kith_types::OpHash>,
        kind: kith_proto::group::OpKind,
    ) -> Result<kith_proto::group::GroupOp, EngineError> {
        let group = group.to_string();
        self.group(|reply| GroupCmd::Sign {
            group,
            parents: Some(parents),
            kind,
            reply,
        })
        .await
    }

    /// Sends these ops pairwise to every member device, as real ops are sent, without
    /// checking them or inserting them locally.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn test_push_group_ops(
        &self,
        group: &str,
        ops: Vec<kith_proto::group::GroupOp>,
    ) -> Result<(), EngineError> {
        let group = group.to_string();
        self.group(|reply| GroupCmd::Push { group, ops, reply })
            .await
    }

    /// Failures to inject into this engine's store (a write that fails fails its batch).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn test_store_faults(&self) -> &kith_store::Faults {
        &self.faults
    }

    /// The frame this node holds for (group, sender device (its own if `None`), seq),
    /// encoded.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn test_group_frame(
        &self,
        group: &str,
        sender: Option<kith_types::CurveKey>,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let group = group.to_string();
        self.group(|reply| GroupCmd::Frame {
            group,
            sender,
            seq,
            reply,
        })
        .await
    }

    /// The encoded frames this node holds aside for (group, sender device, seq): frames for
    /// a place held by one that has not opened, waiting for a key to decide.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn test_group_alts(
        &self,
        group: &str,
        sender: kith_types::CurveKey,
        seq: u64,
    ) -> Result<Vec<Vec<u8>>, EngineError> {
        let group = group.to_string();
        self.group(|reply| GroupCmd::Alts {
            group,
            sender,
            seq,
            reply,
        })
        .await
    }

    /// Stores an encoded frame as if it had been received and could not be opened yet (it
    /// waits for a key, and is not shown): this node then hands it on to members who catch
    /// up with it.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn test_plant_group_frame(
        &self,
        group: &str,
        frame: Vec<u8>,
    ) -> Result<(), EngineError> {
        let group = group.to_string();
        self.group(|reply| GroupCmd::Plant {
            group,
            frame,
            reply,
        })
        .await
    }

    /// Catches up on a group with this peer now.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub async fn test_group_sync(
        &self,
        group: &str,
        peer: kith_net::PeerId,
    ) -> Result<(), EngineError> {
        let group = group.to_string();
        self.group(|reply| GroupCmd::Sync { group, peer, reply })
            .await
    }

    /// A stream of events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Stops the engine after the work in hand is committed.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
