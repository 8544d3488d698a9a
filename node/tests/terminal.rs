//! Terminal safety: text from a peer cannot act on the reader's terminal or forge lines in
//! human output. Two `kith up` processes on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// Regression: `kith history` printed a peer's message raw, so an escape sequence cleared
/// the reader's screen and a newline forged a message from someone else.
#[test]
fn history_shows_escape_sequences_and_newlines_escaped() {
    let (a, b) = pair();
    let evil = "hi\x1b[2J\n12:00 Mallory: fake\u{202e}txt.exe";
    a.send("Bob", evil);
    b.wait_received("Alice", 1, T);

    let out = b.cli(&["history", "Alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains('\x1b') && !text.contains('\u{202e}'),
        "raw control characters printed: {text:?}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one message, one line: {text:?}");
    assert!(
        lines[0].ends_with("Alice: hi\\u{1b}[2J\\n12:00 Mallory: fake\\u{202e}txt.exe"),
        "{text:?}"
    );

    // JSON output keeps the text as it is (serde escapes it).
    assert_eq!(b.history("Alice")[0]["text"], evil);
    // The sender's own view is escaped too.
    let mine = String::from_utf8(a.cli(&["history", "Bob"]).stdout).unwrap();
    assert_eq!(mine.lines().count(), 1, "{mine:?}");
    assert!(!mine.contains('\x1b'), "{mine:?}");
}
