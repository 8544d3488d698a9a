//! A code drawn as a QR code in the terminal (two rows of modules per line of text).

/// `text` as a QR code of Unicode half blocks, with its quiet zone; `None` when it does not
/// fit in a QR code.
pub(crate) fn qr(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build(),
    )
}
