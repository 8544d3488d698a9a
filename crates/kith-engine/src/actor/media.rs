//! Media in the engine: the store side of files sent and received, and who may fetch what.
//! The transfers themselves run in the media task (`crate::media`).
//!
//! - `send.file`: the file was imported on the caller's task (`Prepare`); here the message
//!   (text = caption), its media row and the recipient's grant are stored and the
//!   [`Body::Media`] is queued like a text.
//! - A [`Body::Media`] received: the message and its row are stored; photos, voice notes
//!   and files up to the auto-download size are wanted at once and handed to the media
//!   task after the commit. Wanted files not yet whole are handed over again at start-up.
//! - A peer's media request is served only when the store says that person was sent the
//!   file (a grant); the media task reads and seals the chunk.

use kith_proto::media::{self as pmedia, Manifest, MediaKind, MediaRefusal, MediaRequest};
use kith_store::MediaRow;

use super::*;
use crate::command::{GroupSendFileParams, MessageParams, SendFileParams};
use crate::media::{Fetch, Job};

/// Files up to this size download by themselves unless the user set another size (photos
/// and voice notes always do).
pub const AUTO_DOWNLOAD_BYTES: u64 = 16 << 20;
/// The meta key of the auto-download size.
const AUTO_KEY: &str = "media_auto_download";

impl State {
    /// The auto-download size the user set (or the default).
    fn auto_download(&self, w: &WriteTx<'_>) -> Result<u64, Fatal> {
        Ok(w.meta(AUTO_KEY)?
            .and_then(|b| b.try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(AUTO_DOWNLOAD_BYTES))
    }

    /// `media.auto-download`: sets the size up to which files download by themselves.
    pub(super) fn set_auto_download(&mut self, w: &mut WriteTx<'_>, bytes: u64) -> Outcome<u64> {
        w.set_meta(AUTO_KEY, &bytes.to_le_bytes())?;
        Ok(Ok(bytes))
    }

    /// `send.file`: stores and queues a file message (the file is in the media folder).
    pub(super) fn send_file(
        &mut self,
        w: &mut WriteTx<'_>,
        p: SendFileParams,
        after: &mut Vec<After>,
    ) -> Outcome<Sent> {
        let Some(manifest) = p.manifest else {
            return Ok(Err(EngineError::Internal(
                "the file was not prepared".into(),
            )));
        };
        if let Err(e) = contacts::check_text(&p.caption)
            .or_else(|e| if p.caption.is_empty() { Ok(()) } else { Err(e) })
        {
            return Ok(Err(e));
        }
        let Some(c) = w.contact_by_name(&p.to)? else {
            return Ok(Err(EngineError::UnknownContact(p.to)));
        };
        if self.social.blocked.contains(&c.identity) {
            return Ok(Err(EngineError::Blocked(c.name)));
        }
        let id = self.ids.next_id();
        let now = now_ms();
        let msg = StoredMessage {
            id: id.0,
            outgoing: true,
            text: p.caption.clone(),
            sent_at_ms: now,
            stored_at_ms: now,
            status: Status::Pending,
        };
        w.append_message(&c.identity, &msg)?;
        w.put_media(
            id.0,
            &MediaRow {
                chat: c.identity,
                outgoing: true,
                manifest: pmedia::encode_manifest(&manifest)?,
                root: manifest.root,
                size: manifest.size,
                wanted: false,
                source: Vec::new(),
                group: None,
            },
        )?;
        w.grant_media(&manifest.root, &c.identity, id.0)?;
        let body = Body::Media {
            id: id.0,
            sent_at_ms: now,
            manifest,
            caption: p.caption,
        };
        self.enqueue(w, &c.identity, &body, vec![id.0], after)?;
        Ok(Ok(Sent { id: id.to_string() }))
    }

    /// A file message from a contact's device (`peer`): stores it, and wants the file now
    /// when auto-download says so.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn receive_file(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        conv: IdentityKey,
        name: &str,
        id: u128,
        sent_at_ms: u64,
        manifest: Manifest,
        caption: String,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let msg = StoredMessage {
            id,
            outgoing: false,
            text: caption.clone(),
            sent_at_ms,
            stored_at_ms: now_ms(),
            status: Status::Delivered,
        };
        if w.append_message(&conv, &msg)?.is_none() {
            return Ok(());
        }
        let wanted = matches!(manifest.kind, MediaKind::Photo | MediaKind::Voice)
            || manifest.size <= self.auto_download(w)?;
        let row = MediaRow {
            chat: conv,
            outgoing: false,
            manifest: pmedia::encode_manifest(&manifest)?,
            root: manifest.root,
            size: manifest.size,
            wanted,
            source: peer.to_bytes(),
            group: None,
        };
        w.put_media(id, &row)?;
        keep_thumbnail(&self.media, &manifest);
        after.push(After::Event(Event::Message {
            contact: name.to_owned(),
            id: MessageId(id).to_string(),
            text: caption,
            sent_at: sent_at_ms,
        }));
        if wanted {
            let sources = sources_of(&row, &[], &self.me, w.devices()?);
            after.push(After::Media(self.job(id, name, manifest, sources)));
        }
        Ok(())
    }

