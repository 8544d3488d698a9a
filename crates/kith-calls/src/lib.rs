//! Call media: one WebRTC peer connection per call, carrying Opus audio, on its own task.
//!
//! This crate knows nothing of contacts, sessions or the store. The engine's call core
//! (`kith_engine::cores::calls`) decides when a call starts and ends; the engine actor
//! [`spawn`]s a media task for it and passes signalling through:
//!
//! 1. [`spawn`] with [`Role::Caller`] builds the peer connection (one Opus track, host
//!    candidates on the configured address, mDNS off), makes the offer, waits for its ICE
//!    candidates to be gathered and reports the full SDP ([`MediaEvent::LocalSdp`]). The
//!    engine sends it to the callee inside an Olm-encrypted message, so the DTLS fingerprint
//!    in it is bound to the caller's verified identity; WebRTC then refuses a DTLS peer whose
//!    certificate does not match the fingerprint the other side signalled.
//! 2. With [`Role::Callee`] the task takes the offer, answers it and reports its own SDP.
//! 3. The caller's task gets the answer through [`MediaHandle::remote_answer`].
//! 4. Once connected ([`MediaEvent::Connected`]) the task sends one Opus frame (with in-band
//!    FEC) every 20 ms: the samples of the input WAV file (`audio_in`), else the default
//!    microphone ([`MediaOptions::audio_device`]), else silence; silence too when the file
//!    has ended or while muted. What arrives goes through the [`jitter`] buffer (reordered,
//!    late and duplicate packets dropped, an adaptive 40–200 ms delay) and comes out on a
//!    steady 20 ms clock, a lost packet rebuilt from the next one's FEC or concealed by the
//!    decoder; it is written to the output WAV file (`audio_out`, time-aligned: a pause is
//!    silence in the file), else played on the default speaker. The devices' callbacks are
//!    bridged to the task by bounded lock-free rings, and opened when the call first
//!    connects; a device that cannot be opened (a headless machine) is left out with one
//!    [`MediaEvent::Notice`].
//!    With video ([`MediaOptions::video`], or an offer that has a video track) a second
//!    track carries VP8 frames: pre-encoded ones from an IVF file, or a built-in test pattern
//!    (see [`video`]); the frames that arrive are written to an IVF file.
//! 5. Every [`QUALITY_EVERY`] it reports round-trip time, loss, jitter and bitrate
//!    ([`MediaEvent::Quality`]); a lost link shows as [`MediaEvent::Reconnecting`].
//! 6. ICE restart: when the link is lost (disconnected, or failed after it was up), the
//!    caller's task restarts ICE (at once, then every [`RESTART_EVERY`]): fresh sockets,
//!    candidates and TURN allocations, and a new offer out as [`MediaEvent::LocalSdp`],
//!    which the engine signals like the first. The callee's task takes it
//!    ([`MediaHandle::remote_offer`]) and answers the same way. Back on a path, the task
//!    reports [`MediaEvent::Connected`] again.
//! 7. [`MediaHandle::stop`] (or a failed link, a link lost for [`RECONNECT_GRACE`], or no
//!    connection within [`CONNECT_TIMEOUT`])
//!    closes the connection, finishes the output file and reports [`MediaEvent::Ended`].
//!
//! Nothing here waits on the engine: its events go out with `try_send` on a bounded channel
//! (a quality report the engine has no room for is dropped; state changes are few), so the
//! media path never waits on a store commit.

mod audio;
mod device;
pub mod jitter;
mod resample;
mod task;
pub mod tone;
pub mod video;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

pub use audio::{FRAME_SAMPLES, SAMPLE_RATE, read_wav, write_wav};

/// How often quality figures are reported.
pub const QUALITY_EVERY: Duration = Duration::from_secs(2);
/// How long a call may take to connect once both descriptions are known.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a call may stay disconnected (ICE trying to get the link back) before it ends:
/// the other side crashed or left the network for good.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(15);
/// While the link is lost, the caller restarts ICE (new offer, fresh candidates) at once and
/// again this often.
pub const RESTART_EVERY: Duration = Duration::from_secs(5);
/// How long ICE gathering may take before the description goes out with what it has.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// Capacity of a media task's command queue.
pub const MEDIA_COMMANDS: usize = 64;
/// Longest SDP this crate produces or accepts (bytes).
pub const MAX_SDP: usize = 16 * 1024;
/// Longest input file read (samples at 48 kHz: 10 minutes).
pub const MAX_INPUT_SAMPLES: usize = 10 * 60 * SAMPLE_RATE as usize;

