//! Status updates (stories): the rules, with no I/O. Who this user's stories go to (the
//! status privacy setting), which contact's story this node keeps and until when, and whose
//! view of this user's story counts. The actor (`crate::actor::stories`) reads the store,
//! asks these rules, writes what they decide and sends what they say.
//!
//! - A story goes to the contacts this user added, not blocked, filtered by the setting
//!   ([`StatusPrivacy`]): all of them, all but some, or only some.
//! - A story is kept only from a contact this user added (as in WhatsApp, where both sides
//!   must have saved each other): a stranger who wrote first cannot fill the store with
//!   stories. It shows for [`kith_proto::chat::STORY_TTL_MS`] from the earlier of its posting time and its
//!   arrival, so a sender's clock set ahead cannot keep it longer; one that arrives after
//!   its time is dropped. Each author holds at most [`MAX_STORIES_PER_AUTHOR`]: a new one
//!   pushes out that author's oldest, never anyone else's.
//! - A view counts only from a contact the story went to, while it shows.

#[cfg(test)]
use kith_proto::chat::STORY_TTL_MS;
use kith_store::StoredStory;
use kith_types::IdentityKey;
use serde::{Deserialize, Serialize};

/// Most stories kept per author.
pub const MAX_STORIES_PER_AUTHOR: usize = 30;
/// Most people named in the status privacy setting.
pub const MAX_PRIVACY_PEOPLE: usize = 1024;

/// Who sees this user's stories (kept in the store's meta `status-privacy`; the field
/// order is the format).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusPrivacy {
    /// Which rule.
    pub mode: StatusMode,
    /// The people the rule names.
    pub people: Vec<IdentityKey>,
}

/// The rule of [`StatusPrivacy`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusMode {
    /// Every contact this user added.
    #[default]
    Contacts,
    /// Every contact this user added but the named ones.
    Except,
    /// Only the named contacts (those this user added).
    Only,
}

impl StatusMode {
    /// Parses `contacts`, `except` or `only`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "contacts" => Some(Self::Contacts),
            "except" => Some(Self::Except),
            "only" => Some(Self::Only),
            _ => None,
        }
    }

    /// The name `parse` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Except => "except",
            Self::Only => "only",
        }
    }
}

/// A contact as the audience rule sees it.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    /// The person.
    pub identity: IdentityKey,
    /// Added by this user (not someone who wrote first).
    pub added_by_user: bool,
    /// Blocked by this user.
    pub blocked: bool,
}

impl StatusPrivacy {
    /// Who a new story goes to, of these contacts.
    pub fn audience(&self, contacts: &[Candidate]) -> Vec<IdentityKey> {
        contacts
            .iter()
            .filter(|c| c.added_by_user && !c.blocked)
            .filter(|c| match self.mode {
                StatusMode::Contacts => true,
                StatusMode::Except => !self.people.contains(&c.identity),
                StatusMode::Only => self.people.contains(&c.identity),
            })
            .map(|c| c.identity)
            .collect()
    }
}

/// Whether a contact's story is kept, and its times: `(posted_at_ms, expires_at_ms)` by
/// this node's clock, or why not. A story shows for `lifetime_ms` ([`kith_proto::chat::STORY_TTL_MS`] but in
/// tests that shorten it).
pub fn receive(
    added_by_user: bool,
    posted_at_ms: u64,
    now_ms: u64,
    lifetime_ms: u64,
) -> Result<(u64, u64), &'static str> {
    if !added_by_user {
        return Err("stories are kept only from contacts the user added");
    }
    let posted = posted_at_ms.min(now_ms);
    let expires = posted.saturating_add(lifetime_ms);
    if expires <= now_ms {
        return Err("the story's time ran out before it came");
    }
    Ok((posted, expires))
}

/// Whether `viewer`'s view of this user's `story` counts at `now_ms`.
pub fn view_counts(story: &StoredStory, viewer: &IdentityKey, now_ms: u64) -> bool {
    story.expires_at_ms > now_ms && story.audience.contains(viewer)
}

/// Of one author's stories (oldest first, as the store lists them), the ids to remove so a
/// new one fits under [`MAX_STORIES_PER_AUTHOR`].
pub fn make_room(ids_oldest_first: &[u128]) -> &[u128] {
    let over = (ids_oldest_first.len() + 1).saturating_sub(MAX_STORIES_PER_AUTHOR);
    &ids_oldest_first[..over.min(ids_oldest_first.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u8, added_by_user: bool, blocked: bool) -> Candidate {
        Candidate {
            identity: IdentityKey([n; 32]),
            added_by_user,
            blocked,
        }
    }

    #[test]
    fn the_audience_follows_the_setting() {
        let all = [
            c(1, true, false),
            c(2, true, false),
            c(3, false, false),
            c(4, true, true),
        ];
        let ids = |v: Vec<IdentityKey>| v.iter().map(|i| i.0[0]).collect::<Vec<_>>();
        let p = StatusPrivacy::default();
        assert_eq!(ids(p.audience(&all)), vec![1, 2], "added, not blocked");
        let except = StatusPrivacy {
            mode: StatusMode::Except,
            people: vec![IdentityKey([1; 32])],
        };
        assert_eq!(ids(except.audience(&all)), vec![2]);
        let only = StatusPrivacy {
            mode: StatusMode::Only,
            people: vec![
                IdentityKey([1; 32]),
                IdentityKey([3; 32]),
                IdentityKey([4; 32]),
            ],
        };
        assert_eq!(
            ids(only.audience(&all)),
            vec![1],
            "only never reaches strangers or blocked contacts"
        );
    }

    #[test]
    fn a_story_shows_a_day_from_the_earlier_clock() {
        let now = 10 * STORY_TTL_MS;
        assert!(
            receive(false, now, now, STORY_TTL_MS).is_err(),
            "not from strangers"
        );
        assert_eq!(
            receive(true, now - 5, now, STORY_TTL_MS),
            Ok((now - 5, now - 5 + STORY_TTL_MS))
        );
        // A clock set a year ahead does not keep it longer.
        assert_eq!(
            receive(true, now + 365 * STORY_TTL_MS, now, STORY_TTL_MS),
            Ok((now, now + STORY_TTL_MS))
        );
        assert!(
            receive(true, now - STORY_TTL_MS, now, STORY_TTL_MS).is_err(),
            "arrived too late"
        );
    }

    #[test]
    fn views_count_from_the_audience_while_it_shows() {
        let bob = IdentityKey([2; 32]);
        let s = StoredStory {
            posted_at_ms: 0,
            expires_at_ms: 100,
            text: "x".into(),
            viewed_at_ms: 0,
            audience: vec![bob],
        };
        assert!(view_counts(&s, &bob, 99));
        assert!(!view_counts(&s, &bob, 100));
        assert!(!view_counts(&s, &IdentityKey([3; 32]), 50));
    }

    #[test]
    fn room_is_made_from_the_authors_oldest() {
        let few: Vec<u128> = (0..5).collect();
        assert!(make_room(&few).is_empty());
        let full: Vec<u128> = (0..MAX_STORIES_PER_AUTHOR as u128).collect();
        assert_eq!(make_room(&full), &[0]);
        let over: Vec<u128> = (0..MAX_STORIES_PER_AUTHOR as u128 + 2).collect();
        assert_eq!(make_room(&over), &[0, 1, 2]);
    }
}
