//! Audio files and the Opus codec: 48 kHz mono, 20 ms frames.

use std::path::Path;

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Channels, SampleRate};

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

/// The sending side: input samples to Opus packets.
pub(crate) struct Source {
    samples: Vec<i16>,
    pos: usize,
    enc: Encoder,
    pub(crate) probe: Option<std::sync::Arc<crate::ClickProbe>>,
}

impl Source {
    pub(crate) fn new(samples: Vec<i16>) -> Result<Self, MediaError> {
        let enc = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip)
            .map_err(opus_err)?;
        Ok(Self {
            samples,
            pos: 0,
            enc,
            probe: None,
        })
    }

    /// The next 20 ms as an Opus packet: input samples, or silence when muted or past the
    /// end of the input.
    pub(crate) fn next_packet(&mut self, muted: bool) -> Result<Vec<u8>, MediaError> {
        let mut frame = [0i16; FRAME_SAMPLES];
        let end = (self.pos + FRAME_SAMPLES).min(self.samples.len());
        if self.pos < end {
            if !muted {
                frame[..end - self.pos].copy_from_slice(&self.samples[self.pos..end]);
            }
            self.pos = end;
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

/// The receiving side: Opus packets (in RTP order) to samples, with loss concealed.
pub(crate) struct Sink {
    dec: Decoder,
    last_seq: Option<u16>,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
    pub(crate) probe: Option<std::sync::Arc<crate::ClickProbe>>,
}

/// Most lost packets concealed at once (a longer gap is not filled).
const MAX_CONCEAL: u16 = 50;

impl Sink {
    pub(crate) fn new(out: Option<&Path>) -> Result<Self, MediaError> {
        let dec = Decoder::new(SampleRate::Hz48000, Channels::Mono).map_err(opus_err)?;
        let writer = match out {
            Some(p) => Some(hound::WavWriter::create(p, spec()).map_err(file_err)?),
            None => None,
        };
        Ok(Self {
            dec,
            last_seq: None,
            writer,
            probe: None,
        })
    }

    /// Takes one packet with its RTP sequence number. A packet older than the last one is
    /// dropped; a gap is filled by the decoder's concealment.
    pub(crate) fn packet(&mut self, seq: u16, payload: &[u8]) -> Result<(), MediaError> {
        if let Some(last) = self.last_seq {
            let gap = seq.wrapping_sub(last);
            if gap == 0 || gap > u16::MAX / 2 {
                return Ok(());
            }
            for _ in 1..gap.min(MAX_CONCEAL) {
                self.decode(None)?;
            }
        }
        self.last_seq = Some(seq);
        self.decode(Some(payload))
    }

    fn decode(&mut self, payload: Option<&[u8]>) -> Result<(), MediaError> {
        let mut pcm = vec![0i16; FRAME_SAMPLES * 6];
        let packet = match payload {
            Some(p) if !p.is_empty() => {
                Some(audiopus::packet::Packet::try_from(p).map_err(opus_err)?)
            }
            _ => None,
        };
        // Concealment makes as many samples as the buffer holds: one frame's worth.
        let room = if packet.is_some() {
            pcm.len()
        } else {
            FRAME_SAMPLES
        };
        let signals = audiopus::MutSignals::try_from(&mut pcm[..room]).map_err(opus_err)?;
        let n = match self.dec.decode(packet, signals, false) {
            Ok(n) => n,
            // A packet the decoder cannot read is lost, not fatal.
            Err(_) => return Ok(()),
        };
        if let Some(p) = &self.probe {
            p.on_heard(&pcm[..n.min(pcm.len())]);
        }
        if let Some(w) = &mut self.writer {
            for s in &pcm[..n.min(pcm.len())] {
                w.write_sample(*s).map_err(file_err)?;
            }
        }
        Ok(())
    }

    /// Completes the output file.
    pub(crate) fn finish(self) -> Result<(), MediaError> {
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

    #[test]
    fn opus_round_trip_keeps_a_tone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.wav");
        let mut src = Source::new(tone(440.0, FRAME_SAMPLES * 50)).unwrap();
        let mut sink = Sink::new(Some(&out)).unwrap();
        for seq in 0..50u16 {
            let p = src.next_packet(false).unwrap();
            // Every tenth packet lost: concealed, still 50 frames out.
            if seq % 10 != 5 {
                sink.packet(seq, &p).unwrap();
            }
        }
        sink.finish().unwrap();
        let got = read_wav(&out).unwrap();
        assert_eq!(got.len(), FRAME_SAMPLES * 50);
        let energy: f64 = got.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / got.len() as f64;
        assert!(energy > 1e6, "a tone comes out, energy {energy}");
    }

    #[test]
    fn muted_source_sends_silence() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.wav");
        let mut src = Source::new(tone(440.0, FRAME_SAMPLES * 20)).unwrap();
        let mut sink = Sink::new(Some(&out)).unwrap();
        for seq in 0..20u16 {
            sink.packet(seq, &src.next_packet(true).unwrap()).unwrap();
        }
        sink.finish().unwrap();
        let got = read_wav(&out).unwrap();
        assert!(got.iter().all(|s| s.unsigned_abs() < 50));
    }
}
