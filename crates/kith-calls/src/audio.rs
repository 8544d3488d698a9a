//! Audio files and the Opus codec: 48 kHz mono, 20 ms frames.

use std::path::Path;

use std::time::{Duration, Instant};

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Channels, SampleRate};
use bytes::Bytes;

use crate::jitter::{JitterBuffer, MAX_CONCEAL_RUN, MAX_PACKETS, Playout};
use crate::{MAX_INPUT_SAMPLES, MediaError};

/// The sample rate of everything here.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 960;
/// Largest Opus packet we make or take.
pub(crate) const MAX_PACKET: usize = 1500;

fn file_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::File(e.to_string())
}

/// Reads a 16-bit WAV file at 48 kHz (stereo is mixed down to mono), at most
/// [`MAX_INPUT_SAMPLES`] samples.
pub fn read_wav(path: &Path) -> Result<Vec<i16>, MediaError> {
    let mut r = hound::WavReader::open(path).map_err(file_err)?;
    let spec = r.spec();
    if spec.sample_rate != SAMPLE_RATE
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
        || !(1..=2).contains(&spec.channels)
    {
        return Err(MediaError::File(
            "need 16-bit PCM at 48000 Hz, mono or stereo (sox in.wav -r 48000 -b 16 out.wav)"
                .into(),
        ));
    }
    let ch = usize::from(spec.channels);
    let mut out = Vec::new();
    let mut acc = 0i32;
    for (i, s) in r.samples::<i16>().enumerate() {
        let s = s.map_err(file_err)?;
        acc += i32::from(s);
        if (i + 1) % ch == 0 {
            out.push((acc / ch as i32) as i16);
            acc = 0;
            if out.len() >= MAX_INPUT_SAMPLES {
                break;
            }
        }
    }
    Ok(out)
}

/// Writes 16-bit mono samples at 48 kHz to a WAV file.
pub fn write_wav(path: &Path, samples: &[i16]) -> Result<(), MediaError> {
    let mut w = hound::WavWriter::create(path, spec()).map_err(file_err)?;
    for s in samples {
        w.write_sample(*s).map_err(file_err)?;
    }
    w.finalize().map_err(file_err)
}

pub(crate) fn spec() -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

fn opus_err(e: audiopus::Error) -> MediaError {
    MediaError::Opus(e.to_string())
}

/// Where the sending side's sound comes from.
pub(crate) enum Input {
    /// Samples of a file, then silence.
    File { samples: Vec<i16>, pos: usize },
    /// The default microphone.
    Mic(Box<crate::device::Mic>),
    /// Silence.
    None,
}

/// The sending side: input samples to Opus packets.
pub(crate) struct Source {
    pub(crate) input: Input,
    enc: Encoder,
    pub(crate) probe: Option<std::sync::Arc<crate::ClickProbe>>,
}

impl Source {
    #[cfg(test)]
    pub(crate) fn new(samples: Vec<i16>) -> Result<Self, MediaError> {
        Self::with_input(Input::File { samples, pos: 0 })
    }

    pub(crate) fn with_input(input: Input) -> Result<Self, MediaError> {
        let mut enc = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip)
            .map_err(opus_err)?;
        // In-band FEC, so the receiver can rebuild a lost frame from the next packet.
        enc.set_inband_fec(true).map_err(opus_err)?;
        enc.set_packet_loss_perc(5).map_err(opus_err)?;
        Ok(Self {
            input,
            enc,
            probe: None,
        })
    }

    /// The next 20 ms as an Opus packet: input samples, or silence when muted or past the
    /// end of the input.
    pub(crate) fn next_packet(&mut self, muted: bool) -> Result<Vec<u8>, MediaError> {
        let mut frame = [0i16; FRAME_SAMPLES];
        match &mut self.input {
            Input::File { samples, pos } => {
                let end = (*pos + FRAME_SAMPLES).min(samples.len());
                if *pos < end {
                    frame[..end - *pos].copy_from_slice(&samples[*pos..end]);
                    *pos = end;
                }
            }
            // The microphone is read while muted too, so nothing piles up in its ring.
            Input::Mic(m) => m.ring.frame(&mut frame),
            Input::None => {}
        }
        if muted {
            frame.fill(0);
        }
        if let Some(p) = &self.probe {
            p.on_sent(&frame);
        }
        let mut out = vec![0u8; MAX_PACKET];
        let n = self.enc.encode(&frame, &mut out).map_err(opus_err)?;
        out.truncate(n);
        Ok(out)
    }
}

