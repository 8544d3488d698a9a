//! Thumbnails of photos: made by the sender, inside decode limits, carried in the manifest.
//!
//! The sender decodes the picture with the `image` crate under [`limits`] (at most
//! [`MAX_SIDE`] pixels a side and [`MAX_ALLOC`] bytes of memory; only PNG and JPEG, only
//! files up to [`MAX_SOURCE`]), so a decompression bomb or a damaged file fails quickly and
//! the photo goes without a thumbnail. The receiver decodes nothing: it checks the
//! thumbnail's header (a PNG or JPEG of 1 to [`MAX_THUMB_SIDE`] pixels a side, at most
//! `MAX_THUMBNAIL` bytes) and writes it beside the file for whatever shows it.

use std::io::Cursor;
use std::path::Path;

use image::{ImageReader, Limits};
use kith_proto::media::MAX_THUMBNAIL;

/// Largest picture side the sender decodes.
pub const MAX_SIDE: u32 = 12_000;
/// Most memory one decode may take.
pub const MAX_ALLOC: u64 = 256 << 20;
/// Largest picture file the sender decodes for a thumbnail.
pub const MAX_SOURCE: u64 = 32 << 20;
/// A thumbnail's longest side.
pub const THUMB_SIDE: u32 = 160;
/// The largest thumbnail side a receiver accepts.
pub const MAX_THUMB_SIDE: usize = 512;

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_ALLOC);
    l
}

/// A JPEG thumbnail of the picture at `path`, or `None` when it is not a PNG or JPEG this
/// node decodes within its limits.
pub fn make(path: &Path, size: u64) -> Option<Vec<u8>> {
    if size > MAX_SOURCE {
        return None;
    }
    let mut reader = ImageReader::open(path).ok()?.with_guessed_format().ok()?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        _ => return None,
    }
    reader.limits(limits());
    let img = reader.decode().ok()?;
    for quality in [70u8, 50, 30] {
        let small = img.thumbnail(THUMB_SIDE, THUMB_SIDE).to_rgb8();
        let mut out = Cursor::new(Vec::new());
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
        if enc.encode_image(&small).is_err() {
            return None;
        }
        let bytes = out.into_inner();
        if bytes.len() <= MAX_THUMBNAIL {
            return Some(bytes);
        }
    }
    None
}

/// Whether thumbnail bytes from a peer look like a small PNG or JPEG (headers only).
pub fn acceptable(bytes: &[u8]) -> bool {
    if bytes.len() > MAX_THUMBNAIL {
        return false;
    }
    match imagesize::image_type(bytes) {
        Ok(imagesize::ImageType::Png | imagesize::ImageType::Jpeg) => {}
        _ => return false,
    }
    imagesize::blob_size(bytes).is_ok_and(|s| {
        (1..=MAX_THUMB_SIDE).contains(&s.width) && (1..=MAX_THUMB_SIDE).contains(&s.height)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 99]));
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn a_photo_gets_a_small_thumbnail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        let bytes = png(1200, 800);
        std::fs::write(&p, &bytes).unwrap();
        let t = make(&p, bytes.len() as u64).unwrap();
        assert!(t.len() <= MAX_THUMBNAIL);
        assert!(acceptable(&t));
        let s = imagesize::blob_size(&t).unwrap();
        assert_eq!((s.width, s.height), (160, 107));
    }

    /// A decompression bomb (a PNG whose header claims 60,000 × 60,000 pixels) and a
    /// truncated picture get no thumbnail, quickly and without harm.
    #[test]
    fn hostile_pictures_get_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut bomb = png(1, 1);
        // IHDR width and height (bytes 16..24); the CRC no longer matches either.
        bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        let p = dir.path().join("bomb.png");
        std::fs::write(&p, &bomb).unwrap();
        assert_eq!(make(&p, bomb.len() as u64), None);
        let mut cut = png(300, 300);
        cut.truncate(cut.len() / 3);
        let p = dir.path().join("cut.png");
        std::fs::write(&p, &cut).unwrap();
        assert_eq!(make(&p, cut.len() as u64), None);
        assert_eq!(make(&p, MAX_SOURCE + 1), None);
        assert!(!acceptable(&bomb), "too large a side for a thumbnail");
        assert!(!acceptable(b"not an image"));
    }
}
