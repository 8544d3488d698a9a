//! The media task of one call (see the crate docs for the flow).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use tracing::{debug, warn};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCIceServer, RTCPeerConnectionState,
    RTCSessionDescription, StatsSelector,
};

use crate::audio::{Input, Sink, Source};
use crate::device::{self, Mic, Speaker};
use crate::video::{VideoSink, VideoSource};
use crate::{
    CONNECT_TIMEOUT, GATHER_TIMEOUT, MAX_SDP, MediaCmd, MediaError, MediaEvent, MediaOptions,
    QUALITY_EVERY, Quality, RECONNECT_GRACE, RESTART_EVERY, Role, read_wav,
};

/// What the peer connection's callbacks tell the task.
enum Internal {
    State(RTCPeerConnectionState),
    Gathered,
    Track(Arc<dyn TrackRemote>),
}

struct Handler {
    tx: mpsc::Sender<Internal>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.tx.try_send(Internal::Gathered);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.tx.try_send(Internal::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tx.try_send(Internal::Track(track));
    }
}

/// When the call first connects (no microphone in use while it rings): opens the default
/// microphone (when no input file is given) and speaker (when no output file is), if the
/// call uses devices. One that cannot be opened is left out, and the
/// engine hears of it once ([`MediaEvent::Notice`]): the call goes on, silent that way.
async fn open_devices(
    call: u128,
    opts: &MediaOptions,
    events: &mpsc::Sender<MediaEvent>,
) -> (Option<Mic>, Option<Speaker>) {
    let want_mic = opts.audio_device && opts.audio_in.is_none();
    let want_speaker = opts.audio_device && opts.audio_out.is_none();
    if !want_mic && !want_speaker {
        return (None, None);
    }
    let opened = tokio::task::spawn_blocking(move || {
        let mic = want_mic.then(device::open_mic);
        let speaker = want_speaker.then(device::open_speaker);
        (mic, speaker)
    })
    .await;
    let (mic, speaker) = match opened {
        Ok(v) => v,
        Err(e) => {
            let e = e.to_string();
            (
                want_mic.then(|| Err(e.clone())),
                want_speaker.then(|| Err(e)),
            )
        }
    };
    let mut missing = Vec::new();
    let mic = match mic {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            missing.push(format!("no microphone ({e}): sending silence"));
            None
        }
        None => None,
    };
    let speaker = match speaker {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            missing.push(format!("no speaker ({e}): nothing is played"));
            None
        }
        None => None,
    };
    if !missing.is_empty() {
        let text = format!("call audio: {}", missing.join("; "));
        warn!("{text}");
        let _ = events.try_send(MediaEvent::Notice { call, text });
    }
    (mic, speaker)
}

fn rtc_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::WebRtc(e.to_string())
}

/// Runs the call's media until it is stopped or fails; always ends with `Ended`.
pub(crate) async fn run(
    call: u128,
    role: Role,
    opts: MediaOptions,
    events: mpsc::Sender<MediaEvent>,
    cmds: mpsc::Receiver<MediaCmd>,
) {
    let reason = match session(call, role, &opts, &events, cmds).await {
        Ok(reason) => reason.to_string(),
        Err(e) => {
            debug!(error = %e, "call media failed");
            e.to_string()
        }
    };
    // The end must reach the engine: wait for room (the engine drains this channel).
    let _ = events.send(MediaEvent::Ended { call, reason }).await;
}

