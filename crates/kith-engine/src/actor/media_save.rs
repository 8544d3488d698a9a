//! `media.save`: writes a whole file here, opened from its sealed chunks, to a new file the
//! user names, on a thread of its own (the engine goes on; memory stays at one chunk).

use kith_proto::media as pmedia;

use super::{Engine, Reply};
use crate::EngineError;
use crate::command::{ContactPhotoParams, MediaSaveParams};
use kith_types::MessageId;

impl Engine {
    pub(super) fn media_save(&mut self, p: MediaSaveParams, r: Reply<u64>) {
        let fail = |r: Reply<u64>, msg: &str| {
            let _ = r.send(Err(EngineError::Media(msg.into())));
        };
        if !p.to.is_absolute() {
            return fail(r, "the path to save to must be absolute");
        }
        let Some(id) = MessageId::parse(&p.id) else {
            return fail(r, "not a message id");
        };
        let row = match self.store.read(|x| x.media(id.0)) {
            Ok(Some(row)) => row,
            Ok(None) => return fail(r, "that message has no file"),
            Err(e) => {
                let _ = r.send(Err(EngineError::Internal(e.to_string())));
                return;
            }
        };
        let Ok(m) = pmedia::decode_manifest(&row.manifest) else {
            return fail(r, "the file's description is damaged");
        };
        if !p.thumbnail && !self.st.media.dir.ready(&row.root) {
            return fail(r, "the file is not here yet");
        }
        let dir = self.st.media.dir.clone();
        let spawned = std::thread::Builder::new()
            .name("kith-media-save".into())
            .spawn(move || {
                let res = if p.thumbnail {
                    save_thumb(&dir, &m, &p.to)
                } else {
                    crate::media::files::export(&dir, &m, &p.to)
                        .map_err(|e| EngineError::Media(e.to_string()))
                };
                let _ = r.send(res);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a thread to save a file");
        }
    }
}

impl Engine {
    /// `contact.photo`: a contact's profile photo (sealed at rest, at most
    /// `MAX_AVATAR` bytes), opened and written to a new file; returns its size.
    pub(super) fn contact_photo(&self, p: &ContactPhotoParams) -> Result<u64, EngineError> {
        let media = |m: &str| EngineError::Media(m.into());
        if !p.to.is_absolute() {
            return Err(media("the path to save to must be absolute"));
        }
        let file = self
            .store
            .read(|r| {
                let Some(c) = r.contact_by_name(&p.contact)? else {
                    return Ok(None);
                };
                Ok(Some(
                    r.contact_extra(&c.identity)?
                        .profile
                        .and_then(|x| x.avatar_file),
                ))
            })
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let file = match file {
            None => return Err(EngineError::UnknownContact(p.contact.clone())),
            Some(None) => return Err(media("no profile photo")),
            Some(Some(f)) => f,
        };
        let path = self.st.data_dir.join("avatars").join(&file);
        let raw =
            std::fs::read(&path).map_err(|e| media(&format!("cannot read the photo: {e}")))?;
        if raw.len() > kith_proto::signal::MAX_AVATAR + 64 {
            return Err(media("the photo file is too large"));
        }
        let bytes = match crate::sealed_file::open(&self.st.keys.storage, &file, &raw) {
            Some(b) => b,
            // A photo an older version kept in clear.
            None if kith_proto::signal::check_avatar(&raw).is_ok() => raw,
            None => return Err(media("the photo file is damaged")),
        };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p.to)
            .map_err(|e| media(&format!("{}: {e}", p.to.display())))?;
        std::io::Write::write_all(&mut out, &bytes)
            .map_err(|e| media(&format!("{}: {e}", p.to.display())))?;
        Ok(bytes.len() as u64)
    }
}

impl Engine {
    /// At start: whole files, thumbnails and contacts' photos an older version kept in clear
    /// are sealed in place, on a thread of its own (serving and saving read both forms
    /// meanwhile).
    pub(super) fn seal_legacy_media(&self) {
        self.seal_legacy_photos();
        let manifests = self.store.read(|r| {
            Ok(r.media_rows()?
                .into_iter()
                .filter_map(|(_, row)| pmedia::decode_manifest(&row.manifest).ok())
                .filter(|m| {
                    std::fs::metadata(self.st.media.dir.file(&m.root))
                        .is_ok_and(|md| md.len() == m.size)
                })
                .collect::<Vec<_>>())
        });
        let manifests = match manifests {
            Ok(m) if !m.is_empty() => m,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the media files to seal");
                return;
            }
        };
        let dir = self.st.media.dir.clone();
        let spawned = std::thread::Builder::new()
            .name("kith-media-seal".into())
            .spawn(move || {
                let mut sealed = 0usize;
                for m in &manifests {
                    match crate::media::files::seal_legacy(&dir, m) {
                        Ok(true) => sealed += 1,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot seal a media file"),
                    }
                    match crate::media::files::seal_legacy_thumb(&dir, m) {
                        Ok(true) => sealed += 1,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot seal a thumbnail"),
                    }
                }
                tracing::info!(
                    files = sealed,
                    "media files of an older version sealed at rest"
                );
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start sealing the media files");
        }
    }
}

impl Engine {
    /// At start: contacts' photos an older version kept in clear in `avatars/` are sealed in
    /// place under the storage key (named by their file name, as `contact.photo` opens them).
    fn seal_legacy_photos(&self) {
        let dir = self.st.data_dir.join("avatars");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let key = &self.st.keys.storage;
        let mut sealed = 0usize;
        for entry in entries.flatten().take(MAX_PHOTOS_SEALED) {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let Ok(raw) = std::fs::read(&path) else {
                continue;
            };
            if raw.len() > kith_proto::signal::MAX_AVATAR
                || crate::sealed_file::open(key, &name, &raw).is_some()
                || kith_proto::signal::check_avatar(&raw).is_err()
            {
                continue;
            }
            let bytes = crate::sealed_file::seal(key, &name, &raw);
            match crate::media::files::write_aside(&path, &bytes) {
                Ok(()) => sealed += 1,
                Err(e) => tracing::warn!(error = %e, "cannot seal a contact's photo"),
            }
        }
        if sealed > 0 {
            tracing::info!(
                photos = sealed,
                "contacts' photos of an older version sealed"
            );
        }
    }
}

/// Most files in `avatars/` looked at by one start (one per contact is expected).
const MAX_PHOTOS_SEALED: usize = 100_000;

/// Writes the thumbnail of the file of `m`, opened, to the new file `to`.
fn save_thumb(
    dir: &crate::media::files::Dir,
    m: &pmedia::Manifest,
    to: &std::path::Path,
) -> Result<u64, EngineError> {
    let media = |e: std::io::Error| EngineError::Media(format!("the thumbnail: {e}"));
    let bytes = crate::media::files::read_thumb(dir, m).map_err(media)?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(media)?;
    std::io::Write::write_all(&mut out, &bytes).map_err(media)?;
    Ok(bytes.len() as u64)
}
