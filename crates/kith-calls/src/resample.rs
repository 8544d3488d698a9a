//! Rate conversion between a sound device that cannot do 48 kHz and the call's 48 kHz mono
//! (rubato's asynchronous resampler, cubic interpolation), on the media task's side of the
//! device rings: never in an audio callback.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, PolynomialDegree, Resampler};

use crate::audio::{FRAME_SAMPLES, SAMPLE_RATE};

/// Mono samples at one rate to another, 20 ms at a time on the 48 kHz side.
pub(crate) struct Rate {
    rs: Async<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl Rate {
    /// From the device's rate to 48 kHz: each call of [`Rate::convert_in`] makes one frame.
    pub(crate) fn from_device(device_rate: u32) -> Result<Self, String> {
        Self::new(
            f64::from(SAMPLE_RATE) / f64::from(device_rate.max(1)),
            FixedAsync::Output,
        )
    }

    /// From 48 kHz to the device's rate: each call of [`Rate::convert_out`] takes one frame.
    pub(crate) fn to_device_rate(device_rate: u32) -> Result<Self, String> {
        Self::new(
            f64::from(device_rate.max(1)) / f64::from(SAMPLE_RATE),
            FixedAsync::Input,
        )
    }

    fn new(ratio: f64, fixed: FixedAsync) -> Result<Self, String> {
        let rs =
            Async::<f32>::new_poly(ratio, 1.1, PolynomialDegree::Cubic, FRAME_SAMPLES, 1, fixed)
                .map_err(|e| e.to_string())?;
        let input = vec![0.0; rs.input_frames_max()];
        let output = vec![0.0; rs.output_frames_max()];
        Ok(Self { rs, input, output })
    }

    /// Device samples this many for the next frame ([`Rate::convert_in`]).
    pub(crate) fn needed(&self) -> usize {
        self.rs.input_frames_next()
    }

    /// The most [`Rate::needed`] ever asks for.
    pub(crate) fn max_needed(&self) -> usize {
        self.input.len()
    }

    /// `device` (at most [`Rate::needed`] samples; zeros for the rest) to one 48 kHz frame.
    pub(crate) fn convert_in(&mut self, device: &[i16], out: &mut [i16; FRAME_SAMPLES]) {
        let n = self.rs.input_frames_next().min(self.input.len());
        for (i, x) in self.input[..n].iter_mut().enumerate() {
            *x = device.get(i).map_or(0.0, |s| f32::from(*s) / 32768.0);
        }
        let written = self.run(n);
        for (o, s) in out.iter_mut().zip(self.output[..written].iter()) {
            *o = (s * 32768.0).clamp(-32768.0, 32767.0) as i16;
        }
        out[written.min(FRAME_SAMPLES)..].fill(0);
    }

    /// One 48 kHz frame to device samples, handed to `sink`.
    pub(crate) fn convert_out(&mut self, frame: &[i16], mut sink: impl FnMut(i16)) {
        let n = self.rs.input_frames_next().min(self.input.len());
        for (i, x) in self.input[..n].iter_mut().enumerate() {
            *x = frame.get(i).map_or(0.0, |s| f32::from(*s) / 32768.0);
        }
        let written = self.run(n);
        for s in &self.output[..written] {
            sink((s * 32768.0).clamp(-32768.0, 32767.0) as i16);
        }
    }

    /// Resamples `n` input samples; returns how many came out (0 on an error).
    fn run(&mut self, n: usize) -> usize {
        let cap = self.output.len();
        let (Ok(inp), Ok(mut outp)) = (
            InterleavedSlice::new(&self.input[..], 1, n),
            InterleavedSlice::new_mut(&mut self.output[..], 1, cap),
        ) else {
            return 0;
        };
        self.rs
            .process_into_buffer(&inp, &mut outp, None)
            .map_or(0, |(_, written)| written.min(cap))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tone::tone_share;

    fn sine_at(rate: u32, hz: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn a_44_1_khz_microphone_comes_out_at_48_khz() {
        let device = sine_at(44_100, 440.0, 44_100);
        let mut rate = Rate::from_device(44_100).unwrap();
        let mut got = Vec::new();
        let mut pos = 0;
        for _ in 0..40 {
            let need = rate.needed();
            let mut frame = [0i16; FRAME_SAMPLES];
            rate.convert_in(&device[pos..pos + need], &mut frame);
            pos += need;
            got.extend_from_slice(&frame);
        }
        // 40 frames of 48 kHz took about 0.8 s of 44.1 kHz input.
        assert!((pos as f64 - 0.8 * 44_100.0).abs() < 1000.0, "{pos}");
        // Past the filter's start, a clean 440 Hz tone at 48 kHz.
        assert!(tone_share(&got[4800..], 440.0) > 0.9);
    }

    #[test]
    fn a_48_khz_frame_goes_out_to_a_44_1_khz_speaker() {
        let call = sine_at(SAMPLE_RATE, 440.0, FRAME_SAMPLES * 40);
        let mut rate = Rate::to_device_rate(44_100).unwrap();
        let mut got = Vec::new();
        for f in call.chunks(FRAME_SAMPLES) {
            rate.convert_out(f, |s| got.push(s));
        }
        assert!(
            (got.len() as f64 - 0.8 * 44_100.0).abs() < 1000.0,
            "{}",
            got.len()
        );
        // Measured at the device's rate: 440 Hz at 44.1 kHz is 480 Hz at 48 kHz's scale.
        let at_48 = 440.0 * f64::from(SAMPLE_RATE) / 44_100.0;
        assert!(tone_share(&got[4410..], at_48) > 0.9);
    }
}
