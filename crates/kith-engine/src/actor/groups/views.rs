//! What the user sees of groups: the list, a group's members, its history with the
//! membership changes placed among the messages, and who received and read a message.
//!
//! Nothing here changes state: each view reads the group states in memory and the store.
//! A group is named by the user by its id, a unique id prefix of 4+ hex digits, or a
//! unique name (`find_group`); members by their contact name, `me`, or `~` and a short
//! fingerprint for members who are not contacts (`member_name`).

use std::collections::HashSet;

use crate::model::{Fatal, Outcome};
use kith_proto::group::{Applied, OpKind};
use kith_store::{GroupRow, WriteTx};
use kith_types::{GroupId, IdentityKey, MessageId};

use super::group_err;
use crate::actor::{State, keep_newest_texts};
use crate::model::{
    EngineError, GroupItemView, GroupSummary, GroupView, MemberReceipt, MemberView, ReceiptsView,
};

impl State {
    /// Resolves a group given by id, unique id prefix (4+ hex digits) or unique name.
    pub(in crate::actor) fn find_group(&self, w: &WriteTx<'_>, q: &str) -> Outcome<GroupId> {
        let q = q.trim();
        let rows = w.groups()?;
        let visible: Vec<&(GroupId, GroupRow)> = rows.iter().filter(|(_, r)| !r.deleted).collect();
        let lower = q.to_ascii_lowercase();
        if lower.len() >= 4 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<GroupId> = visible
                .iter()
                .filter(|(id, _)| id.to_hex().starts_with(&lower))
                .map(|(id, _)| *id)
                .collect();
            if hits.len() == 1 {
                return Ok(Ok(hits[0]));
            }
        }
        let by_name: Vec<GroupId> = visible
            .iter()
            .filter(|(id, _)| self.groups.states.get(id).is_some_and(|s| s.name == q))
            .map(|(id, _)| *id)
            .collect();
        Ok(match by_name.len() {
            1 => Ok(by_name[0]),
            0 => Err(EngineError::UnknownGroup(format!(
                "no group named {q:?} (see `kith groups`)"
            ))),
            _ => Err(EngineError::UnknownGroup(format!(
                "several groups are named {q:?}; use the id from `kith groups`"
            ))),
        })
    }

    /// The display name of a member.
    pub(in crate::actor) fn member_name(
        &self,
        w: &WriteTx<'_>,
        identity: &IdentityKey,
    ) -> Result<String, Fatal> {
        if identity == &self.me {
            return Ok("me".into());
        }
        Ok(w.contact(identity)?
            .map(|c| c.name)
            .unwrap_or_else(|| format!("~{}", identity.short())))
    }

    pub(super) fn describe_op(&self, w: &WriteTx<'_>, a: &Applied) -> Result<String, Fatal> {
        // "You added Bob" / "Ada added you" rather than "me added Bob".
        let me = self.me;
        let who = if a.author == me {
            "You".to_string()
        } else {
            self.member_name(w, &a.author)?
        };
        let name = |k: &IdentityKey| -> Result<String, Fatal> {
            if *k == me {
                Ok("you".into())
            } else {
                self.member_name(w, k)
            }
        };
        Ok(match &a.kind {
            OpKind::Create { name: n, .. } => format!("{who} created the group {n:?}"),
            OpKind::Add(k) => format!("{who} added {}", name(k)?),
            OpKind::Remove(k) => format!("{who} removed {}", name(k)?),
            OpKind::Promote(k) => format!("{who} made {} an admin", name(k)?),
            OpKind::Demote(k) => format!("{who} made {} a member", name(k)?),
            OpKind::Rename(n) => format!("{who} renamed the group to {n:?}"),
            OpKind::Describe(_) => format!("{who} changed the description"),
            OpKind::Leave => format!("{who} left"),
            _ => format!("{who} changed the group"),
        })
    }

    pub(super) fn group_view(&self, w: &WriteTx<'_>, id: GroupId) -> Result<GroupView, Fatal> {
        let st = self.groups.states.get(&id).cloned().unwrap_or_default();
        let mut members = Vec::new();
        for m in st
            .admins
            .iter()
            .chain(st.members.iter().filter(|m| !st.admins.contains(*m)))
        {
            members.push(MemberView {
                name: self.member_name(w, m)?,
                identity: m.short(),
                admin: st.admins.contains(m),
            });
        }
        Ok(GroupView {
            id: id.to_hex(),
            name: st.name.clone(),
            description: st.description.clone(),
            members,
            admin: st.admins.contains(&self.me),
            active: st.members.contains(&self.me),
            frames: w.group_frame_count(&id)?,
            undecryptable: w.group_pending_count(&id)?,
        })
    }

    pub(in crate::actor) fn group_list(&self, w: &WriteTx<'_>) -> Result<Vec<GroupSummary>, Fatal> {
        let mut out = Vec::new();
        for (id, row) in w.groups()? {
            if row.deleted {
                continue;
            }
            let Some(st) = self.groups.states.get(&id) else {
                continue;
            };
            if !st.members.contains(&self.me) && !row.gone {
                // Ops of a group we were never added to.
                continue;
            }
            let mut unread = 0;
            let mut mentioned = false;
            for (_, m) in w.group_history(&id, 10_000)? {
                if !m.outgoing && !m.flag {
                    unread += 1;
                    mentioned = mentioned || w.is_mentioned(&id, m.id)?;
                }
            }
            let settings = w.chat_settings(&kith_store::ChatRef::Group(id))?;
            out.push(GroupSummary {
                id: id.to_hex(),
                name: st.name.clone(),
                members: st.members.len(),
                admin: st.admins.contains(&self.me),
                active: st.members.contains(&self.me),
                unread,
                archived: settings.archived,
                muted: settings.muted,
                mentioned,
            });
        }
        Ok(out)
    }

    pub(in crate::actor) fn group_history_view(
        &self,
        w: &WriteTx<'_>,
        q: &str,
        limit: usize,
    ) -> Outcome<Vec<GroupItemView>> {
        let id = match self.find_group(w, q)? {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let mut msgs = w.group_history(&id, limit)?;
        keep_newest_texts(&mut msgs, |m| m.text.len());
        let mut items: Vec<GroupItemView> = Vec::new();
        for (_, m) in msgs {
            let meta = w.message_meta(&kith_store::ChatRef::Group(id), m.id)?;
            let Some(extras) = crate::actor::chat::extras_of(
                meta,
                |who| self.member_name(w, who).unwrap_or_else(|_| who.short()),
                |r| w.group_message(r).ok().flatten().map(|(_, q)| q.text),
            ) else {
                continue;
            };
            let (status, delivered, read) = if m.outgoing {
                let rs = w.group_receipts(m.id)?;
                let d = rs.iter().filter(|x| x.1 > 0).count() as u32;
                let r = rs.iter().filter(|x| x.2 > 0).count() as u32;
                let s = if m.recipients > 0 && r >= m.recipients {
                    "read"
                } else if m.recipients > 0 && d >= m.recipients {
                    "delivered"
                } else if m.flag || d > 0 {
                    "sent"
                } else {
                    "pending"
                };
                (s, d, r)
            } else if m.flag {
                ("read", 0, 0)
            } else {
                ("delivered", 0, 0)
            };
            let from = self.member_name(w, &m.sender)?;
            let attachment = self.attachment_in(w, m.id, &from)?;
            items.push(GroupItemView {
                kind: "message".into(),
                id: MessageId(m.id).to_string(),
                attachment,
                from,
                text: m.text,
                status: status.into(),
                delivered,
                read,
                of: m.recipients,
                sent_at: m.sent_at_ms,
                extras,
                mentioned: w.is_mentioned(&id, m.id)?,
            });
        }
        // Membership changes, placed by time among the messages.
        if let Some(log) = self.groups.logs.get(&id) {
            let (_, applied) = log.state();
            let first = items.first().map(|i| i.sent_at).unwrap_or(0);
            for a in applied {
                if !items.is_empty() && items.len() >= limit && a.at_ms < first {
                    continue;
                }
                let text = self.describe_op(w, &a)?;
                let pos = items
                    .iter()
                    .position(|i| i.kind == "message" && i.sent_at > a.at_ms)
                    .unwrap_or(items.len());
                items.insert(
                    pos,
                    GroupItemView {
                        kind: "event".into(),
                        id: a.hash.short(),
                        from: self.member_name(w, &a.author)?,
                        text,
                        status: String::new(),
                        delivered: 0,
                        read: 0,
                        of: 0,
                        sent_at: a.at_ms,
                        attachment: None,
                        extras: Default::default(),
                        mentioned: false,
                    },
                );
            }
        }
        Ok(Ok(items))
    }

    pub(in crate::actor) fn receipts_view(
        &self,
        w: &WriteTx<'_>,
        id: &str,
    ) -> Outcome<ReceiptsView> {
        let Some(mid) = MessageId::parse(id.trim()) else {
            return Ok(Err(EngineError::BadCode(format!(
                "{id:?} is not a message id"
            ))));
        };
        let Some((key, msg)) = w.group_message(mid.0)? else {
            return Ok(Err(EngineError::UnknownGroup(format!(
                "no group message with id {id}"
            ))));
        };
        if !msg.outgoing {
            return Ok(Err(group_err("receipts are shown for your own messages")));
        }
        let st = self
            .groups
            .states
            .get(&GroupId(key.group))
            .cloned()
            .unwrap_or_default();
        let rs = w.group_receipts(mid.0)?;
        let mut members = Vec::new();
        let mut listed: HashSet<IdentityKey> = HashSet::new();
        for (who, d, r) in &rs {
            listed.insert(*who);
            members.push(MemberReceipt {
                name: self.member_name(w, who)?,
                delivered_at: (*d > 0).then_some(*d),
                read_at: (*r > 0).then_some(*r),
            });
        }
        for m in st
            .members
            .iter()
            .filter(|m| **m != self.me && !listed.contains(*m))
        {
            members.push(MemberReceipt {
                name: self.member_name(w, m)?,
                delivered_at: None,
                read_at: None,
            });
        }
        Ok(Ok(ReceiptsView {
            id: mid.to_string(),
            group: st.name,
            of: msg.recipients,
            members,
        }))
    }
}
