//! Video without a camera: pre-encoded VP8 frames from an IVF file (or the built-in test
//! pattern) go out as they are, and the frames that arrive are written to an IVF file.
//!
//! IVF is the plain container `vpxenc --ivf` and `ffmpeg -c:v libvpx -f ivf` write: a 32-byte
//! file header (`DKIF`, the codec's fourcc, width, height, time base, frame count) and then
//! for each frame a 12-byte header (size, timestamp) and the frame. Kith sends VP8 only.
//!
//! The receiving side reassembles each frame from its RTP packets (RFC 7741: the first
//! packet of a frame has the S bit with partition 0, the last has the RTP marker); a frame
//! with a packet missing is dropped whole (a decoder conceals it until the next key frame:
//! the test pattern has one every 30 frames), and nothing is written before the first key
//! frame.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;

use crate::MediaError;

/// The built-in test pattern: 30 frames of moving colour bars, 160×120 at 15 frames/s,
/// VP8 in IVF, a key frame first (so it loops). Made with `vpxenc --codec=vp8 --ivf
/// --kf-max-dist=30` from a generated YUV file.
pub const TEST_PATTERN: &[u8] = include_bytes!("../data/pattern.ivf");
/// Largest frame read from a file or reassembled from the network.
pub const MAX_FRAME: usize = 1024 * 1024;
/// Most bytes of frames read from an input file.
pub const MAX_VIDEO_INPUT: usize = 64 * 1024 * 1024;
/// Frame interval when the file's time base is missing or absurd.
const DEFAULT_INTERVAL: Duration = Duration::from_millis(33);

const IVF_HEADER: usize = 32;
const FRAME_HEADER: usize = 12;

fn file_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::File(e.to_string())
}

/// The frames of an IVF file of VP8, with their pace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ivf {
    /// Width in pixels (from the header).
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Time between frames.
    pub interval: Duration,
    /// The frames, in order.
    pub frames: Vec<Bytes>,
}

/// Parses an IVF file of VP8 frames (at most [`MAX_VIDEO_INPUT`] bytes of frames, each at
/// most [`MAX_FRAME`]). A truncated last frame is left out.
pub fn parse_ivf(data: &[u8]) -> Result<Ivf, MediaError> {
    let head = data
        .get(..IVF_HEADER)
        .ok_or_else(|| MediaError::File("not an IVF file (too short)".into()))?;
    if &head[0..4] != b"DKIF" {
        return Err(MediaError::File("not an IVF file".into()));
    }
    if &head[8..12] != b"VP80" {
        return Err(MediaError::File("the IVF file is not VP8".into()));
    }
    let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let header_len = usize::from(u16_at(6)).max(IVF_HEADER);
    let (den, num) = (u32_at(head, 16), u32_at(head, 20));
    let interval = if den > 0 && num > 0 {
        let ms = u64::from(num) * 1000 / u64::from(den);
        if (5..=1000).contains(&ms) {
            Duration::from_millis(ms)
        } else {
            DEFAULT_INTERVAL
        }
    } else {
        DEFAULT_INTERVAL
    };
    let mut frames = Vec::new();
    let mut total = 0usize;
    let mut pos = header_len;
    while let Some(fh) = data.get(pos..pos + FRAME_HEADER) {
        let size = u32_at(fh, 0) as usize;
        if size > MAX_FRAME {
            return Err(MediaError::File("an IVF frame is too large".into()));
        }
        total += size;
        if total > MAX_VIDEO_INPUT {
            break;
        }
        let start = pos + FRAME_HEADER;
        let Some(frame) = data.get(start..start + size) else {
            break;
        };
        if !frame.is_empty() {
            frames.push(Bytes::copy_from_slice(frame));
        }
        pos = start + size;
    }
    Ok(Ivf {
        width: u16_at(12),
        height: u16_at(14),
        interval,
        frames,
    })
}

/// Reads an IVF file of VP8 frames (see [`parse_ivf`]).
pub fn read_ivf(path: &Path) -> Result<Ivf, MediaError> {
    let f = std::fs::File::open(path).map_err(file_err)?;
    let mut data = Vec::new();
    f.take((MAX_VIDEO_INPUT + MAX_FRAME) as u64)
        .read_to_end(&mut data)
        .map_err(file_err)?;
    parse_ivf(&data)
}

