//! The default microphone and speaker, through `cpal` (ALSA on Linux).
//!
//! The device's callbacks run on the audio thread and must never block or allocate: each
//! side is bridged to the media task by a bounded lock-free ring of samples (`ringbuf`).
//! The microphone's callback mixes what it gets to mono and pushes it (what does not fit is
//! dropped); the task takes 20 ms at a time ([`MicRing::frame`]: zeros where the device had
//! nothing, and what piled up beyond [`MIC_KEEP`] is skipped, so a device clock that runs a
//! little fast does not build up delay). The task pushes each 20 ms it plays into the
//! speaker's ring ([`SpeakerRing::play`]: a frame that does not fit under [`SPEAKER_MAX`] is
//! dropped); the speaker's callback takes what is there and plays silence for the rest.
//!
//! Streams run at 48 kHz where the device offers it (any channel count; 16-bit, float or
//! 32-bit samples); otherwise at the device's default rate, converted on the task's side of
//! the ring ([`crate::resample`]). A device that cannot be opened is no error: the call goes
//! on without it, and the caller says so once.

use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, Sample, SampleFormat, SizedSample, StreamConfig, SupportedStreamConfig};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::audio::{FRAME_SAMPLES, SAMPLE_RATE};
use crate::resample::Rate;

/// Samples the microphone's ring holds (200 ms).
pub(crate) const MIC_RING: usize = FRAME_SAMPLES * 10;
/// Samples the microphone may have waiting before the excess is skipped (60 ms).
pub(crate) const MIC_KEEP: usize = FRAME_SAMPLES * 3;
/// Samples the speaker's ring holds (200 ms).
pub(crate) const SPEAKER_RING: usize = FRAME_SAMPLES * 10;
/// Samples queued for the speaker beyond which a new frame is dropped (100 ms).
pub(crate) const SPEAKER_MAX: usize = FRAME_SAMPLES * 5;
/// How long opening a device may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);
/// The device period asked for: 10 ms.
const PERIOD: u32 = SAMPLE_RATE / 100;

/// The task's end of the microphone's ring (device-rate samples, converted to 48 kHz here
/// when the device runs at another rate).
pub(crate) struct MicRing {
    cons: HeapCons<i16>,
    rate: Option<(Rate, Vec<i16>)>,
}

impl MicRing {
    /// The next 20 ms: what the device gave, zeros for what it did not.
    pub(crate) fn frame(&mut self, out: &mut [i16; FRAME_SAMPLES]) {
        let need = self
            .rate
            .as_ref()
            .map_or(FRAME_SAMPLES, |(r, _)| r.needed());
        let waiting = self.cons.occupied_len();
        if waiting > MIC_KEEP + need {
            self.cons.skip(waiting - MIC_KEEP);
        }
        match &mut self.rate {
            None => {
                let n = self.cons.pop_slice(out);
                out[n..].fill(0);
            }
            Some((r, scratch)) => {
                let need = need.min(scratch.len());
                let n = self.cons.pop_slice(&mut scratch[..need]);
                r.convert_in(&scratch[..n], out);
            }
        }
    }
}

/// The task's end of the speaker's ring.
pub(crate) struct SpeakerRing {
    prod: HeapProd<i16>,
    rate: Option<Rate>,
}

impl SpeakerRing {
    /// Queues 20 ms for the speaker (dropped when too much is queued already).
    pub(crate) fn play(&mut self, frame: &[i16]) {
        if self.prod.occupied_len() + frame.len() > SPEAKER_MAX {
            return;
        }
        match &mut self.rate {
            None => {
                self.prod.push_slice(frame);
            }
            Some(r) => {
                let prod = &mut self.prod;
                r.convert_out(frame, |s| {
                    let _ = prod.try_push(s);
                });
            }
        }
    }
}

/// The microphone callback's work: `data` (interleaved, `ch` channels) mixed to mono into
/// the ring; what does not fit is dropped. No allocation, no lock.
pub(crate) fn capture<T>(data: &[T], ch: usize, prod: &mut HeapProd<i16>)
where
    T: Sample,
    i16: FromSample<T>,
{
    let ch = ch.max(1);
    for frame in data.chunks(ch) {
        let sum: i32 = frame.iter().map(|s| i32::from(i16::from_sample(*s))).sum();
        let mono = (sum / ch as i32) as i16;
        if prod.try_push(mono).is_err() {
            return;
        }
    }
}