async fn session(
    call: u128,
    role: Role,
    opts: &MediaOptions,
    events: &mpsc::Sender<MediaEvent>,
    mut cmds: mpsc::Receiver<MediaCmd>,
) -> Result<&'static str, MediaError> {
    let file_in = match &opts.audio_in {
        Some(p) => Some(read_wav(p)?),
        None => None,
    };
    // The output file is created now, so a bad path fails the call at once.
    let mut sink = Sink::new(opts.audio_out.as_deref())?;
    // Devices are opened once the call connects (no microphone in use while it rings).
    let input = match file_in {
        Some(samples) => Input::File { samples, pos: 0 },
        None => Input::None,
    };
    let mut source = Source::with_input(input)?;
    source.probe = opts.probe.clone();
    sink.probe = opts.probe.clone();

    let mut media = MediaEngine::default();
    media.register_default_codecs().map_err(rtc_err)?;
    // Host candidates carry IP addresses; no mDNS names are made or resolved.
    // An ICE restart replaces the sockets (and TURN allocations) and their candidates: after
    // a change of network the old ones may lead nowhere.
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_discard_local_candidates_during_ice_restart(true)
        .build();
    let (itx, mut internal) = mpsc::channel(64);
    let config = RTCConfigurationBuilder::new()
        .with_ice_servers(
            opts.ice_servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                })
                .collect(),
        )
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_handler(Arc::new(Handler { tx: itx }))
        .with_udp_addrs(vec![SocketAddr::new(opts.bind, 0)])
        .build()
        .await
        .map_err(rtc_err)?;

    let ssrc = rand::random::<u32>();
    let track = Arc::new(
        TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                "kith".to_owned(),
                "audio".to_owned(),
                "audio".to_owned(),
                RtpCodecKind::Audio,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: RTCRtpCodec {
                        mime_type: MIME_TYPE_OPUS.to_owned(),
                        clock_rate: 48_000,
                        channels: 2,
                        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                        rtcp_feedback: vec![],
                    },
                    ..Default::default()
                }],
            ),
        )
        .map_err(rtc_err)?,
    );
    let sender = pc
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await
        .map_err(rtc_err)?;
    let offered_video = match &role {
        Role::Caller => opts.video,
        Role::Callee { offer } => offer.contains("m=video"),
    };
    let mut video = if offered_video {
        Some(Video::new(&pc, opts).await?)
    } else {
        None
    };

    let result = drive(
        call,
        role,
        &pc,
        &track,
        &sender,
        ssrc,
        &mut source,
        sink,
        events,
        &mut cmds,
        &mut internal,
        &mut video,
        opts,
    )
    .await;
    let _ = pc.close().await;
    if let Some(v) = video {
        v.sink.finish()?;
    }
    result
}

/// The video track of a call: what goes out (when this side sends video) and what comes in.
struct Video {
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn webrtc::rtp_transceiver::RtpSender>,
    ssrc: u32,
    payload_type: Option<u8>,
    source: Option<VideoSource>,
    sink: VideoSink,
}