/// The receiving side: Opus packets through the jitter buffer, decoded on a steady 20 ms
/// clock ([`Sink::tick`]), loss concealed, to a WAV file and/or the default speaker.
pub(crate) struct Sink {
    dec: Decoder,
    jitter: JitterBuffer,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
    pub(crate) speaker: Option<crate::device::Speaker>,
    /// Sound has started: from now on every tick writes a frame (silence when there is
    /// nothing), so the output file keeps time.
    started: bool,
    pub(crate) probe: Option<std::sync::Arc<crate::ClickProbe>>,
}

impl Sink {
    pub(crate) fn new(out: Option<&Path>) -> Result<Self, MediaError> {
        let dec = Decoder::new(SampleRate::Hz48000, Channels::Mono).map_err(opus_err)?;
        let writer = match out {
            Some(p) => Some(hound::WavWriter::create(p, spec()).map_err(file_err)?),
            None => None,
        };
        Ok(Self {
            dec,
            jitter: JitterBuffer::new(),
            writer,
            speaker: None,
            started: false,
            probe: None,
        })
    }

    /// Takes one packet from the peer (RTP sequence number and timestamp, payload, when it
    /// came) into the jitter buffer.
    pub(crate) fn packet(&mut self, seq: u16, ts: u32, payload: Bytes, arrival: Instant) {
        self.jitter.push(seq, ts, payload, arrival);
    }

    /// One tick of the 20 ms playout clock: the next frame out.
    pub(crate) fn tick(&mut self, now: Instant) -> Result<(), MediaError> {
        let mut pcm = [0i16; FRAME_SAMPLES];
        let n = match self.jitter.pop(now) {
            Playout::Silence => {
                if !self.started {
                    return Ok(());
                }
                FRAME_SAMPLES
            }
            Playout::Packet { payload, .. } => self.decode(Some(&payload), false, &mut pcm),
            Playout::Fec { next, .. } => self.decode(Some(&next), true, &mut pcm),
            Playout::Conceal { .. } | Playout::Stretch => self.decode(None, false, &mut pcm),
        };
        self.started = true;
        self.out(&pcm[..n])
    }

    /// Decodes into `pcm` (one frame; a longer packet is cut to it); returns the samples
    /// made. A packet the decoder cannot read is concealed.
    fn decode(
        &mut self,
        payload: Option<&[u8]>,
        fec: bool,
        pcm: &mut [i16; FRAME_SAMPLES],
    ) -> usize {
        let mut buf = [0i16; FRAME_SAMPLES * 6];
        let packet = payload
            .filter(|p| !p.is_empty())
            .and_then(|p| audiopus::packet::Packet::try_from(p).ok());
        // Concealment and FEC make as many samples as the buffer holds: one frame's worth.
        let room = if packet.is_some() && !fec {
            buf.len()
        } else {
            FRAME_SAMPLES
        };
        let n = match audiopus::MutSignals::try_from(&mut buf[..room]) {
            Ok(signals) => match self.dec.decode(packet, signals, fec) {
                Ok(n) => n,
                Err(_) => {
                    let signals = audiopus::MutSignals::try_from(&mut buf[..FRAME_SAMPLES]);
                    signals
                        .ok()
                        .and_then(|s| self.dec.decode(None, s, false).ok())
                        .unwrap_or(0)
                }
            },
            Err(_) => 0,
        };
        let n = n.min(FRAME_SAMPLES);
        pcm[..n].copy_from_slice(&buf[..n]);
        // A short decode still fills the frame (silence), keeping the clock.
        FRAME_SAMPLES
    }

