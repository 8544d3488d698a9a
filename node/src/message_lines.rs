//! How one message shows in `kith history`: the quote it answers, its body with marks
//! (forwarded, deleted, edited, starred, pinned, disappearing), and its reactions.

use kith_engine::MessageExtras;

use crate::output::{line, local};
use crate::safe::printable;

/// One message for people: a quote line when it answers another, the message line (id,
/// sender, text with its marks, then `tail`), and its reactions.
pub(crate) fn message_lines(
    id: &str,
    sent_at: u64,
    from: &str,
    text: &str,
    x: &MessageExtras,
    tail: &str,
) {
    if x.reply_to.is_some() {
        let q = x.quote.as_deref().unwrap_or("a message not here");
        line(&format!("    ↪ {}", printable(q)));
    }
    let mut body = String::new();
    if x.forwarded {
        body.push_str("(forwarded) ");
    }
    if x.deleted {
        body.push_str("🚫 this message was deleted");
    } else {
        body.push_str(&printable(text));
    }
    let mut marks = String::new();
    if x.edited && !x.deleted {
        marks.push_str("  (edited)");
    }
    if x.starred {
        marks.push_str("  ★");
    }
    if x.pinned {
        marks.push_str("  📌");
    }
    if x.expires_at.is_some() {
        marks.push_str("  ⏱");
    }
    line(&format!(
        "[{}] {id} {}: {body}{marks}{tail}",
        local(sent_at),
        printable(from)
    ));
    if !x.reactions.is_empty() {
        let r: Vec<String> = x
            .reactions
            .iter()
            .map(|(who, e)| format!("{} {}", printable(e), printable(who)))
            .collect();
        line(&format!("    [{}]", r.join(", ")));
    }
}
