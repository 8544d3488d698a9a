//! Text from peers made safe for a terminal.
//!
//! Message texts, contact and group names, group descriptions and profile fields come from
//! other people. Printed raw, a stranger could send terminal escape sequences (clear the
//! screen, retitle the window, rewrite earlier lines), reorder what is shown with bidi
//! overrides, or put a newline in a message to forge a line that looks like another
//! message (`12:00 Mallory: …`). Human output shows every such character as a visible
//! escape instead; JSON output needs none of this (serde escapes it).

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a terminal as it is: C0 controls (newline and tab included),
/// DEL, C1 controls, the line and paragraph separators, and the bidi embedding, override
/// and isolate characters.
fn unsafe_char(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every character a terminal would act on shown as a visible escape: `\n`, `\r`,
/// `\t`, and `\u{..}` for the others (ESC is `\u{1b}`). Borrowed when nothing needs it.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in [
            "",
            "hello",
            "héllo wörld ✓✓",
            "שלום",
            "C:\\path",
            "emoji 🎉",
        ] {
            assert!(
                matches!(printable(s), std::borrow::Cow::Borrowed(b) if b == s),
                "{s}"
            );
        }
    }

    #[test]
    fn controls_and_bidi_are_escaped() {
        for (raw, shown) in [
            ("a\nb", "a\\nb"),
            ("a\r\nb", "a\\r\\nb"),
            ("a\tb", "a\\tb"),
            ("\x1b[2J", "\\u{1b}[2J"),
            ("\x1b]0;title\x07", "\\u{1b}]0;title\\u{7}"),
            ("\0", "\\u{0}"),
            ("del\x7f", "del\\u{7f}"),
            ("\u{9b}31m", "\\u{9b}31m"),
            ("\u{85}", "\\u{85}"),
            ("a\u{2028}b\u{2029}", "a\\u{2028}b\\u{2029}"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}\\u{202e}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            ("hi\n12:00 Mallory: fake", "hi\\n12:00 Mallory: fake"),
        ] {
            let out = printable(raw);
            assert_eq!(out, shown, "{raw:?}");
            assert!(!out.chars().any(char::is_control), "{raw:?}");
        }
    }
}