impl Video {
    async fn new(pc: &impl PeerConnection, opts: &MediaOptions) -> Result<Self, MediaError> {
        let source = if opts.video {
            Some(VideoSource::new(opts.video_in.as_deref())?)
        } else {
            None
        };
        let sink = VideoSink::new(opts.video_out.as_deref())?;
        let ssrc = rand::random::<u32>();
        let track = Arc::new(
            TrackLocalStaticSample::new(
                Instant::now(),
                MediaStreamTrack::new(
                    "kith".to_owned(),
                    "video".to_owned(),
                    "video".to_owned(),
                    RtpCodecKind::Video,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(ssrc),
                            ..Default::default()
                        },
                        codec: RTCRtpCodec {
                            mime_type: MIME_TYPE_VP8.to_owned(),
                            clock_rate: 90_000,
                            channels: 0,
                            sdp_fmtp_line: String::new(),
                            rtcp_feedback: vec![],
                        },
                        ..Default::default()
                    }],
                ),
            )
            .map_err(rtc_err)?,
        );
        let sender = pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await
            .map_err(rtc_err)?;
        Ok(Self {
            track,
            sender,
            ssrc,
            payload_type: None,
            source,
            sink,
        })
    }

    /// Sends the next frame, if this side sends video and any is left.
    async fn send_frame(&mut self) {
        let Some(source) = self.source.as_mut() else {
            return;
        };
        if self.payload_type.is_none() {
            self.payload_type = self
                .sender
                .get_parameters()
                .await
                .ok()
                .and_then(|p| p.rtp_parameters.codecs.first().map(|c| c.payload_type));
        }
        let (Some(pt), Some(frame)) = (self.payload_type, source.next_frame()) else {
            return;
        };
        let sample = Sample {
            data: frame,
            duration: source.interval(),
            ..Sample::new(Instant::now())
        };
        if let Err(e) = self
            .track
            .sample_writer(self.ssrc, pt)
            .write_sample(&sample)
            .await
        {
            debug!(error = %e, "video frame not sent");
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    call: u128,
    role: Role,
    pc: &impl PeerConnection,
    track: &Arc<TrackLocalStaticSample>,
    sender: &Arc<dyn webrtc::rtp_transceiver::RtpSender>,
    ssrc: u32,
    source: &mut Source,
    sink: Sink,
    events: &mpsc::Sender<MediaEvent>,
    cmds: &mut mpsc::Receiver<MediaCmd>,
    internal: &mut mpsc::Receiver<Internal>,
    video: &mut Option<Video>,
    opts: &MediaOptions,
) -> Result<&'static str, MediaError> {
    let caller = matches!(role, Role::Caller);
    let desc = match role {
        Role::Caller => pc.create_offer(None).await.map_err(rtc_err)?,
        Role::Callee { offer } => {
            if offer.len() > MAX_SDP {
                return Err(MediaError::TooLong);
            }
            let offer = RTCSessionDescription::offer(offer).map_err(rtc_err)?;
            pc.set_remote_description(offer).await.map_err(rtc_err)?;
            pc.create_answer(None).await.map_err(rtc_err)?
        }
    };
    pc.set_local_description(desc).await.map_err(rtc_err)?;

    // Candidates go inside the description (one signalling message each way): wait for
    // gathering, which on host candidates takes a moment.
    let mut pending_state = Vec::new();
    let mut pending_track = None;
    let gather_deadline = tokio::time::Instant::now() + GATHER_TIMEOUT;
    loop {
        match tokio::time::timeout_at(gather_deadline, internal.recv()).await {
            Ok(Some(Internal::Gathered)) | Err(_) | Ok(None) => break,
            Ok(Some(Internal::State(s))) => pending_state.push(s),
            Ok(Some(Internal::Track(t))) => pending_track = Some(t),
        }
    }
    send_local(call, pc, events).await?;

    let (rtx, mut received) = mpsc::channel::<Rtp>(256);
    let mut readers: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    if let Some(t) = pending_track {
        readers.push(tokio::spawn(read_track(t, rtx.clone())));
    }
    let mut sink = sink;
    let mut muted = false;
    let mut connected = false;
    let mut was_connected = false;
    let mut payload_type = None;
    let connect_deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut frame_tick = tokio::time::interval(Duration::from_millis(20));
    frame_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // The playout clock: one frame out of the jitter buffer every 20 ms.
    let mut play_tick = tokio::time::interval(Duration::from_millis(20));
    play_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut quality_tick = tokio::time::interval(QUALITY_EVERY);
    let sends_video = video.as_ref().is_some_and(|v| v.source.is_some());
    let mut video_tick = tokio::time::interval(
        video
            .as_ref()
            .and_then(|v| v.source.as_ref())
            .map_or(Duration::from_secs(1), VideoSource::interval),
    );
    video_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut meter = Meter::default();
    // When the link was lost (Disconnected, or Failed after it was up), if it is lost now.
    let mut lost_since: Option<tokio::time::Instant> = None;
    // The caller waits for an answer to its offer (the first, or an ICE restart's).
    let mut awaiting_answer = caller;
    // An ICE restart's description is being gathered until then.
    let mut regathering: Option<tokio::time::Instant> = None;
    // When the caller last restarted ICE.
    let mut last_restart: Option<tokio::time::Instant> = None;
    for s in pending_state {
        if let Some(end) = on_state(call, s, &mut connected, false, events) {
            return finish(sink, readers, end).await;
        }
    }
    let end = loop {
        let restart_at = match (caller, lost_since, last_restart) {
            (true, Some(lost), Some(last)) => Some(lost.max(last + RESTART_EVERY)),
            (true, Some(lost), None) => Some(lost),
            _ => None,
        };
        tokio::select! {
            biased;
            c = cmds.recv() => match c {
                Some(MediaCmd::RemoteAnswer(sdp)) => {
                    if sdp.len() > MAX_SDP {
                        break "answer too long";
                    }
                    if !std::mem::replace(&mut awaiting_answer, false) {
                        debug!("an answer to no offer of ours: ignored");
                        continue;
                    }
                    let answer = RTCSessionDescription::answer(sdp).map_err(rtc_err)?;
                    if let Err(e) = pc.set_remote_description(answer).await {
                        if meter.ever_connected.is_none() {
                            return Err(rtc_err(e));
                        }
                        debug!(error = %e, "the answer to an ICE restart was refused");
                    }
                }
                Some(MediaCmd::RemoteOffer(sdp)) => {
                    // The caller restarts ICE: answer with fresh candidates.
                    if caller || sdp.len() > MAX_SDP {
                        continue;
                    }
                    match restart_answer(pc, sdp).await {
                        Ok(()) => regathering = Some(tokio::time::Instant::now() + GATHER_TIMEOUT),
                        Err(e) => debug!(error = %e, "an ICE restart offer was refused"),
                    }
                }
                Some(MediaCmd::Mute(m)) => muted = m,
                Some(MediaCmd::Stop) | None => break "stopped",
            },
            ev = internal.recv() => match ev {
                Some(Internal::State(s)) => {
                    let ever = meter.ever_connected.is_some();
                    match s {
                        RTCPeerConnectionState::Disconnected | RTCPeerConnectionState::Failed
                            if ever =>
                        {
                            lost_since = lost_since.or(Some(tokio::time::Instant::now()));
                        }
                        RTCPeerConnectionState::Connected => lost_since = None,
                        _ => {}
                    }
                    if let Some(end) = on_state(call, s, &mut connected, ever, events) {
                        break end;
                    }
                }
                Some(Internal::Track(t)) => {
                    if readers.len() < 4 {
                        readers.push(tokio::spawn(read_track(t, rtx.clone())));
                    }
                }
                Some(Internal::Gathered) => {
                    if regathering.take().is_some() {
                        send_local(call, pc, events).await?;
                    }
                }
                None => break "closed",
            },
            _ = tokio::time::sleep_until(regathering.unwrap_or(connect_deadline)), if regathering.is_some() => {
                regathering = None;
                send_local(call, pc, events).await?;
            }
            _ = tokio::time::sleep_until(restart_at.unwrap_or(connect_deadline)), if restart_at.is_some() => {
                last_restart = Some(tokio::time::Instant::now());
                debug!("link lost: restarting ICE");
                match restart_offer(pc).await {
                    Ok(()) => {
                        awaiting_answer = true;
                        regathering = Some(tokio::time::Instant::now() + GATHER_TIMEOUT);
                    }
                    Err(e) => debug!(error = %e, "cannot restart ICE now"),
                }
            }
            Some(p) = received.recv() => {
                take(p, &mut sink, video, &mut meter)?;
            }
            _ = play_tick.tick() => sink.tick(Instant::now())?,
            _ = video_tick.tick(), if connected && sends_video => {
                if let Some(v) = video.as_mut() {
                    v.send_frame().await;
                }
            }
            _ = frame_tick.tick(), if connected => {
                if payload_type.is_none() {
                    payload_type = sender
                        .get_parameters()
                        .await
                        .ok()
                        .and_then(|p| p.rtp_parameters.codecs.first().map(|c| c.payload_type));
                }
                if let Some(pt) = payload_type {
                    let data = source.next_packet(muted)?;
                    let sample = Sample {
                        data: Bytes::from(data),
                        duration: Duration::from_millis(20),
                        ..Sample::new(Instant::now())
                    };
                    if let Err(e) = track.sample_writer(ssrc, pt).write_sample(&sample).await {
                        debug!(error = %e, "audio frame not sent");
                    }
                }
            }
            _ = quality_tick.tick(), if connected => {
                let q = meter.measure(pc).await;
                let _ = events.try_send(MediaEvent::Quality { call, q });
            }
            _ = tokio::time::sleep_until(connect_deadline), if !connected && meter.ever_connected.is_none() => {
                break "timeout";
            }
            _ = tokio::time::sleep_until(lost_since.unwrap_or(connect_deadline) + RECONNECT_GRACE), if lost_since.is_some() => {
                break "lost";
            }
        }
        if connected && meter.ever_connected.is_none() {
            meter.ever_connected = Some(Instant::now());
            let (mic, speaker) = open_devices(call, opts, events).await;
            if let Some(m) = mic {
                source.input = Input::Mic(Box::new(m));
            }
            sink.speaker = speaker;
        }
        if connected && !was_connected {
            // Frames go out from now on, one every 20 ms: not a burst of the ticks missed
            // while connecting (the other side's jitter buffer would hold them as delay).
            frame_tick.reset_immediately();
        }
        was_connected = connected;
    };
    // Whatever is still queued from the network is written before the file is closed.
    while let Ok(p) = received.try_recv() {
        take(p, &mut sink, video, &mut meter)?;
    }
    finish(sink, readers, end).await
}