    /// `group.send.file`: posts a file to a group (the file is in the media folder); every
    /// member may fetch it here.
    pub(super) fn group_send_file(
        &mut self,
        w: &mut WriteTx<'_>,
        p: GroupSendFileParams,
        now: super::groups::Now,
        after: &mut Vec<After>,
    ) -> Outcome<Sent> {
        let Some(manifest) = p.manifest else {
            return Ok(Err(EngineError::Internal(
                "the file was not prepared".into(),
            )));
        };
        if p.caption.len() > kith_proto::wire::MAX_TEXT {
            return Ok(Err(EngineError::BadText {
                max: kith_proto::wire::MAX_TEXT,
            }));
        }
        let root = manifest.root;
        let row = MediaRow {
            chat: self.me,
            outgoing: true,
            manifest: pmedia::encode_manifest(&manifest)?,
            root,
            size: manifest.size,
            wanted: false,
            source: Vec::new(),
            group: None,
        };
        let (sent, group, members) =
            match self.group_post(w, &p.group, p.caption, Some(manifest), now, after)? {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
        let Some(id) = MessageId::parse(&sent.id) else {
            return Err(Fatal::Bug("a new message id does not parse"));
        };
        w.put_media(
            id.0,
            &MediaRow {
                group: Some(group),
                ..row
            },
        )?;
        for m in members.iter().filter(|m| **m != self.me) {
            w.grant_media(&root, m, id.0)?;
        }
        // Members away now find it at their mailboxes, even once this node is gone.
        self.deposit_group_file(w, (id.0, &members), true, after)?;
        Ok(Ok(sent))
    }

    /// A file posted to a group by `sender` (identity, device peer id): stored, granted to
    /// every member (this node serves it to them once it is whole), and fetched from the
    /// sender or other members when auto-download says so.
    pub(super) fn receive_group_file(
        &mut self,
        w: &mut WriteTx<'_>,
        (group, gname, members): (GroupId, &str, &[IdentityKey]),
        (sender, sender_peer): (IdentityKey, &[u8]),
        id: u128,
        manifest: Manifest,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let wanted = matches!(manifest.kind, MediaKind::Photo | MediaKind::Voice)
            || manifest.size <= self.auto_download(w)?;
        let row = MediaRow {
            chat: sender,
            outgoing: false,
            manifest: pmedia::encode_manifest(&manifest)?,
            root: manifest.root,
            size: manifest.size,
            wanted,
            source: sender_peer.to_vec(),
            group: Some(group),
        };
        w.put_media(id, &row)?;
        keep_thumbnail(&self.media, &manifest);
        for m in members.iter().filter(|m| **m != self.me) {
            w.grant_media(&manifest.root, m, id)?;
        }
        if wanted {
            let sources = sources_of(&row, members, &self.me, w.devices()?);
            after.push(After::Media(self.job(id, gname, manifest, sources)));
        }
        Ok(())
    }

    /// The attachment of message `id` in a group's history, if it has one.
    pub(super) fn attachment_in(
        &self,
        w: &WriteTx<'_>,
        id: u128,
        chat: &str,
    ) -> Result<Option<AttachmentView>, Fatal> {
        let Some(row) = w.media(id)? else {
            return Ok(None);
        };
        let Ok(m) = pmedia::decode_manifest(&row.manifest) else {
            return Ok(None);
        };
        Ok(Some(attachment_view(&self.media, id, &row, &m, chat)))
    }

    /// `download`: wants the file of a message (and starts it).
    pub(super) fn download(
        &mut self,
        w: &mut WriteTx<'_>,
        p: &MessageParams,
        after: &mut Vec<After>,
    ) -> Outcome<AttachmentView> {
        let Some(id) = MessageId::parse(&p.id) else {
            return Ok(Err(EngineError::Media("not a message id".into())));
        };
        let Some(mut row) = w.media(id.0)? else {
            return Ok(Err(EngineError::Media("that message has no file".into())));
        };
        let manifest = pmedia::decode_manifest(&row.manifest)?;
        let chat = w
            .contact(&row.chat)?
            .map(|c| c.name)
            .unwrap_or_else(|| row.chat.short());
        let chat = match row.group.and_then(|g| self.groups.name_and_members(&g)) {
            Some((name, _)) => name,
            None => chat,
        };
        if !row.outgoing && !self.media.dir.ready(&row.root) {
            row.wanted = true;
            w.put_media(id.0, &row)?;
            let members = row
                .group
                .and_then(|g| self.groups.name_and_members(&g))
                .map(|(_, m)| m)
                .unwrap_or_default();
            let sources = sources_of(&row, &members, &self.me, w.devices()?);
            after.push(After::Media(self.job(
                id.0,
                &chat,
                manifest.clone(),
                sources,
            )));
        }
        let mut view = attachment_view(&self.media, id.0, &row, &manifest, &chat);
        if view.state == "failed" {
            view.state = "waiting".into();
        }
        Ok(Ok(view))
    }

    /// `media.clear`: deletes the received files of a conversation (they can be downloaded
    /// again while the sender keeps them); returns the bytes freed.
    pub(super) fn media_clear(&mut self, w: &mut WriteTx<'_>, chat: &str) -> Outcome<u64> {
        let contact = w.contact_by_name(chat)?.map(|c| c.identity);
        let group = self.groups.by_name(chat);
        if contact.is_none() && group.is_none() {
            return Ok(Err(EngineError::UnknownContact(chat.to_string())));
        }
        let rows: Vec<(u128, MediaRow)> = w
            .media_rows()?
            .into_iter()
            .filter(|(_, r)| {
                !r.outgoing
                    && match r.group {
                        Some(g) => Some(g) == group,
                        None => Some(r.chat) == contact,
                    }
            })
            .collect();
        let mut freed = 0;
        for (id, mut row) in rows {
            let dir = &self.media.dir;
            for path in [
                dir.file(&row.root),
                dir.part(&row.root),
                dir.have(&row.root),
                dir.index(&row.root),
            ] {
                if let Ok(m) = std::fs::metadata(&path) {
                    freed += m.len();
                    let _ = std::fs::remove_file(&path);
                }
            }
            row.wanted = false;
            w.put_media(id, &row)?;
        }
        Ok(Ok(freed))
    }
}

impl Engine {
    /// Hands the media task the wanted files that are not whole yet (at start-up).
    pub(super) fn resume_downloads(&mut self) {
        let rows = self.store.read(|r| {
            let mut jobs = Vec::new();
            for (id, row) in r.media_rows()? {
                if row.outgoing || !row.wanted || self.st.media.dir.ready(&row.root) {
                    continue;
                }
                let Ok(manifest) = pmedia::decode_manifest(&row.manifest) else {
                    continue;
                };
                let group = row.group.and_then(|g| self.st.groups.name_and_members(&g));
                let chat = match &group {
                    Some((name, _)) => name.clone(),
                    None => r
                        .contact(&row.chat)?
                        .map(|c| c.name)
                        .unwrap_or_else(|| row.chat.short()),
                };
                let members = group.map(|(_, m)| m).unwrap_or_default();
                let sources = sources_of(&row, &members, &self.st.me, r.devices()?);
                jobs.push(self.st.job(id, &chat, manifest, sources));
            }
            Ok(jobs)
        });
        for job in rows.unwrap_or_default() {
            if !self.st.media.offer(job) {
                warn!("the media task is busy; a download waits for the next start");
            }
        }
    }