/// Where the frames sent come from.
pub(crate) struct VideoSource {
    ivf: Ivf,
    next: usize,
    /// Start again at the first frame after the last (the test pattern).
    looped: bool,
}

impl VideoSource {
    /// The file's frames, sent once; or the test pattern, looped.
    pub(crate) fn new(path: Option<&Path>) -> Result<Self, MediaError> {
        Ok(match path {
            Some(p) => Self {
                ivf: read_ivf(p)?,
                next: 0,
                looped: false,
            },
            None => Self {
                ivf: parse_ivf(TEST_PATTERN)?,
                next: 0,
                looped: true,
            },
        })
    }

    pub(crate) fn interval(&self) -> Duration {
        self.ivf.interval
    }

    /// The next frame to send, if any is left.
    pub(crate) fn next_frame(&mut self) -> Option<Bytes> {
        if self.next >= self.ivf.frames.len() && self.looped {
            self.next = 0;
        }
        let f = self.ivf.frames.get(self.next)?.clone();
        self.next += 1;
        Some(f)
    }
}

/// Reassembles VP8 frames from RTP packets and writes them to an IVF file.
pub(crate) struct VideoSink {
    out: Option<std::io::BufWriter<std::fs::File>>,
    current: Option<BytesMut>,
    last_seq: Option<u16>,
    seen_key: bool,
    /// Frames written (or, without a file, complete frames received).
    pub(crate) frames: u32,
}

impl VideoSink {
    pub(crate) fn new(path: Option<&Path>) -> Result<Self, MediaError> {
        let out = match path {
            Some(p) => {
                let mut w = std::io::BufWriter::new(std::fs::File::create(p).map_err(file_err)?);
                w.write_all(&ivf_header(0)).map_err(file_err)?;
                Some(w)
            }
            None => None,
        };
        Ok(Self {
            out,
            current: None,
            last_seq: None,
            seen_key: false,
            frames: 0,
        })
    }

    /// Takes one RTP packet of the video track. Anything malformed is dropped.
    pub(crate) fn packet(
        &mut self,
        seq: u16,
        marker: bool,
        payload: &Bytes,
    ) -> Result<(), MediaError> {
        if let Some(last) = self.last_seq {
            let gap = seq.wrapping_sub(last);
            if gap == 0 || gap > u16::MAX / 2 {
                return Ok(());
            }
            if gap > 1 {
                // A packet was lost: the frame it belonged to cannot be used.
                self.current = None;
            }
        }
        self.last_seq = Some(seq);
        let mut vp8 = Vp8Packet::default();
        let Ok(data) = vp8.depacketize(payload) else {
            self.current = None;
            return Ok(());
        };
        if vp8.s == 1 && vp8.pid == 0 {
            // A new frame starts (a half-built one was left incomplete: dropped).
            self.current = Some(BytesMut::new());
        }
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        if cur.len() + data.len() > MAX_FRAME {
            self.current = None;
            return Ok(());
        }
        cur.extend_from_slice(&data);
        if marker && let Some(frame) = self.current.take() {
            self.frame(&frame)?;
        }
        Ok(())
    }

    fn frame(&mut self, frame: &[u8]) -> Result<(), MediaError> {
        // VP8 payload header: the lowest bit of the first byte is 0 on a key frame.
        let key = frame.first().is_some_and(|b| b & 1 == 0);
        if !(self.seen_key || key) {
            return Ok(());
        }
        self.seen_key = true;
        if let Some(w) = &mut self.out {
            let size = u32::try_from(frame.len()).map_err(file_err)?;
            w.write_all(&size.to_le_bytes()).map_err(file_err)?;
            w.write_all(&u64::from(self.frames).to_le_bytes())
                .map_err(file_err)?;
            w.write_all(frame).map_err(file_err)?;
        }
        self.frames = self.frames.saturating_add(1);
        Ok(())
    }

