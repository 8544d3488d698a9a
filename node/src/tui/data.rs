//! The app's requests to the daemon: one task owns an API client and carries out each
//! [`Effect`] in turn, sending what it learns back as an [`Input`]. It also turns the API's
//! views into the app's model.

use kith_api::methods::{self, NoParams};
use kith_api::{Client, ClientError};
use kith_engine::{GroupItemView, MessageExtras, MessageView};
use tokio::sync::mpsc;

use super::app::{
    Attachment, ChatEntry, ChatKey, Effect, HISTORY_MAX, Input, Message, Preview, Ring, preview,
};
use super::extras::Story;
use super::screens::{SEARCH_HITS, SearchHit};

/// Messages read per contact to find the unread ones and the last one when the list loads.
const UNREAD_SCAN: usize = 200;

fn chat_params(key: &ChatKey) -> methods::ChatParams {
    match key {
        ChatKey::Contact(n) => crate::cli::chat_params(Some(n.clone()), None),
        ChatKey::Group(id) => crate::cli::chat_params(None, Some(id.clone())),
    }
}

fn attachment(a: Option<kith_engine::AttachmentView>) -> Option<Attachment> {
    a.map(|a| Attachment {
        name: a.name,
        size: a.size,
        state: a.state,
        percent: a.percent,
    })
}

fn with_extras(m: Message, x: MessageExtras) -> Message {
    Message {
        quote: x.reply_to.map(|_| x.quote.unwrap_or_else(|| "…".into())),
        reactions: x.reactions,
        edited: x.edited,
        deleted: x.deleted,
        forwarded: x.forwarded,
        starred: x.starred,
        pinned: x.pinned,
        ..m
    }
}

/// A contact's message as the app holds it.
pub fn from_view(v: MessageView) -> Message {
    let m = Message {
        id: v.id,
        from: v.from,
        text: v.text,
        status: v.status,
        sent_at: v.sent_at,
        attachment: attachment(v.attachment),
        ..Message::default()
    };
    with_extras(m, v.extras)
}

/// A group's message or membership change as the app holds it.
pub fn from_group_view(v: GroupItemView) -> Message {
    let m = Message {
        event: v.kind == "event",
        id: v.id,
        from: v.from,
        text: v.text,
        status: v.status,
        sent_at: v.sent_at,
        attachment: attachment(v.attachment),
        ..Message::default()
    };
    with_extras(m, v.extras)
}

/// Every chat with its unread count and last message, latest activity first.
async fn load_chats(c: &mut Client) -> Result<Vec<ChatEntry>, ClientError> {
    let contacts = c.call::<methods::ContactsList>(NoParams {}).await?;
    let groups = c.call::<methods::Groups>(NoParams {}).await?;
    let mut out = Vec::with_capacity(contacts.len() + groups.len());
    for ct in contacts {
        let h = c
            .call::<methods::History>(methods::HistoryParams {
                with: ct.name.clone(),
                limit: UNREAD_SCAN,
            })
            .await?;
        let unread = h
            .iter()
            .filter(|m| m.from != "me" && m.status != "read")
            .count();
        let last = h.into_iter().last().map(|m| preview(&from_view(m)));
        out.push(ChatEntry {
            key: ChatKey::Contact(ct.name.clone()),
            title: ct.name,
            unread,
            last,
            presence: ct.presence,
            typing: None,
            muted: ct.muted,
            archived: ct.archived,
            mentioned: false,
        });
    }
    for g in groups {
        let h = c
            .call::<methods::GroupHistory>(methods::GroupHistoryParams {
                group: g.id.clone(),
                limit: 1,
            })
            .await?;
        let last = h.into_iter().last().map(|m| preview(&from_group_view(m)));
        out.push(ChatEntry {
            key: ChatKey::Group(g.id),
            title: g.name,
            unread: g.unread,
            last,
            presence: format!("{} members", g.members),
            typing: None,
            muted: g.muted,
            archived: g.archived,
            mentioned: g.mentioned,
        });
    }
    sort_chats(&mut out);
    Ok(out)
}

/// Latest activity first; chats without messages after, by name.
pub fn sort_chats(chats: &mut [ChatEntry]) {
    chats.sort_by(|a, b| {
        let at = |c: &ChatEntry| c.last.as_ref().map_or(0, |p: &Preview| p.at);
        (a.archived.cmp(&b.archived))
            .then_with(|| at(b).cmp(&at(a)))
            .then_with(|| a.title.cmp(&b.title))
    });
}

