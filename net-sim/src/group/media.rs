//! A group scenario's `[media]` part: the creator posts one file to the group and every
//! other member fetches it by itself (auto-download), as a swarm: from the creator and
//! from each other (`kith_engine::media` and its `swarm` module).
//!
//! The run measures what the issue asks of a group file: every member ends with the same
//! bytes (each member's copy, opened with `media.save`, hashed), and the sender's upload
//! stays a small multiple of the file: the media bytes it served (its `uploaded` count) and
//! the bytes its links carried, over the file's size; with the members' own uploads (how
//! evenly they pass it on), the time from the send to each member's `ready` event, and the
//! process's CPU time and peak memory.

use std::time::{Duration, Instant};

use kith_engine::command::{
    AutoDownloadParams, GroupSendFile, GroupSendFileParams, MediaAutoDownload, MediaList,
    MediaSave, MediaSaveParams,
};
use kith_engine::{Event, command::NoParams};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::node::Node;
use crate::{SimError, pct, peak_rss_mib, proc_cpu_s};

/// What a `[media]` table asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaPlan {
    /// The file's size in bytes (random bytes from the scenario's seed).
    pub bytes: u64,
    /// How long the members may take to have it, from the send.
    pub settle_ms: u64,
    /// The expectation: the sender serves at most this many times the file's size.
    #[serde(default)]
    pub max_upload_ratio: Option<f64>,
}

/// What the file's run showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaReport {
    /// The file's size in bytes.
    pub bytes: u64,
    /// Members who should fetch it (all but the sender).
    pub fetchers: usize,
    /// Of those, members whose copy arrived whole.
    pub complete: usize,
    /// Of those, members whose copy opens to exactly the bytes sent.
    pub identical: usize,
    /// Media bytes the sender served (its `uploaded` count), and that over the size.
    pub sender_served: u64,
    pub sender_ratio: f64,
    /// Bytes the sender's links carried out while the file went round (everything it sent:
    /// Noise and Yamux framing, requests, gossip), and that over the size.
    pub sender_link_bytes: u64,
    pub sender_link_ratio: f64,
    /// Media bytes each fetching member served to others, MiB: smallest, p50, largest.
    pub member_upload_mib: [f64; 3],
    /// Time from the send to each member's `ready` event, s: p50, p95, max.
    pub time_s: [f64; 3],
    /// Wall time, CPU time of the process and its peak memory over the file's run.
    pub wall_s: f64,
    pub cpu_s: f64,
    pub peak_rss_mib: f64,
    /// The expectation on `sender_ratio`, if any.
    pub max_upload_ratio: Option<f64>,
}

impl MediaReport {
    /// What broke the expectations.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.complete < self.fetchers {
            out.push(format!(
                "the file reached {} of {} members",
                self.complete, self.fetchers
            ));
        }
        if self.identical < self.complete {
            out.push(format!(
                "{} members hold different bytes",
                self.complete - self.identical
            ));
        }
        if let Some(max) = self.max_upload_ratio
            && self.sender_ratio > max
        {
            out.push(format!(
                "the sender served {:.2}x the file (at most {max:.2}x expected)",
                self.sender_ratio
            ));
        }
        out
    }

    /// The report for people.
    pub fn text(&self) -> String {
        format!(
            "file: {:.1} MiB to {} members: {} complete, {} identical; time send → ready p50 {:.1} s  p95 {:.1} s  max {:.1} s\n\
             sender upload: {:.1} MiB media served = {:.2}x the file; {:.1} MiB on its links = {:.2}x; members' uploads (MiB) min {:.1}  p50 {:.1}  max {:.1}\n\
             file run: {:.1} s wall, {:.1} s CPU, peak RSS {:.0} MiB",
            self.bytes as f64 / 1048576.0,
            self.fetchers,
            self.complete,
            self.identical,
            self.time_s[0],
            self.time_s[1],
            self.time_s[2],
            self.sender_served as f64 / 1048576.0,
            self.sender_ratio,
            self.sender_link_bytes as f64 / 1048576.0,
            self.sender_link_ratio,
            self.member_upload_mib[0],
            self.member_upload_mib[1],
            self.member_upload_mib[2],
            self.wall_s,
            self.cpu_s,
            self.peak_rss_mib,
        )
    }
}

fn node_err(i: usize) -> impl Fn(kith_engine::EngineError) -> SimError {
    move |e| SimError::Node {
        node: i,
        reason: e.to_string(),
    }
}

