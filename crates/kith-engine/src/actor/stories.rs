//! Status updates (stories): the I/O side of [`crate::cores::stories`].
//!
//! Data flow:
//!
//! 1. `status.post`: the core picks the audience from the contacts and the setting; the
//!    story is stored with that audience and goes to each of them as a one-to-one
//!    [`ChatAction::Story`] through the outbox (so it waits at mailboxes like any message).
//! 2. A contact's story ([`State::on_story`]): the core decides whether it is kept and until
//!    when; the author's oldest makes room; watchers hear of it.
//! 3. `status.view`: the contact's stories are marked viewed, and with read receipts on
//!    each newly viewed one is answered with [`ChatAction::StoryViewed`].
//! 4. A view of this user's story counts when the core says so; `status.list` shows it.
//! 5. `status.delete` removes this user's story and tells its audience
//!    ([`ChatAction::StoryDelete`]); every second the tick removes what expired, on every
//!    node by its own clock: rows, text and viewers go in one transaction.

use kith_proto::chat::ChatAction;
use kith_store::StoredStory;

use super::story_photo::{story_lifetime_ms, unfit_photo};
use super::*;
use crate::command::{
    StatusPostParams, StatusPosted, StatusPrivacyParams, StatusPrivacyView, StoryView,
};
use crate::cores::stories::{self as rules, Candidate, StatusMode, StatusPrivacy};
use crate::model::{EngineError, Event, Fatal, Outcome};

/// Most stories listed or expired at once.
const STORY_BATCH: usize = 4096;
/// The store's meta key of the setting.
const PRIVACY_META: &str = "status-privacy";

fn parse_story_id(id: &str) -> Result<u128, EngineError> {
    MessageId::parse(id.trim())
        .map(|m| m.0)
        .ok_or_else(|| EngineError::BadSetting(format!("not a story id: {id:?}")))
}

fn privacy_of(w: &WriteTx<'_>) -> Result<StatusPrivacy, Fatal> {
    Ok(w.meta(PRIVACY_META)?
        .and_then(|b| kith_proto::codec::decode::<StatusPrivacy>(&b, 64 * 1024).ok())
        .unwrap_or_default())
}

impl State {
    /// `status.post`: a story to the contacts the setting allows.
    pub(super) fn status_post(
        &mut self,
        w: &mut WriteTx<'_>,
        p: StatusPostParams,
        after: &mut Vec<After>,
    ) -> Outcome<StatusPosted> {
        let text = p.text.trim().to_string();
        if (text.is_empty() && p.manifest.is_none()) || text.len() > kith_proto::limits::MAX_TEXT {
            return Ok(Err(EngineError::BadSetting(
                "a status needs a text of at most 64 KiB".into(),
            )));
        }
        if let Some(e) = p.manifest.as_ref().and_then(unfit_photo) {
            return Ok(Err(e));
        }
        let privacy = privacy_of(w)?;
        let candidates: Vec<Candidate> = w
            .contacts()?
            .into_iter()
            .map(|c| Candidate {
                identity: c.identity,
                added_by_user: c.added_by_user,
                blocked: self.social.blocked.contains(&c.identity),
            })
            .collect();
        let audience = privacy.audience(&candidates);
        let now = now_ms();
        let id = self.ids.next_id().0;
        let story = StoredStory {
            posted_at_ms: now,
            expires_at_ms: now + story_lifetime_ms(),
            text: text.clone(),
            viewed_at_ms: 0,
            audience: audience.clone(),
        };
        w.put_story(&self.me, id, &story)?;
        let body = match p.manifest {
            Some(manifest) => {
                self.keep_story_photo(w, id, &manifest, &audience)?;
                Body::Chat(ChatAction::PhotoStory {
                    id,
                    posted_at_ms: now,
                    caption: text,
                    manifest: Box::new(manifest),
                })
            }
            None => Body::Chat(ChatAction::Story {
                id,
                posted_at_ms: now,
                text,
            }),
        };
        for conv in &audience {
            self.enqueue(w, conv, &body, Vec::new(), after)?;
        }
        Ok(Ok(StatusPosted {
            id: MessageId(id).to_string(),
            audience: audience.len(),
            expires_at: story.expires_at_ms,
        }))
    }