    /// A peer asks for a file's index or chunk: served (by the media task) only when the
    /// person behind the peer was sent that file.
    pub(super) fn on_media_asked(&mut self, id: u64, peer: PeerId, req: MediaRequest) {
        // `have`: which chunks are here (asked by a member fetching the file too).
        let (root, chunk, have) = match req {
            MediaRequest::Index { root } => (root, None, false),
            MediaRequest::Chunk { root, index } => (root, Some(index), false),
            MediaRequest::Have { root } => (root, None, true),
            MediaRequest::Hold {
                to,
                root,
                sealed,
                index,
            } => {
                self.on_media_hold((id, peer), to, root, sealed, index);
                return;
            }
            MediaRequest::Put {
                to,
                root,
                index,
                bytes,
            } => {
                self.on_media_put(id, peer, (to, root, index), bytes);
                return;
            }
            MediaRequest::Release { root } => {
                self.on_media_release(id, peer, root);
                return;
            }
            MediaRequest::Grant { to, root } => {
                self.on_media_grant((id, peer), to, root);
                return;
            }
            _ => {
                self.refuse_media(id, MediaRefusal::NotFound);
                return;
            }
        };
        let blocked = &self.st.social.blocked;
        let found = self.store.read(|r| {
            let Some(dev) = r.device(&device_key(&peer.to_bytes()))? else {
                return Ok(None);
            };
            // A person the user blocked gets nothing more of our files.
            if blocked.contains(&dev.identity) {
                return Ok(None);
            }
            let Some(msg) = r.media_granted(&root, &dev.identity)? else {
                return Ok(None);
            };
            let who = r
                .contact(&dev.identity)?
                .map(|c| c.name)
                .unwrap_or_else(|| dev.identity.short());
            Ok(r.media(msg)?.map(|row| (row, msg, who)))
        });
        let (manifest, to, spread) = match found {
            Ok(Some((row, msg, who))) => (
                pmedia::decode_manifest(&row.manifest).ok(),
                (MessageId(msg).to_string(), who),
                row.outgoing && row.group.is_some(),
            ),
            // A mailbox keeps whole files only: it serves them, and says nothing of parts.
            Ok(None) if have && self.held_for(peer, &root) => {
                self.refuse_media(id, MediaRefusal::NotFound);
                return;
            }
            Ok(None) if self.held_for(peer, &root) => {
                let job = Job::ServeHeld { id, root, chunk };
                if !self.st.media.offer(job) {
                    self.refuse_media(id, MediaRefusal::Busy);
                }
                return;
            }
            Ok(None) => {
                debug!(%peer, "media asked by someone it was not sent to");
                self.refuse_media(id, MediaRefusal::Unauthorized);
                return;
            }
            Err(e) => {
                warn!(error = %e, "cannot read the store");
                (None, Default::default(), false)
            }
        };
        let Some(manifest) = manifest else {
            self.refuse_media(id, MediaRefusal::NotFound);
            return;
        };
        if chunk.is_some_and(|i| i >= manifest.chunks()) {
            self.refuse_media(id, MediaRefusal::NotFound);
            return;
        }
        let job = if have {
            Job::ServeHave {
                id,
                peer,
                manifest: Box::new(manifest),
            }
        } else {
            Job::Serve {
                id,
                peer,
                manifest: Box::new(manifest),
                chunk,
                to: Box::new(to),
                spread,
            }
        };
        if !self.st.media.offer(job) {
            self.refuse_media(id, MediaRefusal::Busy);
        }
    }