/// Which side of the call this task is.
#[derive(Clone)]
pub enum Role {
    /// Makes the offer.
    Caller,
    /// Answers this offer (SDP).
    Callee {
        /// The caller's offer.
        offer: String,
    },
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Caller => f.write_str("Caller"),
            Role::Callee { .. } => f.write_str("Callee"),
        }
    }
}

/// Where a call's sound comes from and goes to, and where its sockets bind.
#[derive(Clone, Debug)]
pub struct MediaOptions {
    /// A WAV file (48 kHz, 16-bit, mono or stereo) sent as the microphone; silence without.
    pub audio_in: Option<PathBuf>,
    /// A WAV file (48 kHz, 16-bit, mono) the received sound is written to.
    pub audio_out: Option<PathBuf>,
    /// Use the default sound devices: the microphone when there is no `audio_in`, the
    /// speaker when there is no `audio_out`. One that cannot be opened (a headless machine)
    /// is left out with a [`MediaEvent::Notice`].
    pub audio_device: bool,
    /// The address the call's UDP socket binds (`0.0.0.0`: every interface but loopback).
    pub bind: IpAddr,
    /// STUN and TURN servers (server-reflexive and relay candidates), with credentials.
    pub ice_servers: Vec<IceServer>,
    /// Marks when the first loud sample went out and came in (the audio-delay benchmark).
    pub probe: Option<std::sync::Arc<ClickProbe>>,
    /// Send video: the caller offers a VP8 track; the callee (whose answer always takes an
    /// offered video track) sends on it. Frames come from `video_in`, or the test pattern.
    pub video: bool,
    /// An IVF file of VP8 frames sent (once) as the camera; the test pattern without.
    pub video_in: Option<PathBuf>,
    /// An IVF file the received VP8 frames are written to.
    pub video_out: Option<PathBuf>,
}

/// The audio-delay probe: the instant the first sample at or above `threshold` (in
/// magnitude) was sent (handed to the connection in its Opus frame) and the instant it came
/// out on the other side (jitter buffer and decoder, on its playout clock), each corrected
/// by the sample's offset in its 20 ms frame. Give the same probe to the sending and the
/// receiving task (one process, one clock).
#[derive(Debug)]
pub struct ClickProbe {
    threshold: i16,
    sent: std::sync::OnceLock<std::time::Instant>,
    heard: std::sync::OnceLock<std::time::Instant>,
}

impl ClickProbe {
    /// A probe for samples of at least `threshold` in magnitude.
    pub fn new(threshold: i16) -> Self {
        Self {
            threshold,
            sent: std::sync::OnceLock::new(),
            heard: std::sync::OnceLock::new(),
        }
    }

    /// From the click going out to the click coming out, once both happened.
    pub fn delay(&self) -> Option<Duration> {
        let (s, h) = (self.sent.get()?, self.heard.get()?);
        Some(h.saturating_duration_since(*s))
    }

    /// The first loud sample's offset in `frame`, as a duration at 48 kHz.
    fn loud_at(&self, frame: &[i16]) -> Option<Duration> {
        let i = frame
            .iter()
            .position(|s| s.unsigned_abs() >= self.threshold.unsigned_abs())?;
        Some(Duration::from_micros(
            i as u64 * 1_000_000 / u64::from(SAMPLE_RATE),
        ))
    }

    pub(crate) fn on_sent(&self, frame: &[i16]) {
        if self.sent.get().is_none()
            && let Some(at) = self.loud_at(frame)
        {
            let _ = self.sent.set(std::time::Instant::now() + at);
        }
    }

    pub(crate) fn on_heard(&self, frame: &[i16]) {
        if self.heard.get().is_none()
            && let Some(at) = self.loud_at(frame)
        {
            let _ = self.heard.set(std::time::Instant::now() + at);
        }
    }
}

impl Default for MediaOptions {
    fn default() -> Self {
        Self {
            audio_in: None,
            audio_out: None,
            audio_device: false,
            bind: IpAddr::from([0, 0, 0, 0]),
            ice_servers: Vec::new(),
            probe: None,
            video: false,
            video_in: None,
            video_out: None,
        }
    }
}

/// A STUN or TURN server. `Debug` never shows the credential.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp` URLs.
    pub urls: Vec<String>,
    /// The TURN user name (empty for STUN).
    pub username: String,
    /// The TURN credential (empty for STUN).
    pub credential: String,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

