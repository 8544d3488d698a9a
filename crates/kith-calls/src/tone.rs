//! Test signals and their measurement: a sine tone, its strength at a frequency (Goertzel),
//! and the position of a click. Used by the tests and the call benchmark, and by anyone
//! checking a recording from the command line.

use crate::SAMPLE_RATE;

/// `n` samples of a sine tone at `hz`, amplitude `amp`.
pub fn sine(hz: f64, amp: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(SAMPLE_RATE);
            (amp * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
        })
        .collect()
}

/// The power of `samples` at `hz` relative to their total power (0 to about 1): near 1 for a
/// pure tone at `hz`, near 0 for silence, noise or another tone.
pub fn tone_share(samples: &[i16], hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(SAMPLE_RATE);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut total = 0.0f64;
    for &x in samples {
        let x = f64::from(x);
        total += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    if total <= 0.0 {
        return 0.0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // A pure tone of N samples has Goertzel power N²A²/4 and total power NA²/2.
    (2.0 * power / samples.len() as f64 / total).min(1.0)
}

/// [`tone_share`] over 100 ms windows, averaged over the windows that carry sound (at least
/// 1 % of the loudest window's power): a recording with gaps (a lost packet, a path that
/// changed) still scores its tone, where one measure over the whole file loses the phase at
/// every gap.
pub fn tone_share_in_windows(samples: &[i16], hz: f64) -> f64 {
    let window = (SAMPLE_RATE / 10) as usize;
    let power = |w: &[i16]| w.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
    let loudest = samples.chunks(window).map(power).fold(0.0, f64::max);
    if loudest <= 0.0 {
        return 0.0;
    }
    let shares: Vec<f64> = samples
        .chunks(window)
        .filter(|w| w.len() == window && power(w) >= loudest / 100.0)
        .map(|w| tone_share(w, hz))
        .collect();
    if shares.is_empty() {
        return 0.0;
    }
    shares.iter().sum::<f64>() / shares.len() as f64
}

/// The dominant frequency among `candidates` (the one with the largest [`tone_share`]).
pub fn dominant(samples: &[i16], candidates: &[f64]) -> Option<f64> {
    candidates
        .iter()
        .copied()
        .map(|hz| (hz, tone_share(samples, hz)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(hz, _)| hz)
}

/// Index of the first sample whose magnitude reaches `threshold`.
pub fn first_loud(samples: &[i16], threshold: i16) -> Option<usize> {
    samples
        .iter()
        .position(|s| s.unsigned_abs() >= threshold.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_keep_the_tone_across_gaps() {
        // A tone cut by silences and restarted with other phases: the whole-file measure
        // loses it, the windowed one does not; another tone still scores low.
        let mut s = Vec::new();
        for k in 0..6 {
            s.extend(
                sine(440.0, 8000.0, 4800 * 3 + k * 37)
                    .into_iter()
                    .skip(k * 11),
            );
            s.extend(std::iter::repeat_n(0i16, 2400));
        }
        assert!(tone_share_in_windows(&s, 440.0) > 0.8);
        assert!(tone_share_in_windows(&s, 660.0) < 0.1);
        assert_eq!(tone_share_in_windows(&[0; 9600], 440.0), 0.0);
    }

    #[test]
    fn goertzel_finds_the_tone() {
        let s = sine(440.0, 8000.0, 48_000);
        assert!(tone_share(&s, 440.0) > 0.9);
        assert!(tone_share(&s, 1000.0) < 0.01);
        assert_eq!(dominant(&s, &[300.0, 440.0, 1000.0]), Some(440.0));
        assert_eq!(tone_share(&vec![0; 1000], 440.0), 0.0);
    }
}