    /// `status.delete`: one of this user's stories, here and at its audience.
    pub(super) fn status_delete(
        &mut self,
        w: &mut WriteTx<'_>,
        id: &str,
        after: &mut Vec<After>,
    ) -> Outcome<bool> {
        let id = match parse_story_id(id) {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let Some(story) = w.story(&self.me, id)? else {
            return Ok(Err(EngineError::BadSetting(
                "no story of yours has that id".into(),
            )));
        };
        self.drop_story(w, &self.me.clone(), id)?;
        let body = Body::Chat(ChatAction::StoryDelete { id });
        for conv in &story.audience {
            if w.contact(conv)?.is_some() {
                self.enqueue(w, conv, &body, Vec::new(), after)?;
            }
        }
        Ok(Ok(true))
    }

    /// `status.view`: a contact's stories, marked viewed (and the views sent, with read
    /// receipts on).
    pub(super) fn status_view(
        &mut self,
        w: &mut WriteTx<'_>,
        name: &str,
        after: &mut Vec<After>,
    ) -> Outcome<Vec<StoryView>> {
        let Some(contact) = w.contact_by_name(name)? else {
            return Ok(Err(EngineError::UnknownContact(name.to_string())));
        };
        let now = now_ms();
        let mut out = Vec::new();
        for (id, mut s) in w.stories_of(&contact.identity, STORY_BATCH)? {
            if s.expires_at_ms <= now {
                continue;
            }
            if s.viewed_at_ms == 0 {
                s.viewed_at_ms = now;
                w.put_story(&contact.identity, id, &s)?;
                if self.social.privacy.read_receipts {
                    let body = Body::Chat(ChatAction::StoryViewed { id });
                    self.enqueue(w, &contact.identity, &body, Vec::new(), after)?;
                }
            }
            let photo = self.attachment_in(w, id, &contact.name)?;
            out.push(story_view(id, &contact.name, false, &s, Vec::new(), photo));
        }
        Ok(Ok(out))
    }

    /// `status.privacy`: shows or sets who sees this user's stories.
    pub(super) fn status_privacy(
        &mut self,
        w: &mut WriteTx<'_>,
        p: StatusPrivacyParams,
    ) -> Outcome<StatusPrivacyView> {
        let mut privacy = privacy_of(w)?;
        if let Some(mode) = &p.mode {
            let Some(mode) = StatusMode::parse(mode) else {
                return Ok(Err(EngineError::BadSetting(format!(
                    "status privacy is contacts, except or only, not {mode:?}"
                ))));
            };
            if p.people.len() > rules::MAX_PRIVACY_PEOPLE {
                return Ok(Err(EngineError::BadSetting("too many people named".into())));
            }
            let mut people = Vec::new();
            for name in &p.people {
                match w.contact_by_name(name)? {
                    Some(c) => people.push(c.identity),
                    None => return Ok(Err(EngineError::UnknownContact(name.clone()))),
                }
            }
            if mode != StatusMode::Contacts && people.is_empty() {
                return Ok(Err(EngineError::BadSetting(format!(
                    "{} needs at least one contact",
                    mode.as_str()
                ))));
            }
            privacy = StatusPrivacy { mode, people };
            w.set_meta(PRIVACY_META, &kith_proto::codec::encode(&privacy)?)?;
        }
        let mut people = Vec::new();
        for i in &privacy.people {
            people.push(self.member_name(w, i)?);
        }
        Ok(Ok(StatusPrivacyView {
            mode: privacy.mode.as_str().into(),
            people,
        }))
    }

    /// A story, a view or a take-back from a contact (the sender is `conv`).
    pub(super) fn on_story(
        &mut self,
        w: &mut WriteTx<'_>,
        conv: IdentityKey,
        name: &str,
        action: ChatAction,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let now = now_ms();
        match action {
            ChatAction::Story {
                id,
                posted_at_ms,
                text,
            } => {
                let added = w.contact(&conv)?.is_some_and(|c| c.added_by_user);
                let lifetime = story_lifetime_ms();
                let (posted, expires) = match rules::receive(added, posted_at_ms, now, lifetime) {
                    Ok(t) => t,
                    Err(why) => {
                        tracing::debug!(why, "a story was not kept");
                        return Ok(());
                    }
                };
                if w.story(&conv, id)?.is_some() {
                    return Ok(());
                }
                let held: Vec<u128> = w
                    .stories_of(&conv, STORY_BATCH)?
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                for old in rules::make_room(&held) {
                    self.drop_story(w, &conv, *old)?;
                }
                let story = StoredStory {
                    posted_at_ms: posted,
                    expires_at_ms: expires,
                    text,
                    viewed_at_ms: 0,
                    audience: Vec::new(),
                };
                w.put_story(&conv, id, &story)?;
                after.push(After::Event(Event::Story {
                    from: name.to_owned(),
                    id: MessageId(id).to_string(),
                    deleted: false,
                }));
            }
            ChatAction::StoryViewed { id } => {
                let Some(story) = w.story(&self.me, id)? else {
                    return Ok(());
                };
                if self.social.privacy.read_receipts
                    && rules::view_counts(&story, &conv, now)
                    && w.add_story_viewer(id, &conv, now)?
                {
                    after.push(After::Event(Event::StoryViewed {
                        by: name.to_owned(),
                        id: MessageId(id).to_string(),
                    }));
                }
            }
            ChatAction::StoryDelete { id } if self.drop_story(w, &conv, id)? => {
                after.push(After::Event(Event::Story {
                    from: name.to_owned(),
                    id: MessageId(id).to_string(),
                    deleted: true,
                }));
            }
            _ => {}
        }
        Ok(())
    }

    /// Removes the stories whose time ran out (own and contacts').
    pub(super) fn expire_stories(&mut self, w: &mut WriteTx<'_>, now: u64) -> Result<(), Fatal> {
        for (author, id) in w.expired_stories(now, STORY_BATCH)? {
            self.drop_story(w, &author, id)?;
        }
        Ok(())
    }
}

fn story_view(
    id: u128,
    from: &str,
    mine: bool,
    s: &StoredStory,
    viewers: Vec<(String, u64)>,
    photo: Option<AttachmentView>,
) -> StoryView {
    StoryView {
        id: MessageId(id).to_string(),
        from: from.to_owned(),
        mine,
        posted_at: s.posted_at_ms,
        expires_at: s.expires_at_ms,
        text: s.text.clone(),
        viewed: s.viewed_at_ms != 0,
        audience: s.audience.len(),
        viewers,
        photo,
    }
}

impl Engine {
    /// `status.list`: this user's stories with their viewers, then the contacts' that
    /// show, newest first within each.
    pub(super) fn status_list(&self) -> Result<Vec<StoryView>, EngineError> {
        let me = self.st.me;
        let now = now_ms();
        self.store
            .read(|r| {
                let name = |i: &IdentityKey| -> Result<String, kith_store::StoreError> {
                    Ok(r.contact(i)?
                        .map(|c| c.name)
                        .unwrap_or_else(|| format!("~{}", i.short())))
                };
                let mut mine = Vec::new();
                let mut theirs = Vec::new();
                for (author, id, s) in r.all_stories(STORY_BATCH)? {
                    if s.expires_at_ms <= now {
                        continue;
                    }
                    if author == me {
                        let mut viewers = Vec::new();
                        for (v, at) in r.story_viewers(id)? {
                            viewers.push((name(&v)?, at));
                        }
                        let photo = self.attachment_of(r, id, "me")?;
                        mine.push(story_view(id, "me", true, &s, viewers, photo));
                    } else if r.contact(&author)?.is_some() {
                        let from = name(&author)?;
                        let photo = self.attachment_of(r, id, &from)?;
                        theirs.push(story_view(id, &from, false, &s, Vec::new(), photo));
                    }
                }
                mine.sort_by_key(|s| std::cmp::Reverse(s.posted_at));
                theirs.sort_by_key(|s| std::cmp::Reverse(s.posted_at));
                mine.extend(theirs);
                Ok(mine)
            })
            .map_err(|e| EngineError::Internal(e.to_string()))
    }
}
