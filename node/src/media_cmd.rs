//! The file commands: `kith save`, `kith download`, `kith media` (list, clear,
//! auto-download).

use std::path::PathBuf;

use kith_api::methods::{self, NoParams};
use kith_api::{Client, ClientError};

use crate::args::MediaCmd;
use crate::cli::usage;
use crate::output::Out;

/// `kith save ID [--to PATH]`: downloads the file first if needed, showing progress; a
/// failure, or a minute without progress (the sender is away), ends the wait.
pub(crate) async fn save(
    out: &Out,
    c: &mut Client,
    id: String,
    to: Option<PathBuf>,
    thumbnail: bool,
) -> Result<(), ClientError> {
    let mut v = c
        .call::<methods::MediaGet>(methods::MessageParams { id: id.clone() })
        .await?;
    if thumbnail {
        let to = to.ok_or_else(|| usage("--thumbnail needs --to FILE".into()))?;
        if to.exists() {
            return Err(usage(format!("{} exists already", to.display())));
        }
        let dest = std::path::absolute(&to)?;
        let size = c
            .call::<methods::MediaSave>(methods::MediaSaveParams {
                id,
                to: dest.clone(),
                thumbnail: true,
            })
            .await?;
        v.size = size;
        out.saved(&v, &dest);
        return Ok(());
    }
    if v.state != "ready" {
        if !v.outgoing {
            c.call::<methods::MediaDownload>(methods::MessageParams { id: id.clone() })
                .await?;
        }
        let mut last = (v.state.clone(), v.percent);
        let mut since = std::time::Instant::now();
        let (start, from) = (std::time::Instant::now(), v.percent);
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            v = c
                .call::<methods::MediaGet>(methods::MessageParams { id: id.clone() })
                .await?;
            out.progress(&v, from, start.elapsed());
            if v.state == "ready" || v.state == "failed" {
                break;
            }
            if (v.state.clone(), v.percent) != last {
                last = (v.state.clone(), v.percent);
                since = std::time::Instant::now();
            } else if since.elapsed() > std::time::Duration::from_secs(60) {
                return Err(usage(
                    "no progress for a minute (is the sender online?); it goes on \
                     in the background: try `kith save` again later"
                        .into(),
                ));
            }
        }
    }
    let path = save_file(c, &v, to.as_deref()).await?;
    out.saved(&v, &path);
    Ok(())
}

/// `kith download ID`.
pub(crate) async fn download(out: &Out, c: &mut Client, id: String) -> Result<(), ClientError> {
    let v = c
        .call::<methods::MediaDownload>(methods::MessageParams { id })
        .await?;
    out.attachment(&v);
    Ok(())
}

/// `kith media [clear CHAT | auto-download SIZE]`.
pub(crate) async fn media(
    out: &Out,
    c: &mut Client,
    cmd: Option<MediaCmd>,
) -> Result<(), ClientError> {
    match cmd {
        None => out.media(&c.call::<methods::MediaList>(NoParams {}).await?),
        Some(MediaCmd::Clear { chat }) => {
            let freed = c
                .call::<methods::MediaClear>(methods::MediaClearParams { chat })
                .await?;
            out.freed(freed);
        }
        Some(MediaCmd::AutoDownload { size }) => {
            let max_bytes =
                parse_size(&size).ok_or_else(|| usage(format!("not a size: {size}")))?;
            let v = c
                .call::<methods::MediaAutoDownload>(methods::AutoDownloadParams { max_bytes })
                .await?;
            out.auto_download(v);
        }
    }
    Ok(())
}

/// "1048576", "512K", "16M", "2G" (powers of 1024) as bytes.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// Has the daemon write a ready file, opened (files are sealed at rest), to `to` (a file,
/// or a folder to put it in under its own name; default: the current folder). Refuses to
/// overwrite a file.
async fn save_file(
    c: &mut Client,
    v: &kith_engine::AttachmentView,
    to: Option<&std::path::Path>,
) -> Result<PathBuf, ClientError> {
    if v.state != "ready" {
        return Err(usage(format!("the file is not here ({})", v.state)));
    }
    let to = to.map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    let dest = if to.is_dir() { to.join(&v.name) } else { to };
    if dest.exists() {
        return Err(usage(format!("{} exists already", dest.display())));
    }
    let dest = std::path::absolute(&dest)?;
    c.call::<methods::MediaSave>(methods::MediaSaveParams {
        id: v.id.clone(),
        to: dest.clone(),
        thumbnail: false,
    })
    .await?;
    Ok(dest)
}