/// The speaker callback's work: fills `data` (interleaved, `ch` channels) from the ring,
/// silence where it runs dry. No allocation, no lock.
pub(crate) fn playback<T>(data: &mut [T], ch: usize, cons: &mut HeapCons<i16>)
where
    T: Sample + FromSample<i16>,
{
    let ch = ch.max(1);
    for frame in data.chunks_mut(ch) {
        let s = T::from_sample(cons.try_pop().unwrap_or(0));
        frame.fill(s);
    }
}

/// A ring pair for the microphone (device end, task end), with a rate converter when the
/// device does not run at 48 kHz.
pub(crate) fn mic_ring(device_rate: u32) -> Result<(HeapProd<i16>, MicRing), String> {
    let rate = if device_rate == SAMPLE_RATE {
        None
    } else {
        let r = Rate::from_device(device_rate)?;
        let scratch = vec![0i16; r.max_needed()];
        Some((r, scratch))
    };
    let (prod, cons) = HeapRb::<i16>::new(MIC_RING).split();
    Ok((prod, MicRing { cons, rate }))
}

/// A ring pair for the speaker (task end, device end), with a rate converter when the
/// device does not run at 48 kHz.
pub(crate) fn speaker_ring(device_rate: u32) -> Result<(SpeakerRing, HeapCons<i16>), String> {
    let rate = if device_rate == SAMPLE_RATE {
        None
    } else {
        Some(Rate::to_device_rate(device_rate)?)
    };
    let (prod, cons) = HeapRb::<i16>::new(SPEAKER_RING).split();
    Ok((SpeakerRing { prod, rate }, cons))
}

/// An open microphone: its stream (stopped when dropped) and the ring it fills.
pub(crate) struct Mic {
    _stream: cpal::Stream,
    pub(crate) ring: MicRing,
}

/// An open speaker: its stream (stopped when dropped) and the ring it plays.
pub(crate) struct Speaker {
    _stream: cpal::Stream,
    pub(crate) ring: SpeakerRing,
}

/// A 48 kHz config the device offers, fewest channels and a common format first.
fn pick(
    configs: impl Iterator<Item = cpal::SupportedStreamConfigRange>,
) -> Option<SupportedStreamConfig> {
    let rank = |f: SampleFormat| match f {
        SampleFormat::I16 => 0,
        SampleFormat::F32 => 1,
        SampleFormat::I32 => 2,
        _ => 3,
    };
    configs
        .filter(|c| c.contains_rate(SAMPLE_RATE) && rank(c.sample_format()) < 3)
        .min_by_key(|c| (c.channels(), rank(c.sample_format())))
        .map(|c| c.with_sample_rate(SAMPLE_RATE))
}

fn stream_config(c: &SupportedStreamConfig) -> StreamConfig {
    let mut config = c.config();
    if let cpal::SupportedBufferSize::Range { min, max } = *c.buffer_size()
        && (min..=max).contains(&PERIOD)
    {
        config.buffer_size = cpal::BufferSize::Fixed(PERIOD);
    }
    config
}

/// Opens the default microphone.
pub(crate) fn open_mic() -> Result<Mic, String> {
    let host = cpal::default_host();
    let dev = host
        .default_input_device()
        .ok_or_else(|| "no microphone".to_owned())?;
    let configs = dev.supported_input_configs().map_err(|e| e.to_string())?;
    let chosen = match pick(configs) {
        Some(c) => c,
        None => dev.default_input_config().map_err(|e| e.to_string())?,
    };
    let config = stream_config(&chosen);
    let (prod, ring) = mic_ring(config.sample_rate)?;
    let stream = match chosen.sample_format() {
        SampleFormat::I16 => input::<i16>(&dev, config, prod),
        SampleFormat::F32 => input::<f32>(&dev, config, prod),
        _ => input::<i32>(&dev, config, prod),
    }?;
    stream.play().map_err(|e| e.to_string())?;
    Ok(Mic {
        _stream: stream,
        ring,
    })
}

fn input<T>(
    dev: &cpal::Device,
    config: StreamConfig,
    mut prod: HeapProd<i16>,
) -> Result<cpal::Stream, String>
where
    T: SizedSample,
    i16: FromSample<T>,
{
    let ch = usize::from(config.channels);
    dev.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| capture(data, ch, &mut prod),
        |_e| {},
        Some(OPEN_TIMEOUT),
    )
    .map_err(|e| e.to_string())
}

