//! Mentions in groups: the engine's side. The rule (which members a text names) is in
//! [`crate::cores::mentions`].
//!
//! - Sending (`group_post`): a text with an `@` is resolved against the names this user
//!   knows the members by; if it names any, it goes as
//!   [`GroupContent::Mentions`](kith_proto::groupwire::GroupContent) with their identities.
//! - Receiving (`open_frame`): a member that finds itself among them keeps a row in the
//!   store's mention table with the message; `kith history --group` and `kith groups` show
//!   the flag, and the `group_message` event carries it.
//! - `kith mentions`: the messages that name this user, newest first, without the ones
//!   deleted or expired since.

use kith_store::ChatRef;

use super::*;
use crate::command::MentionView;
use crate::cores::mentions::resolve;

/// Most mentions `kith mentions` lists at once.
pub const MAX_MENTIONS_LISTED: usize = 500;

impl State {
    /// The members of group `id` (other than this user) that `text` names.
    pub(super) fn mentions_in(
        &self,
        w: &WriteTx<'_>,
        id: &GroupId,
        text: &str,
    ) -> Result<Vec<IdentityKey>, Fatal> {
        if !text.contains('@') {
            return Ok(Vec::new());
        }
        let Some(state) = self.groups.states.get(id) else {
            return Ok(Vec::new());
        };
        let mut members = Vec::new();
        for m in state.members.iter().filter(|m| **m != self.me) {
            members.push((*m, self.member_name(w, m)?));
        }
        Ok(resolve(text, &members, &self.me))
    }

    /// `mentions`: the group messages that name this user, newest first.
    pub(super) fn mentions_list(
        &self,
        w: &WriteTx<'_>,
        limit: usize,
    ) -> Result<Vec<MentionView>, Fatal> {
        let mut out = Vec::new();
        for (group, id, _) in w.mentions(limit.min(MAX_MENTIONS_LISTED))? {
            let Some((_, m)) = w.group_message(id)? else {
                continue;
            };
            let meta = w.message_meta(&ChatRef::Group(group), id)?;
            if meta.is_some_and(|x| x.deleted || x.hidden || x.expired) {
                continue;
            }
            out.push(MentionView {
                group: self
                    .groups
                    .states
                    .get(&group)
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                group_id: group.to_hex(),
                id: MessageId(id).to_string(),
                from: self.member_name(w, &m.sender)?,
                text: m.text,
                sent_at: m.sent_at_ms,
                read: m.flag,
            });
        }
        Ok(out)
    }
}