async fn finish(
    sink: Sink,
    readers: Vec<tokio::task::JoinHandle<()>>,
    end: &'static str,
) -> Result<&'static str, MediaError> {
    for r in readers {
        r.abort();
    }
    sink.finish()?;
    Ok(end)
}

/// Sends the local description (with the candidates gathered so far) to the engine.
async fn send_local(
    call: u128,
    pc: &impl PeerConnection,
    events: &mpsc::Sender<MediaEvent>,
) -> Result<(), MediaError> {
    let local = pc
        .local_description()
        .await
        .ok_or_else(|| MediaError::WebRtc("no local description".into()))?;
    let _ = events
        .send(MediaEvent::LocalSdp {
            call,
            sdp: local.sdp,
        })
        .await;
    Ok(())
}

/// The caller's side of an ICE restart: fresh ICE credentials, sockets and candidates, in a
/// new offer (gathered, then sent like the first).
async fn restart_offer(pc: &impl PeerConnection) -> Result<(), MediaError> {
    pc.restart_ice().await.map_err(rtc_err)?;
    let offer = pc.create_offer(None).await.map_err(rtc_err)?;
    pc.set_local_description(offer).await.map_err(rtc_err)
}

/// The callee's side of an ICE restart: takes the caller's new offer and makes the answer
/// (its candidates are then gathered anew).
async fn restart_answer(pc: &impl PeerConnection, sdp: String) -> Result<(), MediaError> {
    let offer = RTCSessionDescription::offer(sdp).map_err(rtc_err)?;
    pc.set_remote_description(offer).await.map_err(rtc_err)?;
    let answer = pc.create_answer(None).await.map_err(rtc_err)?;
    pc.set_local_description(answer).await.map_err(rtc_err)
}