async fn history(c: &mut Client, key: &ChatKey, limit: usize) -> Result<Vec<Message>, ClientError> {
    let limit = limit.min(HISTORY_MAX);
    Ok(match key {
        ChatKey::Contact(with) => c
            .call::<methods::History>(methods::HistoryParams {
                with: with.clone(),
                limit,
            })
            .await?
            .into_iter()
            .map(from_view)
            .collect(),
        ChatKey::Group(id) => c
            .call::<methods::GroupHistory>(methods::GroupHistoryParams {
                group: id.clone(),
                limit,
            })
            .await?
            .into_iter()
            .map(from_group_view)
            .collect(),
    })
}

async fn carry_out(c: &mut Client, fx: Effect) -> Result<Option<Input>, ClientError> {
    Ok(match fx {
        Effect::LoadChats => Some(Input::Chats(load_chats(c).await?)),
        Effect::LoadHistory(key, limit) => {
            let h = history(c, &key, limit).await?;
            Some(Input::History(key, h, limit))
        }
        Effect::Send {
            key,
            text,
            reply_to,
        } => {
            c.call::<methods::MessageSend>(methods::ChatSendParams {
                chat: chat_params(&key),
                text,
                reply_to,
            })
            .await?;
            Some(Input::Sent(key))
        }
        Effect::React { key, id, emoji } => {
            c.call::<methods::MessageReact>(methods::ReactParams { id, emoji })
                .await?;
            Some(Input::Acted(key))
        }
        Effect::Edit { key, id, text } => {
            c.call::<methods::MessageEdit>(methods::EditParams { id, text })
                .await?;
            Some(Input::Acted(key))
        }
        Effect::Mark { key, id, mark, on } => {
            c.call::<methods::MessageMark>(methods::MarkParams {
                id,
                mark: mark.into(),
                on,
            })
            .await?;
            Some(Input::Acted(key))
        }
        Effect::Delete { key, id, everyone } => {
            c.call::<methods::MessageDelete>(methods::DeleteParams { id, everyone })
                .await?;
            Some(Input::Acted(key))
        }
        Effect::MarkRead(ChatKey::Contact(with)) => {
            c.call::<methods::Read>(methods::WithContact { with })
                .await?;
            None
        }
        Effect::MarkRead(ChatKey::Group(group)) => {
            c.call::<methods::GroupRead>(methods::GroupParams { group })
                .await?;
            None
        }
        Effect::LoadMe => {
            let p = c.call::<methods::ProfileGet>(NoParams {}).await?;
            Some(Input::Me(p.name))
        }
        Effect::Typing(with, state) => {
            // Best effort: a blocked or unknown contact just sees nothing.
            let _ = c
                .call::<methods::Typing>(methods::TypingParams {
                    with,
                    state: state.into(),
                })
                .await;
            None
        }
        Effect::GroupTyping(group, state) => {
            // Best effort, as for a contact.
            let _ = c
                .call::<methods::GroupTyping>(methods::GroupTypingParams {
                    group,
                    state: state.into(),
                })
                .await;
            None
        }
        Effect::Forward { id, to } => {
            c.call::<methods::MessageForward>(methods::ForwardParams {
                id,
                chat: chat_params(&to),
            })
            .await?;
            Some(Input::Forwarded(to))
        }
        Effect::Search(text) => {
            let hits = c
                .call::<methods::Search>(methods::SearchParams {
                    text: text.clone(),
                    chat: methods::ChatParams::default(),
                    limit: SEARCH_HITS,
                    mentions: false,
                })
                .await?
                .into_iter()
                .map(|h| SearchHit {
                    id: h.id,
                    chat: h.chat,
                    from: h.from,
                    sent_at: h.sent_at,
                    snippet: h.snippet,
                })
                .collect();
            Some(Input::Found(text, hits))
        }
        Effect::AddContact { code, name } => {
            let v = c
                .call::<methods::ContactsAdd>(methods::AddContactParams { code, name })
                .await?;
            Some(Input::Added(v.name))
        }
        Effect::LoadStories => Some(Input::Stories(stories(c).await?)),
        Effect::ViewStories(name) => {
            c.call::<methods::StatusView>(methods::StatusViewParams { name })
                .await?;
            Some(Input::Stories(stories(c).await?))
        }
        Effect::PostStatus(text) => {
            let p = c
                .call::<methods::StatusPost>(methods::StatusPostParams {
                    text,
                    photo: None,
                    manifest: None,
                })
                .await?;
            Some(Input::Posted(p.audience))
        }
        Effect::Dial(to) => {
            let v = c
                .call::<methods::Dial>(methods::CallParams {
                    to,
                    ..Default::default()
                })
                .await?;
            Some(Input::Calling(Ring {
                call: v.call,
                contact: v.contact,
                state: v.state,
                outgoing: true,
            }))
        }
        Effect::DialGroup(id) => {
            let v = c
                .call::<methods::Dial>(methods::CallParams {
                    to: id,
                    group: true,
                    ..Default::default()
                })
                .await?;
            Some(Input::Calling(Ring {
                call: v.call,
                contact: v.group.unwrap_or(v.contact),
                state: v.state,
                outgoing: true,
            }))
        }
        Effect::HangUp(call) => {
            c.call::<methods::HangUp>(methods::CallIdParams { call: Some(call) })
                .await?;
            None
        }
        Effect::Download(id) => {
            let a = c
                .call::<methods::MediaDownload>(methods::MessageParams { id })
                .await?;
            let name = crate::safe::printable(&a.name).to_string();
            Some(Input::Notice(match a.path {
                Some(path) if a.state == "ready" => {
                    format!("{name} is saved: {}", crate::safe::printable(&path))
                }
                _ => format!("{name}: {} {}%", a.state, a.percent),
            }))
        }
        Effect::ChatSet(key, change) => {
            use super::settings::{Change, Settings};
            let chat = match &key {
                ChatKey::Contact(name) => methods::ChatParams {
                    to: Some(name.clone()),
                    group: None,
                },
                ChatKey::Group(id) => methods::ChatParams {
                    to: None,
                    group: Some(id.clone()),
                },
            };
            let mut p = methods::ChatSetParams {
                chat,
                archived: None,
                muted: None,
                disappear: None,
            };
            match change {
                Change::Muted(m) => p.muted = Some(m),
                Change::Archived(a) => p.archived = Some(a),
                Change::Disappear(d) => p.disappear = Some(d),
            }
            let v = c.call::<methods::ChatSet>(p).await?;
            Some(Input::ChatSet(
                key,
                Settings {
                    archived: v.archived,
                    muted: v.muted,
                    disappear: v.disappear,
                },
            ))
        }
        Effect::Answer(call) => {
            c.call::<methods::PickUp>(methods::AnswerParams {
                call: Some(call),
                ..Default::default()
            })
            .await?;
            None
        }
        Effect::Decline(call) => {
            c.call::<methods::DeclineRing>(methods::CallIdParams { call: Some(call) })
                .await?;
            None
        }
    })
}

