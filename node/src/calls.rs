//! The call commands: `call`, `answer`, `decline`, `hangup`, `mic`, `calls`.
//!
//! Sound files are given to the daemon as full paths (it opens them): `--audio-in` is sent
//! as the microphone, `--audio-out` records what the other side says. Both are WAV, 16-bit
//! at 48 kHz (`sox in.wav -r 48000 -b 16 -c 1 out.wav` converts). Without them the daemon
//! uses its default microphone and speaker (none on a headless machine: silence, and one
//! notice in `kith watch`); `--no-audio-device` keeps devices out.
//!
//! Video has no camera yet: `--video` sends a built-in test pattern, `--video-in FILE.ivf`
//! sends pre-encoded VP8 frames, `--video-out FILE.ivf` records what arrives.
//!
//! `kith calls --wait` waits for an incoming call to ring and exits 0 printing it, or exits
//! 4 when `--timeout` passes first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use kith_api::methods::{
    self, AnswerParams, CallIdParams, CallMedia, CallParams, MuteParams, NoParams,
};
use kith_api::{Client, ClientError};
use kith_engine::{CallRecordView, CallView};
use serde_json::Value;

use crate::output::{Out, local};
use crate::safe::printable;

/// Exit code of `kith calls --wait` when no call rang in time.
pub const NO_CALL: i32 = 4;

#[derive(Debug, Subcommand)]
pub(crate) enum CallCmd {
    /// Call a contact (rings every device of theirs for 45 s), or with --group ring a
    /// group of up to 8 people (each member who answers talks with every other).
    Call {
        /// The contact's name (with --group, the group's name or id).
        name: String,
        /// NAME is a group: ring its other members.
        #[arg(long)]
        group: bool,
        /// Send this WAV file (16-bit, 48 kHz) instead of a microphone; silence after it.
        #[arg(long, value_name = "FILE.wav")]
        audio_in: Option<PathBuf>,
        /// Record what the other side says to this WAV file.
        #[arg(long, value_name = "FILE.wav")]
        audio_out: Option<PathBuf>,
        /// Use no sound device: without --audio-in send silence, without --audio-out play
        /// nothing (by default the daemon's default microphone and speaker are used).
        #[arg(long)]
        no_audio_device: bool,
        #[command(flatten)]
        video: VideoArgs,
    },
    /// Answer the ringing call.
    Answer {
        /// The call id (or its start); the ringing call by default.
        call: Option<String>,
        /// As for `kith call`.
        #[arg(long, value_name = "FILE.wav")]
        audio_in: Option<PathBuf>,
        /// As for `kith call`.
        #[arg(long, value_name = "FILE.wav")]
        audio_out: Option<PathBuf>,
        /// As for `kith call`.
        #[arg(long)]
        no_audio_device: bool,
        #[command(flatten)]
        video: VideoArgs,
    },
    /// Decline the ringing call (the caller sees "declined").
    Decline {
        /// The call id (or its start).
        call: Option<String>,
    },
    /// End the call, or stop calling.
    Hangup {
        /// The call id (or its start).
        call: Option<String>,
    },
    /// Turn your sound in the call off or on (`kith mic off`, `kith mic on`).
    Mic {
        /// `off` mutes you, `on` unmutes you.
        state: MicState,
    },
    /// Call history: direction, duration, missed calls. With --wait, wait for a call to
    /// ring instead (exit 0 when one does, 4 after --timeout).
    Calls {
        /// Wait for an incoming call to ring.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, value_name = "SECS", requires = "wait")]
        timeout: Option<u64>,
        /// Show the call going on instead (`null` in JSON when there is none).
        #[arg(long, conflicts_with = "wait")]
        current: bool,
    },
}

/// Video without a camera: VP8 frames in IVF files.
#[derive(Debug, clap::Args)]
pub(crate) struct VideoArgs {
    /// Send video: the frames of --video-in, or a built-in test pattern (colour bars).
    #[arg(long)]
    video: bool,
    /// Send this IVF file of VP8 frames as the camera, once (implies --video).
    /// `ffmpeg -i in.mp4 -c:v libvpx -f ivf out.ivf` or `vpxenc --ivf` make one.
    #[arg(long, value_name = "FILE.ivf")]
    video_in: Option<PathBuf>,
    /// Record the other side's video frames to this IVF file.
    #[arg(long, value_name = "FILE.ivf")]
    video_out: Option<PathBuf>,
}

/// Your microphone in a call.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum MicState {
    /// Others hear you.
    On,
    /// Muted.
    Off,
}

fn absolute(p: Option<PathBuf>) -> Result<Option<PathBuf>, ClientError> {
    p.map(|p| std::path::absolute(&p).map_err(ClientError::Io))
        .transpose()
}