/// A state change: tells the engine, and returns why the call ends, if it does. Once the
/// call was connected (`ever`), a failed link is lost, not the end: ICE restarts.
fn on_state(
    call: u128,
    s: RTCPeerConnectionState,
    connected: &mut bool,
    ever: bool,
    events: &mpsc::Sender<MediaEvent>,
) -> Option<&'static str> {
    match s {
        RTCPeerConnectionState::Connected => {
            *connected = true;
            let _ = events.try_send(MediaEvent::Connected { call });
            None
        }
        RTCPeerConnectionState::Disconnected => {
            let _ = events.try_send(MediaEvent::Reconnecting { call });
            None
        }
        RTCPeerConnectionState::Failed if ever => {
            let _ = events.try_send(MediaEvent::Reconnecting { call });
            None
        }
        RTCPeerConnectionState::Failed => Some("failed"),
        RTCPeerConnectionState::Closed => Some("closed"),
        _ => None,
    }
}

/// One RTP packet from the peer: which track, sequence number, timestamp, marker,
/// payload, and when it came.
struct Rtp {
    video: bool,
    seq: u16,
    ts: u32,
    marker: bool,
    payload: Bytes,
    arrival: Instant,
}

/// A received packet to the audio or the video sink.
fn take(
    p: Rtp,
    sink: &mut Sink,
    video: &mut Option<Video>,
    meter: &mut Meter,
) -> Result<(), MediaError> {
    if !p.video {
        meter.packets += 1;
        sink.packet(p.seq, p.ts, p.payload, p.arrival);
        return Ok(());
    }
    if let Some(v) = video.as_mut() {
        v.sink.packet(p.seq, p.marker, &p.payload)?;
        meter.video_frames = u64::from(v.sink.frames);
    }
    Ok(())
}