    fn refuse_media(&mut self, id: u64, why: MediaRefusal) {
        self.st.net_send(NetCommand::AnswerMedia {
            id,
            resp: kith_proto::media::MediaResponse::Refused(why),
        });
    }

    /// Every file with its state (`media`).
    pub(super) fn media_list(&self) -> Result<Vec<AttachmentView>, EngineError> {
        self.store
            .read(|r| {
                let mut out = Vec::new();
                for (id, row) in r.media_rows()? {
                    let Ok(m) = pmedia::decode_manifest(&row.manifest) else {
                        continue;
                    };
                    let chat = self.chat_name(r, &row)?;
                    let mut view = attachment_view(&self.st.media, id, &row, &m, &chat);
                    view.uploaded = self.st.media.served.total(&row.root);
                    out.push(view);
                }
                Ok(out)
            })
            .map_err(internal)
    }

    /// The file of one message (`media.get`, what `kith save` copies).
    pub(super) fn media_get(&self, p: &MessageParams) -> Result<AttachmentView, EngineError> {
        let id =
            MessageId::parse(&p.id).ok_or_else(|| EngineError::Media("not a message id".into()))?;
        self.store
            .read(|r| {
                let Some(row) = r.media(id.0)? else {
                    return Ok(Err(EngineError::Media("that message has no file".into())));
                };
                let m = pmedia::decode_manifest(&row.manifest)
                    .map_err(kith_store::StoreError::Undecodable)?;
                let chat = self.chat_name(r, &row)?;
                let mut view = attachment_view(&self.st.media, id.0, &row, &m, &chat);
                view.uploaded = self.st.media.served.total(&row.root);
                Ok(Ok(view))
            })
            .map_err(internal)?
    }

