//! Mentions in groups: which members a text names, with no I/O.
//!
//! The sender resolves `@name` when it sends, against the names it knows the group's
//! members by (a contact's name, or `~` and a fingerprint for a member who is not a
//! contact), and carries the identities in the message
//! ([`GroupContent::Mentions`](kith_proto::groupwire::GroupContent)). So a member is
//! flagged because the sender named it, not because its name happens to be in the text; a
//! name that is not a member's is plain text. An `@` counts at the start of the text or
//! after a character that is not a letter or digit; the longest member name that follows
//! it (in any case) and ends at a word's end wins. At most
//! [`MAX_MENTIONS`] members, each once, never the sender.

use kith_types::IdentityKey;

pub use kith_proto::groupwire::MAX_MENTIONS;

/// The members `text` names, in the order first named.
pub fn resolve(
    text: &str,
    members: &[(IdentityKey, String)],
    me: &IdentityKey,
) -> Vec<IdentityKey> {
    let mut out: Vec<IdentityKey> = Vec::new();
    let mut prev: Option<char> = None;
    for (at, ch) in text.char_indices() {
        let starts = ch == '@' && prev.is_none_or(|p| !p.is_alphanumeric());
        prev = Some(ch);
        if !starts || out.len() >= MAX_MENTIONS {
            continue;
        }
        let rest = &text[at + 1..];
        let best = members
            .iter()
            .filter(|(who, name)| who != me && !name.is_empty() && names_at(rest, name))
            .max_by_key(|(_, name)| name.len());
        if let Some((who, _)) = best
            && !out.contains(who)
        {
            out.push(*who);
        }
    }
    out
}

/// Whether `rest` starts with `name` (in any case) and the word ends there.
fn names_at(rest: &str, name: &str) -> bool {
    let Some(head) = rest.get(..name.len()) else {
        return false;
    };
    head.to_lowercase() == name.to_lowercase()
        && rest[name.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(b: u8) -> IdentityKey {
        IdentityKey([b; 32])
    }

    #[test]
    fn names_resolve_to_members_only_once_and_never_the_sender() {
        let members = vec![
            (k(1), "Bob".to_string()),
            (k(2), "Bob Marley".to_string()),
            (k(3), "~ab12cd".to_string()),
            (k(9), "Me".to_string()),
        ];
        let me = k(9);
        assert_eq!(resolve("hi @bob!", &members, &me), vec![k(1)]);
        assert_eq!(
            resolve("@Bob Marley, and @Bob", &members, &me),
            vec![k(2), k(1)]
        );
        assert_eq!(
            resolve("@~ab12cd @bob @BOB", &members, &me),
            vec![k(3), k(1)]
        );
        // Not a member, inside a word, a longer word, the sender: plain text.
        for t in ["@Zed", "mail@bob", "@Bobby", "@Me", "bob", "@"] {
            assert!(resolve(t, &members, &me).is_empty(), "{t}");
        }
    }

    #[test]
    fn at_most_max_mentions() {
        let members: Vec<(IdentityKey, String)> =
            (0..100u8).map(|i| (k(i), format!("m{i}"))).collect();
        let text: String = (0..100).map(|i| format!("@m{i} ")).collect();
        assert_eq!(resolve(&text, &members, &k(200)).len(), MAX_MENTIONS);
    }
}
