//! Stories with a photo: the media side of [`super::stories`].
//!
//! - `status.post --photo`: the photo is imported on the caller's task like a file to send
//!   (type sniffed, thumbnail made, chunks sealed; `Prepare`), and must be a picture of at
//!   most [`MAX_STORY_PHOTO`] bytes. The story's media row is keyed by the story id, and
//!   each contact of its audience gets a grant, so only they may fetch its chunks here
//!   (as for a one-to-one file). It goes out as [`ChatAction::PhotoStory`].
//! - A [`ChatAction::PhotoStory`] from a contact this user added: kept like a text story,
//!   with a media row that is wanted at once (photos always download by themselves), and
//!   fetched from the poster's device like a photo message.
//! - When a story goes (its time ran out, its poster took it back, or it made room), its
//!   media row, grants and files go with it, on every node ([`State::drop_story`]).
//! - The lifetime of stories is [`STORY_TTL_MS`]; tests that check expiry across processes
//!   shorten it with [`set_story_lifetime_ms`] (`kith up --story-lifetime-secs`, hidden).

use std::sync::atomic::{AtomicU64, Ordering};

use kith_proto::chat::{MAX_STORY_PHOTO, STORY_TTL_MS};
use kith_proto::media::{self as pmedia, Manifest, MediaKind};
use kith_store::{MediaRow, StoredStory};

use super::*;
use crate::command::StatusPostParams;
use crate::cores::stories as rules;

/// How long stories show on this process (ms).
static STORY_LIFETIME_MS: AtomicU64 = AtomicU64::new(STORY_TTL_MS);

/// Shortens how long stories show on this process, from 24 hours to `ms` (at least a
/// second). Only for tests that check expiry across processes.
pub fn set_story_lifetime_ms(ms: u64) {
    STORY_LIFETIME_MS.store(ms.clamp(1000, STORY_TTL_MS), Ordering::Relaxed);
}

/// How long stories show on this process (ms).
pub(super) fn story_lifetime_ms() -> u64 {
    STORY_LIFETIME_MS.load(Ordering::Relaxed)
}

/// Why a photo cannot be a story's, if it cannot.
pub(super) fn unfit_photo(m: &Manifest) -> Option<EngineError> {
    (m.kind != MediaKind::Photo || m.size > MAX_STORY_PHOTO).then(|| {
        EngineError::Media(format!(
            "a story's photo must be a picture of at most {} MiB",
            MAX_STORY_PHOTO >> 20
        ))
    })
}

/// Deletes the files of a file with this root from the media folder.
fn remove_files(dir: &crate::media::files::Dir, root: &pmedia::Hash) {
    for path in [
        dir.file(root),
        dir.part(root),
        dir.have(root),
        dir.index(root),
        dir.thumb(root),
    ] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => debug!(error = %e, "cannot delete a media file"),
        }
    }
}

impl State {
    /// This user's new photo story `id`: its media row, and a grant for each contact of
    /// its audience.
    pub(super) fn keep_story_photo(
        &mut self,
        w: &mut WriteTx<'_>,
        id: u128,
        manifest: &Manifest,
        audience: &[IdentityKey],
    ) -> Result<(), Fatal> {
        w.put_media(
            id,
            &MediaRow {
                chat: self.me,
                outgoing: true,
                manifest: pmedia::encode_manifest(manifest)?,
                root: manifest.root,
                size: manifest.size,
                wanted: false,
                source: Vec::new(),
                group: None,
            },
        )?;
        for who in audience {
            w.grant_media(&manifest.root, who, id)?;
        }
        Ok(())
    }

    /// Removes `author`'s story `id` with its media row, grants and files (when no other
    /// message has the same file); false when there was no such story.
    pub(super) fn drop_story(
        &mut self,
        w: &mut WriteTx<'_>,
        author: &IdentityKey,
        id: u128,
    ) -> Result<bool, Fatal> {
        if !w.remove_story(author, id)? {
            return Ok(false);
        }
        // Only the story's own row: story ids are chosen by their author, so one may name
        // a message's file (a group's, or one in the chat with the author); those stay.
        if let Some(row) = w.media(id)?
            && row.chat == *author
            && row.group.is_none()
            && w.message(author, id)?.is_none()
        {
            self.drop_media(w, id)?;
        }
        Ok(true)
    }

    /// Drops the media row of `id` and its grants, and deletes its files unless another
    /// row has the same file.
    pub(super) fn drop_media(&mut self, w: &mut WriteTx<'_>, id: u128) -> Result<(), Fatal> {
        if let Some(row) = w.remove_media(id)?
            && !w.media_root_in_use(&row.root, id)?
        {
            remove_files(&self.media.dir, &row.root);
        }
        Ok(())
    }

    /// A photo story from contact `conv` (sent by device `peer`): kept as a story when a
    /// text one would be, and its photo wanted at once.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_photo_story(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        conv: IdentityKey,
        name: &str,
        (id, posted_at_ms): (u128, u64),
        caption: String,
        manifest: Manifest,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let added = w.contact(&conv)?.is_some_and(|c| c.added_by_user);
        let now = now_ms();
        let (posted, expires) = match rules::receive(added, posted_at_ms, now, story_lifetime_ms())
        {
            Ok(t) => t,
            Err(why) => {
                debug!(why, "a photo story was not kept");
                return Ok(());
            }
        };
        if unfit_photo(&manifest).is_some() {
            debug!("a photo story without a fit photo was dropped");
            return Ok(());
        }
        // Never over another story or another message's file.
        if w.story(&conv, id)?.is_some() || w.media(id)?.is_some() {
            return Ok(());
        }
        let held: Vec<u128> = w
            .stories_of(&conv, 4096)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        for old in rules::make_room(&held) {
            self.drop_story(w, &conv, *old)?;
        }
        let story = StoredStory {
            posted_at_ms: posted,
            expires_at_ms: expires,
            text: caption,
            viewed_at_ms: 0,
            audience: Vec::new(),
        };
        w.put_story(&conv, id, &story)?;
        let row = MediaRow {
            chat: conv,
            outgoing: false,
            manifest: pmedia::encode_manifest(&manifest)?,
            root: manifest.root,
            size: manifest.size,
            wanted: true,
            source: peer.to_bytes(),
            group: None,
        };
        w.put_media(id, &row)?;
        super::media::keep_thumbnail(&self.media, &manifest);
        after.push(After::Event(Event::Story {
            from: name.to_owned(),
            id: MessageId(id).to_string(),
            deleted: false,
        }));
        let sources = super::media::sources_of(&row, &[], &self.me, w.devices()?);
        after.push(After::Media(self.job(id, name, manifest, sources)));
        Ok(())
    }
}

impl super::table::Prepare for StatusPostParams {
    async fn prepare(mut self, ctx: crate::command::PrepareCtx) -> Result<Self, EngineError> {
        let Some(path) = self.photo.clone() else {
            return Ok(self);
        };
        // Refused before it is copied when it is plainly too large.
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_STORY_PHOTO) {
            return Err(EngineError::Media(format!(
                "a story's photo must be at most {} MiB",
                MAX_STORY_PHOTO >> 20
            )));
        }
        let dir = crate::media::files::Dir(ctx.media_dir.clone());
        let manifest = super::media::import(ctx, &path, false).await?;
        if let Some(e) = unfit_photo(&manifest) {
            // Its root is new (a fresh key), so no other message has these files.
            remove_files(&dir, &manifest.root);
            return Err(e);
        }
        self.manifest = Some(manifest);
        Ok(self)
    }
}