    /// The name of the conversation a file is in: the group's, or the contact's.
    fn chat_name(
        &self,
        r: &kith_store::ReadTx,
        row: &MediaRow,
    ) -> Result<String, kith_store::StoreError> {
        if let Some((name, _)) = row.group.and_then(|g| self.st.groups.name_and_members(&g)) {
            return Ok(name);
        }
        Ok(r.contact(&row.chat)?
            .map(|c| c.name)
            .unwrap_or_else(|| row.chat.short()))
    }

    /// The attachment of message `id` in a history view, if it has one.
    pub(super) fn attachment_of(
        &self,
        r: &kith_store::ReadTx,
        id: u128,
        chat: &str,
    ) -> Result<Option<AttachmentView>, kith_store::StoreError> {
        let Some(row) = r.media(id)? else {
            return Ok(None);
        };
        let Ok(m) = pmedia::decode_manifest(&row.manifest) else {
            return Ok(None);
        };
        Ok(Some(attachment_view(&self.st.media, id, &row, &m, chat)))
    }
}

/// Writes the thumbnail a peer sent beside the file, when its header says it is a small
/// PNG or JPEG (nothing is decoded here).
pub(super) fn keep_thumbnail(media: &crate::media::Media, m: &Manifest) {
    if let Some(t) = &m.thumbnail
        && crate::media::thumb::acceptable(t)
        && let Err(e) = crate::media::files::replace(
            &media.dir.thumb(&m.root),
            &crate::media::files::seal_thumb(m, t),
        )
    {
        debug!(error = %e, "cannot keep a thumbnail");
    }
}

/// Where to fetch a file from: the sender's device first, then (for a group file) the
/// devices of the other members, who serve what they have of it, up to [`MAX_SOURCES`] of
/// them. Each member takes them in its own order (by a hash of its identity and the
/// device), so that in a big group members do not all pick the same few.
pub(super) fn sources_of(
    row: &MediaRow,
    members: &[IdentityKey],
    me: &IdentityKey,
    devices: Vec<KnownDevice>,
) -> Vec<(PeerId, Vec<Multiaddr>)> {
    let mut out = Vec::new();
    if let Ok(peer) = PeerId::from_bytes(&row.source) {
        let addrs = devices
            .iter()
            .find(|d| d.peer_id == row.source)
            .map(|d| decode_addrs(&d.addrs))
            .unwrap_or_default();
        out.push((peer, addrs));
    }
    let mut devices = devices;
    devices.sort_by_cached_key(|d| {
        let mut seed = me.0.to_vec();
        seed.extend_from_slice(&d.peer_id);
        pmedia::hash(&seed)
    });
    for d in devices {
        if d.peer_id == row.source || &d.identity == me || !members.contains(&d.identity) {
            continue;
        }
        if let Ok(peer) = PeerId::from_bytes(&d.peer_id) {
            out.push((peer, decode_addrs(&d.addrs)));
        }
        if out.len() >= MAX_SOURCES {
            break;
        }
    }
    out
}

/// Most sources one download tries.
const MAX_SOURCES: usize = 16;

impl State {
    /// The media task's job to download the file of message `id` from `sources`, then
    /// from our mailboxes (where a sender that could not reach us may have left it).
    pub(super) fn job(
        &self,
        id: u128,
        contact: &str,
        manifest: Manifest,
        mut sources: Vec<(PeerId, Vec<Multiaddr>)>,
    ) -> Job {
        let mut mailboxes = Vec::new();
        for (peer, addrs) in self.mailbox_sources() {
            if !sources.iter().any(|(p, _)| *p == peer) {
                mailboxes.push(peer);
                sources.push((peer, addrs));
            }
        }
        Job::Fetch(Box::new(Fetch {
            msg: MessageId(id).to_string(),
            contact: contact.to_owned(),
            manifest,
            sources,
            mailboxes,
        }))
    }
}

/// How a file looks to the user.
pub(super) fn attachment_view(
    media: &crate::media::Media,
    id: u128,
    row: &MediaRow,
    m: &Manifest,
    chat: &str,
) -> AttachmentView {
    let (state, percent) = if row.outgoing {
        ("ready", 100)
    } else {
        media.state(&row.root)
    };
    // Files are sealed at rest: there is no clear copy to point at (`media.save` writes one).
    let path = None;
    let thumb = media.dir.thumb(&row.root);
    let thumbnail = thumb.is_file().then(|| thumb.display().to_string());
    AttachmentView {
        id: MessageId(id).to_string(),
        chat: chat.to_owned(),
        outgoing: row.outgoing,
        kind: m.kind.as_str().into(),
        name: crate::media::files::safe_name(&m.name),
        mime: m.mime.clone(),
        size: m.size,
        dimensions: m.dimensions,
        duration_ms: m.duration_ms,
        state: state.into(),
        percent,
        path,
        thumbnail,
        uploaded: 0,
    }
}

/// Imports the file at `path` into the media folder on the caller's task (reading it once,
/// sealing every chunk to build its index), so the engine never waits on it.
pub(super) async fn import(
    ctx: crate::command::PrepareCtx,
    path: &str,
    voice: bool,
) -> Result<Manifest, EngineError> {
    let dir = crate::media::files::Dir(ctx.media_dir);
    let path = std::path::PathBuf::from(path);
    tokio::task::spawn_blocking(move || crate::media::files::import(&dir, &path, voice))
        .await
        .map_err(internal)?
        .map_err(|e| EngineError::Media(e.to_string()))
}

impl super::table::Prepare for SendFileParams {
    async fn prepare(mut self, ctx: crate::command::PrepareCtx) -> Result<Self, EngineError> {
        self.manifest = Some(import(ctx, &self.path, self.voice).await?);
        Ok(self)
    }
}

impl super::table::Prepare for GroupSendFileParams {
    async fn prepare(mut self, ctx: crate::command::PrepareCtx) -> Result<Self, EngineError> {
        self.manifest = Some(import(ctx, &self.path, self.voice).await?);
        Ok(self)
    }
}
