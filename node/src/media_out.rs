//! What the CLI prints about files: attachment lines, `kith media`, `kith save` and its
//! progress, sizes for people.

use std::path::Path;

use kith_engine::AttachmentView;
use serde_json::json;

use crate::output::{Out, json_line, line};
use crate::safe::printable;

impl Out {
    pub fn attachment(&self, a: &AttachmentView) {
        if self.json {
            json_line(a);
        } else {
            line(&format!("{}  {}", a.id, attachment_line(a)));
        }
    }

    pub fn media(&self, list: &[AttachmentView]) {
        if self.json {
            for a in list {
                json_line(a);
            }
            return;
        }
        let mut total = 0u64;
        for a in list {
            let dir = if a.outgoing { "to" } else { "from" };
            line(&format!(
                "{}  {dir} {}  {}",
                a.id,
                printable(&a.chat),
                attachment_line(a)
            ));
            if a.state == "ready" {
                total += a.size;
            }
        }
        line(&format!("{} file(s), {} stored", list.len(), size(total)));
    }

    /// A progress line while `kith save` waits (stderr: stdout keeps the result).
    /// A progress line while `kith save` waits, on stderr (stdout keeps the result): bytes,
    /// rate and time left, from how far it got in `elapsed` since `from_percent`.
    pub fn progress(&self, a: &AttachmentView, from_percent: u8, elapsed: std::time::Duration) {
        if self.json {
            return;
        }
        let done = a.size * u64::from(a.percent) / 100;
        let moved = a.size * u64::from(a.percent.saturating_sub(from_percent)) / 100;
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = moved as f64 / secs;
        let left = if rate > 0.0 {
            let s = (a.size - done) as f64 / rate;
            format!(", {}:{:02} left", (s as u64) / 60, (s as u64) % 60)
        } else {
            String::new()
        };
        eprint!(
            "\r{} {} % ({} of {}, {}/s{left})      ",
            a.state,
            a.percent,
            size(done),
            size(a.size),
            size(rate as u64)
        );
        if a.state == "ready" || a.state == "failed" {
            eprintln!();
        }
    }

    pub fn saved(&self, a: &AttachmentView, path: &Path) {
        if self.json {
            json_line(&json!({ "id": a.id, "path": path.display().to_string(), "size": a.size }));
        } else {
            line(&format!("Saved {} ({}).", path.display(), size(a.size)));
        }
    }

    pub fn freed(&self, bytes: u64) {
        if self.json {
            json_line(&json!({ "freed": bytes }));
        } else {
            line(&format!("Freed {}.", size(bytes)));
        }
    }

    pub fn auto_download(&self, bytes: u64) {
        if self.json {
            json_line(&json!({ "auto_download": bytes }));
        } else {
            line(&format!(
                "Files up to {} download by themselves (photos and voice notes always).",
                size(bytes)
            ));
        }
    }
}

/// A size for people: 1.5 MiB.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// One attachment in a line: kind, name, size, dimensions, duration, state, path.
/// A message's text as history shows it: the attachment's line first, when there is one,
/// then the caption in quotes.
pub(crate) fn with_attachment(text: &str, a: Option<&AttachmentView>) -> String {
    match a {
        None => text.to_string(),
        Some(a) if text.is_empty() => attachment_line(a),
        Some(a) => format!("{} \"{text}\"", attachment_line(a)),
    }
}

pub(crate) fn attachment_line(a: &AttachmentView) -> String {
    let mut s = format!("[{}] {} {}", a.kind, printable(&a.name), size(a.size));
    if let Some((w, h)) = a.dimensions {
        s.push_str(&format!(" {w}x{h}"));
    }
    if let Some(ms) = a.duration_ms {
        s.push_str(&format!(" {}:{:02}", ms / 60_000, (ms / 1000) % 60));
    }
    match a.state.as_str() {
        "downloading" => s.push_str(&format!(" downloading {} %", a.percent)),
        "ready" => {
            // Kept sealed at rest: `kith save ID --thumbnail --to FILE` writes it out.
            if a.thumbnail.is_some() {
                s.push_str(" with thumbnail");
            }
            if !a.outgoing {
                s.push_str(" ready");
            }
        }
        other => s.push_str(&format!(" {other}")),
    }
    s
}