/// Opens the default speaker.
pub(crate) fn open_speaker() -> Result<Speaker, String> {
    let host = cpal::default_host();
    let dev = host
        .default_output_device()
        .ok_or_else(|| "no speaker".to_owned())?;
    let configs = dev.supported_output_configs().map_err(|e| e.to_string())?;
    let chosen = match pick(configs) {
        Some(c) => c,
        None => dev.default_output_config().map_err(|e| e.to_string())?,
    };
    let config = stream_config(&chosen);
    let (ring, cons) = speaker_ring(config.sample_rate)?;
    let stream = match chosen.sample_format() {
        SampleFormat::I16 => output::<i16>(&dev, config, cons),
        SampleFormat::F32 => output::<f32>(&dev, config, cons),
        _ => output::<i32>(&dev, config, cons),
    }?;
    stream.play().map_err(|e| e.to_string())?;
    Ok(Speaker {
        _stream: stream,
        ring,
    })
}

fn output<T>(
    dev: &cpal::Device,
    config: StreamConfig,
    mut cons: HeapCons<i16>,
) -> Result<cpal::Stream, String>
where
    T: SizedSample + FromSample<i16>,
{
    let ch = usize::from(config.channels);
    dev.build_output_stream::<T, _, _>(
        config,
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| playback(data, ch, &mut cons),
        |_e| {},
        Some(OPEN_TIMEOUT),
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_microphone_bridge_mixes_to_mono_and_stays_bounded() {
        let (mut prod, mut ring) = mic_ring(SAMPLE_RATE).unwrap();
        // Stereo f32: left 0.5, right 0 → mono a quarter of full scale.
        let stereo: Vec<f32> = (0..FRAME_SAMPLES * 2)
            .map(|i| if i % 2 == 0 { 0.5 } else { 0.0 })
            .collect();
        capture(&stereo, 2, &mut prod);
        let mut frame = [0i16; FRAME_SAMPLES];
        ring.frame(&mut frame);
        assert!(
            frame.iter().all(|s| (8000..=8400).contains(s)),
            "{}",
            frame[0]
        );
        // Nothing more came: zeros (underflow is silence).
        ring.frame(&mut frame);
        assert!(frame.iter().all(|s| *s == 0));
        // A device far faster than the task: the ring never grows past its size, and the
        // task keeps only the newest MIC_KEEP.
        let burst = vec![1000i16; FRAME_SAMPLES * 50];
        capture(&burst, 1, &mut prod);
        assert!(prod.occupied_len() <= MIC_RING);
        ring.frame(&mut frame);
        assert_eq!(ring.cons.occupied_len(), MIC_KEEP - FRAME_SAMPLES);
        assert!(frame.iter().all(|s| *s == 1000));
    }

    #[test]
    fn a_microphone_at_44_1_khz_comes_out_at_48_khz() {
        let (mut prod, mut ring) = mic_ring(44_100).unwrap();
        let tone: Vec<i16> = (0..44_100)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 44_100.0).sin())
                    as i16
            })
            .collect();
        let mut got = Vec::new();
        let mut frame = [0i16; FRAME_SAMPLES];
        // The device gives 20 ms at its rate (882 samples) per frame the task takes.
        for chunk in tone.chunks(882) {
            capture(chunk, 1, &mut prod);
            ring.frame(&mut frame);
            got.extend_from_slice(&frame);
        }
        assert!(crate::tone::tone_share(&got[4800..got.len() - 4800], 440.0) > 0.8);
    }

    #[test]
    fn the_speaker_bridge_plays_silence_when_dry_and_drops_when_full() {
        let (mut ring, mut cons) = speaker_ring(SAMPLE_RATE).unwrap();
        ring.play(&[5000i16; FRAME_SAMPLES]);
        let mut out = vec![0.0f32; FRAME_SAMPLES * 2 + 8];
        playback(&mut out, 2, &mut cons);
        // Both channels carry the sample; past the frame, silence.
        assert!(
            out[..FRAME_SAMPLES * 2]
                .iter()
                .all(|s| (*s - 5000.0 / 32768.0).abs() < 1e-3)
        );
        assert!(out[FRAME_SAMPLES * 2..].iter().all(|s| *s == 0.0));
        // The task far faster than the device: at most SPEAKER_MAX queued.
        for _ in 0..50 {
            ring.play(&[1i16; FRAME_SAMPLES]);
        }
        assert_eq!(cons.occupied_len(), SPEAKER_MAX);
    }
}