/// Reads a remote track's RTP packets into the task (bounded: a full queue drops).
async fn read_track(track: Arc<dyn TrackRemote>, tx: mpsc::Sender<Rtp>) {
    let video = match track.kind().await {
        RtpCodecKind::Audio => false,
        RtpCodecKind::Video => true,
        _ => return,
    };
    while let Some(ev) = track.poll().await {
        match ev {
            TrackRemoteEvent::OnRtpPacket(p) => {
                let _ = tx.try_send(Rtp {
                    video,
                    seq: p.header.sequence_number,
                    ts: p.header.timestamp,
                    marker: p.header.marker,
                    payload: p.payload,
                    arrival: Instant::now(),
                });
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// Quality figures between two reports.
#[derive(Default)]
struct Meter {
    packets: u64,
    video_frames: u64,
    ever_connected: Option<Instant>,
    last: Option<(Instant, u64, u64)>,
}

impl Meter {
    async fn measure(&mut self, pc: &impl PeerConnection) -> Quality {
        let now = Instant::now();
        let report = pc.get_stats(now, StatsSelector::None).await;
        let mut q = Quality {
            packets: self.packets,
            video_frames: self.video_frames,
            ..Quality::default()
        };
        if let Some(pair) = report.candidate_pairs().find(|p| p.nominated) {
            q.rtt_ms = pair.current_round_trip_time * 1000.0;
        }
        let (mut recv_bytes, mut sent_bytes) = (0u64, 0u64);
        let (mut got, mut lost) = (0u64, 0i64);
        for s in report.inbound_rtp_streams() {
            recv_bytes += s.bytes_received;
            got += s.received_rtp_stream_stats.packets_received;
            lost += s.received_rtp_stream_stats.packets_lost;
            q.jitter_ms = q.jitter_ms.max(s.received_rtp_stream_stats.jitter * 1000.0);
        }
        for s in report.outbound_rtp_streams() {
            sent_bytes += s.sent_rtp_stream_stats.bytes_sent;
        }
        let lost = lost.max(0) as u64;
        if got + lost > 0 {
            q.loss = lost as f64 / (got + lost) as f64;
        }
        if let Some((then, r, s)) = self.last {
            let secs = now.duration_since(then).as_secs_f64().max(0.001);
            q.recv_kbps = recv_bytes.saturating_sub(r) as f64 * 8.0 / 1000.0 / secs;
            q.send_kbps = sent_bytes.saturating_sub(s) as f64 * 8.0 / 1000.0 / secs;
        }
        self.last = Some((now, recv_bytes, sent_bytes));
        q
    }
}