/// Runs a call command; returns the exit code when it is not 0.
pub(crate) async fn run(
    out: &Out,
    c: &mut Client,
    sock: &Path,
    cmd: CallCmd,
) -> Result<i32, ClientError> {
    match cmd {
        CallCmd::Call {
            name,
            group,
            audio_in,
            audio_out,
            no_audio_device,
            video,
        } => {
            let v = c
                .call::<methods::Dial>(CallParams {
                    to: name,
                    media: media(audio_in, audio_out, no_audio_device, video)?,
                    group,
                })
                .await?;
            view(out, &v);
        }
        CallCmd::Answer {
            call,
            audio_in,
            audio_out,
            no_audio_device,
            video,
        } => {
            let v = c
                .call::<methods::PickUp>(AnswerParams {
                    call,
                    media: media(audio_in, audio_out, no_audio_device, video)?,
                })
                .await?;
            view(out, &v);
        }
        CallCmd::Decline { call } => {
            c.call::<methods::DeclineRing>(CallIdParams { call })
                .await?;
            out.done("declined");
        }
        CallCmd::Hangup { call } => {
            c.call::<methods::HangUp>(CallIdParams { call }).await?;
            out.done("hung up");
        }
        CallCmd::Mic { state } => {
            let muted = matches!(state, MicState::Off);
            let v = c.call::<methods::MuteSound>(MuteParams { muted }).await?;
            view(out, &v);
        }
        CallCmd::Calls { current: true, .. } => {
            match c.call::<methods::Ongoing>(NoParams {}).await? {
                Some(v) => view(out, &v),
                None if out.json() => out.json_value(&Value::Null),
                None => out.text("no call going on"),
            }
        }
        CallCmd::Calls { wait: false, .. } => {
            let v = c.call::<methods::RecentCalls>(NoParams {}).await?;
            history(out, &v);
        }
        CallCmd::Calls {
            wait: true,
            timeout,
            ..
        } => return wait(out, c, sock, timeout).await,
    }
    Ok(0)
}

/// Waits for an incoming call to ring.
async fn wait(
    out: &Out,
    c: &mut Client,
    sock: &Path,
    timeout: Option<u64>,
) -> Result<i32, ClientError> {
    c.watch().await?;
    // One that rings already counts (after subscribing, so none is missed in between).
    let mut probe = Client::connect(sock).await?;
    if let Some(v) = probe.call::<methods::Ongoing>(NoParams {}).await?
        && v.direction == "incoming"
        && v.state == "ringing"
    {
        view(out, &v);
        return Ok(0);
    }
    let ringing = async {
        while let Some(ev) = c.next_event().await? {
            let s = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("");
            if s("event") == "call" && s("direction") == "incoming" && s("state") == "ringing" {
                out.event(&ev);
                return Ok(true);
            }
        }
        Ok::<bool, ClientError>(false)
    };
    let rang = match timeout {
        Some(secs) => tokio::time::timeout(Duration::from_secs(secs), ringing)
            .await
            .unwrap_or(Ok(false))?,
        None => ringing.await?,
    };
    Ok(if rang { 0 } else { NO_CALL })
}

fn view(out: &Out, v: &CallView) {
    if out.json() {
        out.json_value(v);
        return;
    }
    let group = v
        .group
        .as_deref()
        .map(|g| format!(" [{}]", printable(g)))
        .unwrap_or_default();
    out.text(&format!(
        "call {} {} {}{group}: {}{}",
        &v.call[..8.min(v.call.len())],
        v.direction,
        printable(&v.contact),
        v.state,
        if v.muted { " (muted)" } else { "" }
    ));
    if !v.participants.is_empty() {
        let names: Vec<String> = v
            .participants
            .iter()
            .map(|p| printable(p).into_owned())
            .collect();
        out.text(&format!("  with {}", names.join(", ")));
    }
    if let Some(q) = &v.quality {
        out.text(&format!(
            "  rtt {} ms, loss {}‰, jitter {} ms, in {} kbit/s, out {} kbit/s",
            q.rtt_ms, q.loss_permille, q.jitter_ms, q.recv_kbps, q.send_kbps
        ));
    }
}

fn history(out: &Out, v: &[CallRecordView]) {
    if out.json() {
        for r in v {
            out.json_value(r);
        }
        return;
    }
    if v.is_empty() {
        out.text("no calls yet");
    }
    for r in v {
        let secs = r.duration_ms / 1000;
        let arrow = if r.direction == "incoming" {
            "←"
        } else {
            "→"
        };
        let what = if r.missed {
            "MISSED".to_string()
        } else if r.duration_ms > 0 {
            format!(
                "{}:{:02} {}",
                secs / 60,
                secs % 60,
                r.outcome.replace('_', " ")
            )
        } else {
            r.outcome.replace('_', " ")
        };
        let group = r
            .group
            .as_deref()
            .map(|g| format!(" [{}]", printable(g)))
            .unwrap_or_default();
        out.text(&format!(
            "{} UTC {arrow} {}{group}  {what}  ({})",
            local(r.started_at),
            printable(&r.contact),
            &r.call[..8.min(r.call.len())]
        ));
    }
}

/// A `call` event as `kith watch` prints it.
pub(crate) fn event_line(ev: &Value) -> String {
    let raw = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("");
    let get = |k: &str| printable(raw(k));
    let id = raw("call");
    let outcome = match raw("outcome") {
        "" => String::new(),
        o => format!(" ({})", o.replace('_', " ")),
    };
    let group = match raw("group") {
        "" => String::new(),
        _ => format!(" [{}]", get("group")),
    };
    format!(
        "call {} {} {}{group}: {}{outcome}",
        printable(id.get(..8).unwrap_or(id)),
        get("direction"),
        get("contact"),
        get("state")
    )
}

/// The call's sound and video as the daemon takes them (full paths: it opens the files).
fn media(
    audio_in: Option<PathBuf>,
    audio_out: Option<PathBuf>,
    no_audio_device: bool,
    video: VideoArgs,
) -> Result<CallMedia, ClientError> {
    Ok(CallMedia {
        audio_in: absolute(audio_in)?,
        audio_out: absolute(audio_out)?,
        no_audio_device,
        video: video.video,
        video_in: absolute(video.video_in)?,
        video_out: absolute(video.video_out)?,
    })
}