/// Member 0 posts a file of `plan.bytes` to group "sim"; waits until every other member
/// has it (or `settle_ms` passed) and reports.
pub(super) async fn run_media(
    members: &[Node],
    plan: &MediaPlan,
    seed: u64,
    tmp: &std::path::Path,
) -> Result<MediaReport, SimError> {
    let t0 = Instant::now();
    let cpu0 = proc_cpu_s();
    let size = plan.bytes.max(1);
    // The file: random bytes from the seed.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x006d_6564_6961);
    let mut content = vec![0u8; size as usize];
    rng.fill(&mut content[..]);
    let want = kith_proto::media::hash(&content);
    let path = tmp.join("media-sent.bin");
    std::fs::write(&path, &content)?;
    drop(content);
    // Every member fetches it by itself.
    for (i, m) in members.iter().enumerate().skip(1) {
        if let Some(h) = &m.handle {
            h.call::<MediaAutoDownload>(AutoDownloadParams {
                max_bytes: size.max(16 << 20),
            })
            .await
            .map_err(node_err(i))?;
        }
    }
    // `ready` events, per member, as they come.
    let (ready_tx, mut ready_rx) = mpsc::channel::<(usize, Instant)>(members.len() * 4);
    let mut watchers = Vec::new();
    for (i, m) in members.iter().enumerate().skip(1) {
        let Some(h) = &m.handle else { continue };
        let mut events = h.subscribe();
        let tx = ready_tx.clone();
        watchers.push(tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::Media { state, .. }) if state == "ready" => {
                        let _ = tx.send((i, Instant::now())).await;
                        break;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        }));
    }
    let link0 = members[0].sim.traffic().0;
    let Some(sender) = members[0].handle.clone() else {
        return Err(node_err(0)(kith_engine::EngineError::Stopped));
    };
    let t_send = Instant::now();
    let sent = sender
        .call::<GroupSendFile>(GroupSendFileParams {
            group: "sim".into(),
            path: path.display().to_string(),
            caption: String::new(),
            voice: false,
            manifest: None,
        })
        .await
        .map_err(node_err(0))?;
    let fetchers = members.len() - 1;
    let mut done: Vec<Option<f64>> = vec![None; members.len()];
    let deadline = t_send + Duration::from_millis(plan.settle_ms);
    let debug = std::env::var_os("KITH_SIM_DEBUG").is_some();
    let mut next_note = Instant::now() + Duration::from_secs(5);
    while done.iter().skip(1).any(Option::is_none) && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), ready_rx.recv()).await {
            Ok(Some((i, at))) => {
                if let Some(d) = done.get_mut(i) {
                    *d = Some(at.duration_since(t_send).as_secs_f64());
                }
            }
            Ok(None) => break,
            Err(_) => {}
        }
        if debug && Instant::now() >= next_note {
            next_note += Duration::from_secs(5);
            eprintln!(
                "media: {} of {fetchers} members have the file after {:.0} s",
                done.iter().skip(1).flatten().count(),
                t_send.elapsed().as_secs_f64()
            );
        }
    }
    let link_bytes = members[0].sim.traffic().0.saturating_sub(link0);
    for w in watchers {
        w.abort();
    }
    // What each member holds and served; each copy opened and hashed.
    let served_of = |list: Vec<kith_engine::AttachmentView>| {
        list.into_iter()
            .find(|v| v.id == sent.id)
            .map(|v| (v.state == "ready", v.uploaded))
    };
    let sender_served = served_of(
        sender
            .call::<MediaList>(NoParams {})
            .await
            .map_err(node_err(0))?,
    )
    .map_or(0, |v| v.1);
    let mut complete = 0;
    let mut identical = 0;
    let mut uploads = Vec::new();
    for (i, m) in members.iter().enumerate().skip(1) {
        let Some(h) = &m.handle else { continue };
        let Some((ready, up)) = served_of(
            h.call::<MediaList>(NoParams {})
                .await
                .map_err(node_err(i))?,
        ) else {
            continue;
        };
        uploads.push(up as f64 / 1048576.0);
        if !ready {
            continue;
        }
        complete += 1;
        let out = tmp.join(format!("media-got-{i}.bin"));
        let saved = h
            .call::<MediaSave>(MediaSaveParams {
                id: sent.id.clone(),
                to: out.clone(),
                thumbnail: false,
            })
            .await;
        if saved.is_ok() && std::fs::read(&out).is_ok_and(|b| kith_proto::media::hash(&b) == want) {
            identical += 1;
        }
        let _ = std::fs::remove_file(&out);
    }
    uploads.sort_by(f64::total_cmp);
    let mut times: Vec<f64> = done.iter().skip(1).flatten().copied().collect();
    times.sort_by(f64::total_cmp);
    let _ = std::fs::remove_file(&path);
    Ok(MediaReport {
        bytes: size,
        fetchers,
        complete,
        identical,
        sender_served,
        sender_ratio: sender_served as f64 / size as f64,
        sender_link_bytes: link_bytes,
        sender_link_ratio: link_bytes as f64 / size as f64,
        member_upload_mib: [
            uploads.first().copied().unwrap_or(0.0),
            pct(&uploads, 0.5),
            uploads.last().copied().unwrap_or(0.0),
        ],
        time_s: [
            pct(&times, 0.5),
            pct(&times, 0.95),
            times.last().copied().unwrap_or(0.0),
        ],
        wall_s: t0.elapsed().as_secs_f64(),
        cpu_s: proc_cpu_s() - cpu0,
        peak_rss_mib: peak_rss_mib(),
        max_upload_ratio: plan.max_upload_ratio,
    })
}