async fn stories(c: &mut Client) -> Result<Vec<Story>, ClientError> {
    Ok(c.call::<methods::StatusList>(NoParams {})
        .await?
        .into_iter()
        .map(|v| Story {
            id: v.id,
            from: v.from,
            mine: v.mine,
            posted_at: v.posted_at,
            // A photo story shows as its file and state (the terminal draws no pictures).
            text: match &v.photo {
                Some(p) if p.state == "ready" => format!("[photo {}] {}", p.name, v.text),
                Some(p) => format!("[photo {}, {}] {}", p.name, p.state, v.text),
                None => v.text,
            },
            viewed: v.viewed,
            viewers: v.viewers.into_iter().map(|(name, _)| name).collect(),
        })
        .collect())
}

/// Carries out effects one at a time until the app stops sending them. A failed request
/// is reported to the app; a broken connection ends the task (and the app, which sees its
/// channel close).
pub async fn worker(mut c: Client, mut rx: mpsc::Receiver<Effect>, tx: mpsc::Sender<Input>) {
    while let Some(fx) = rx.recv().await {
        match carry_out(&mut c, fx).await {
            Ok(Some(input)) => {
                if tx.send(input).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(ClientError::Io(_) | ClientError::NotRunning) => {
                let _ = tx.send(Input::Gone).await;
                return;
            }
            Err(e) => {
                if tx.send(Input::Failed(e.to_string())).await.is_err() {
                    return;
                }
            }
        }
    }
}