/// Live quality of a call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quality {
    /// Round-trip time of the selected candidate pair, in ms.
    pub rtt_ms: f64,
    /// Fraction of the packets expected from the peer that were lost (0 to 1).
    pub loss: f64,
    /// Interarrival jitter of what we receive, in ms.
    pub jitter_ms: f64,
    /// Received bitrate over the last period, in kbit/s.
    pub recv_kbps: f64,
    /// Sent bitrate over the last period, in kbit/s.
    pub send_kbps: f64,
    /// Audio packets received so far.
    pub packets: u64,
    /// Whole video frames received so far.
    pub video_frames: u64,
}

/// What a media task tells the engine.
#[derive(Clone, PartialEq)]
pub enum MediaEvent {
    /// The local description with its gathered candidates, to signal to the peer.
    LocalSdp {
        /// The call.
        call: u128,
        /// The SDP.
        sdp: String,
    },
    /// Media flows (DTLS done, fingerprints checked).
    Connected {
        /// The call.
        call: u128,
    },
    /// The link was lost; ICE is trying to get it back.
    Reconnecting {
        /// The call.
        call: u128,
    },
    /// Quality figures.
    Quality {
        /// The call.
        call: u128,
        /// The figures.
        q: Quality,
    },
    /// Something the user should know that does not end the call (no sound device).
    Notice {
        /// The call.
        call: u128,
        /// What, in words.
        text: String,
    },
    /// The task ended (stopped, failed or timed out); the output file is complete.
    Ended {
        /// The call.
        call: u128,
        /// Why, in a few words (`stopped`, `failed`, `timeout`, an error).
        reason: String,
    },
}

impl std::fmt::Debug for MediaEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaEvent::LocalSdp { call, sdp } => {
                write!(f, "LocalSdp {{ call: {call:x}, len: {} }}", sdp.len())
            }
            MediaEvent::Connected { call } => write!(f, "Connected {{ call: {call:x} }}"),
            MediaEvent::Reconnecting { call } => write!(f, "Reconnecting {{ call: {call:x} }}"),
            MediaEvent::Quality { call, q } => write!(f, "Quality {{ call: {call:x}, {q:?} }}"),
            MediaEvent::Notice { call, .. } => write!(f, "Notice {{ call: {call:x} }}"),
            MediaEvent::Ended { call, reason } => {
                write!(f, "Ended {{ call: {call:x}, reason: {reason} }}")
            }
        }
    }
}

/// Commands to a media task.
enum MediaCmd {
    RemoteAnswer(String),
    RemoteOffer(String),
    Mute(bool),
    Stop,
}

/// The engine's handle on one call's media task.
#[derive(Debug, Clone)]
pub struct MediaHandle {
    call: u128,
    tx: mpsc::Sender<MediaCmd>,
}

impl std::fmt::Debug for MediaCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaCmd::RemoteAnswer(_) => f.write_str("RemoteAnswer"),
            MediaCmd::RemoteOffer(_) => f.write_str("RemoteOffer"),
            MediaCmd::Mute(m) => write!(f, "Mute({m})"),
            MediaCmd::Stop => f.write_str("Stop"),
        }
    }
}

impl MediaHandle {
    /// The call this task carries.
    pub fn call(&self) -> u128 {
        self.call
    }

    /// Gives the caller's task the callee's answer.
    pub fn remote_answer(&self, sdp: String) {
        let _ = self.tx.try_send(MediaCmd::RemoteAnswer(sdp));
    }

    /// Gives the callee's task the caller's ICE restart offer.
    pub fn remote_offer(&self, sdp: String) {
        let _ = self.tx.try_send(MediaCmd::RemoteOffer(sdp));
    }

    /// Sends silence instead of the input (or stops doing so).
    pub fn mute(&self, muted: bool) {
        let _ = self.tx.try_send(MediaCmd::Mute(muted));
    }

    /// Ends the call's media; [`MediaEvent::Ended`] follows once the output is complete.
    pub fn stop(&self) {
        let _ = self.tx.try_send(MediaCmd::Stop);
    }
}

/// Errors of the media task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// WebRTC refused something (a description, a socket).
    #[error("webrtc: {0}")]
    WebRtc(String),
    /// The Opus codec failed.
    #[error("opus: {0}")]
    Opus(String),
    /// An audio file could not be read or written, or has an unsupported format.
    #[error("audio file: {0}")]
    File(String),
    /// The peer's description is too long.
    #[error("description too long")]
    TooLong,
}

/// Starts the media task of a call. Its events go to `events`.
pub fn spawn(
    call: u128,
    role: Role,
    opts: MediaOptions,
    events: mpsc::Sender<MediaEvent>,
) -> MediaHandle {
    let (tx, rx) = mpsc::channel(MEDIA_COMMANDS);
    tokio::spawn(task::run(call, role, opts, events, rx));
    MediaHandle { call, tx }
}