    /// Completes the file (its header gets the frame count).
    pub(crate) fn finish(self) -> Result<(), MediaError> {
        let Some(w) = self.out else {
            return Ok(());
        };
        let mut f = w.into_inner().map_err(file_err)?;
        f.seek(SeekFrom::Start(0)).map_err(file_err)?;
        f.write_all(&ivf_header(self.frames)).map_err(file_err)?;
        f.flush().map_err(file_err)
    }
}

/// An IVF file header for VP8 with `frames` frames. The size is not known without decoding
/// the first key frame: the test pattern's, which players ignore in favour of the stream's.
fn ivf_header(frames: u32) -> [u8; IVF_HEADER] {
    let mut h = [0u8; IVF_HEADER];
    h[0..4].copy_from_slice(b"DKIF");
    h[6..8].copy_from_slice(&(IVF_HEADER as u16).to_le_bytes());
    h[8..12].copy_from_slice(b"VP80");
    h[12..14].copy_from_slice(&160u16.to_le_bytes());
    h[14..16].copy_from_slice(&120u16.to_le_bytes());
    // Time base 1/30 s: timestamps are frame numbers.
    h[16..20].copy_from_slice(&30u32.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[24..28].copy_from_slice(&frames.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rtc::rtp::codec::vp8::Vp8Payloader;
    use rtc::rtp::packetizer::Payloader;

    #[test]
    fn the_test_pattern_is_vp8_starting_with_a_key_frame() {
        let ivf = parse_ivf(TEST_PATTERN).unwrap();
        assert_eq!(ivf.frames.len(), 30);
        assert_eq!((ivf.width, ivf.height), (160, 120));
        assert_eq!(ivf.interval, Duration::from_millis(66));
        assert_eq!(ivf.frames[0][0] & 1, 0, "key frame first");
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        assert!(parse_ivf(b"").is_err());
        assert!(parse_ivf(&[0u8; 40]).is_err());
        let mut big = TEST_PATTERN[..IVF_HEADER].to_vec();
        big.extend_from_slice(&u32::MAX.to_le_bytes());
        big.extend_from_slice(&[0u8; 8]);
        assert!(parse_ivf(&big).is_err());
        // Truncated: the frames that are whole.
        let cut = parse_ivf(&TEST_PATTERN[..TEST_PATTERN.len() - 5]).unwrap();
        assert_eq!(cut.frames.len(), 29);
    }

    #[test]
    fn frames_survive_packetizing_and_a_lost_packet_drops_its_frame() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("v.ivf");
        let ivf = parse_ivf(TEST_PATTERN).unwrap();
        let mut sink = VideoSink::new(Some(&out)).unwrap();
        let mut pay = Vp8Payloader::default();
        let mut seq = 0u16;
        for (i, f) in ivf.frames.iter().enumerate() {
            // Small MTU: every frame is split.
            let parts = pay.payload(20, f).unwrap();
            let n = parts.len();
            for (j, p) in parts.iter().enumerate() {
                seq = seq.wrapping_add(1);
                if i == 5 && j == 1 {
                    continue; // lost
                }
                sink.packet(seq, j + 1 == n, p).unwrap();
            }
        }
        // Garbage from a peer is dropped.
        sink.packet(seq.wrapping_add(1), true, &Bytes::from_static(&[1]))
            .unwrap();
        sink.packet(seq.wrapping_add(2), true, &Bytes::from_static(&[0xff; 3]))
            .unwrap();
        sink.finish().unwrap();
        let got = read_ivf(&out).unwrap();
        assert_eq!(got.frames.len(), 29);
        let mut want = ivf.frames.clone();
        want.remove(5);
        assert_eq!(got.frames, want);
    }

    #[test]
    fn the_pattern_loops_and_a_file_plays_once() {
        let mut p = VideoSource::new(None).unwrap();
        let first = p.next_frame().unwrap();
        for _ in 0..29 {
            p.next_frame().unwrap();
        }
        assert_eq!(p.next_frame().unwrap(), first);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("in.ivf");
        std::fs::write(&f, TEST_PATTERN).unwrap();
        let mut once = VideoSource::new(Some(&f)).unwrap();
        for _ in 0..30 {
            once.next_frame().unwrap();
        }
        assert!(once.next_frame().is_none());
    }
}