    fn out(&mut self, pcm: &[i16]) -> Result<(), MediaError> {
        if let Some(p) = &self.probe {
            p.on_heard(pcm);
        }
        if let Some(s) = &mut self.speaker {
            s.ring.play(pcm);
        }
        if let Some(w) = &mut self.writer {
            for s in pcm {
                w.write_sample(*s).map_err(file_err)?;
            }
        }
        Ok(())
    }

    /// Plays out what the jitter buffer still holds, then completes the output file.
    pub(crate) fn finish(mut self) -> Result<(), MediaError> {
        let mut now = Instant::now() + Duration::from_secs(1);
        let mut left = MAX_PACKETS * (MAX_CONCEAL_RUN as usize + 2);
        while !self.jitter.drained() && left > 0 {
            self.tick(now)?;
            now += Duration::from_millis(20);
            left -= 1;
        }
        tracing::debug!(stats = ?self.jitter.stats(), "call audio played out");
        match self.writer {
            Some(w) => w.finalize().map_err(file_err),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tone(hz: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(SAMPLE_RATE);
                (8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    /// Sends `frames` packets through a sink with a steady clock (one packet in, one tick);
    /// `keep(seq)` says which arrive.
    fn through_sink(
        src: &mut Source,
        out: &Path,
        frames: u16,
        muted: bool,
        keep: impl Fn(u16) -> bool,
    ) -> Vec<i16> {
        let mut sink = Sink::new(Some(out)).unwrap();
        let mut now = Instant::now();
        for seq in 0..frames {
            let p = src.next_packet(muted).unwrap();
            if keep(seq) {
                sink.packet(seq, u32::from(seq) * 960, Bytes::from(p), now);
            }
            sink.tick(now).unwrap();
            now += Duration::from_millis(20);
        }
        sink.finish().unwrap();
        read_wav(out).unwrap()
    }

    #[test]
    fn opus_round_trip_keeps_a_tone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.wav");
        let mut src = Source::new(tone(440.0, FRAME_SAMPLES * 50)).unwrap();
        // Every tenth packet lost: concealed (or rebuilt from FEC), still 50 frames out.
        let got = through_sink(&mut src, &out, 50, false, |seq| seq % 10 != 5);
        assert_eq!(got.len(), FRAME_SAMPLES * 50);
        let energy: f64 = got.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / got.len() as f64;
        assert!(energy > 1e6, "a tone comes out, energy {energy}");
        assert!(crate::tone::tone_share_in_windows(&got, 440.0) > 0.5);
    }

    #[test]
    fn the_output_keeps_time_across_a_pause() {
        // 10 frames, then 40 lost (800 ms), then 10: the file is 60 frames long, so what
        // came after the pause sits where it was sent (the jitter buffer's clock), where
        // writing packets as they come would have made 20 frames at most.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.wav");
        let mut src = Source::new(tone(440.0, FRAME_SAMPLES * 60)).unwrap();
        let got = through_sink(&mut src, &out, 60, false, |seq| !(10..50).contains(&seq));
        assert_eq!(got.len(), FRAME_SAMPLES * 60);
        let loud = |w: &[i16]| w.iter().any(|s| s.unsigned_abs() > 1000);
        let frames: Vec<bool> = got.chunks(FRAME_SAMPLES).map(loud).collect();
        assert!(frames[..10].iter().all(|l| *l));
        assert!(
            !frames[30] && !frames[45],
            "the pause is silence in the file"
        );
        assert!(
            frames[50] && frames[59],
            "what came after plays at its time"
        );
    }

    #[test]
    fn muted_source_sends_silence() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.wav");
        let mut src = Source::new(tone(440.0, FRAME_SAMPLES * 20)).unwrap();
        let got = through_sink(&mut src, &out, 20, true, |_| true);
        assert!(!got.is_empty());
        assert!(got.iter().all(|s| s.unsigned_abs() < 50));
    }
}
