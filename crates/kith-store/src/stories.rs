//! Status updates (stories): this user's own, with who they went to and who viewed them,
//! and the contacts' stories this node holds, each until it expires. Which story is
//! accepted, and for how long, is the engine's decision (`cores/stories`); this module only
//! keeps what it decided, and its expiry queue removes the rows, text and viewers at once.

use kith_types::IdentityKey;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::tx::{dec, enc};
use crate::*;

/// (author, story id) → [`StoredStory`].
pub(crate) const STORIES: SealedDef<(IdentityKey, u128)> = SealedDef::new("stories");
/// (expires at ms, author, story id): soonest first.
pub(crate) const STORY_EXPIRY: TableDefinition<(u64, IdentityKey, u128), ()> =
    TableDefinition::new("story_expiry");
/// (story id, viewer) → when this node learned of the view (ms): viewers of this user's
/// own stories.
pub(crate) const STORY_VIEWERS: TableDefinition<(u128, IdentityKey), u64> =
    TableDefinition::new("story_viewers");

/// One story, this user's own or a contact's.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredStory {
    /// When it was posted (the author's clock, ms; for others' stories no later than when
    /// this node got it).
    pub posted_at_ms: u64,
    /// When it goes (this node's clock, ms).
    pub expires_at_ms: u64,
    /// The text.
    pub text: String,
    /// For a contact's story: when this user viewed it (ms); 0: not yet.
    pub viewed_at_ms: u64,
    /// For this user's own story: who it went to (whose views count).
    pub audience: Vec<IdentityKey>,
}

impl std::fmt::Debug for StoredStory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the text.
        f.debug_struct("StoredStory")
            .field("posted_at_ms", &self.posted_at_ms)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("audience", &self.audience.len())
            .finish_non_exhaustive()
    }
}

macro_rules! story_reads {
    ($t:ty) => {
        impl $t {
            /// One story.
            pub fn story(
                &self,
                author: &IdentityKey,
                id: u128,
            ) -> Result<Option<StoredStory>, StoreError> {
                self.table(STORIES)?
                    .get((*author, id))?
                    .map(|v| dec(v.value()))
                    .transpose()
            }

            /// One author's stories, oldest first (at most `limit`).
            pub fn stories_of(
                &self,
                author: &IdentityKey,
                limit: usize,
            ) -> Result<Vec<(u128, StoredStory)>, StoreError> {
                let mut out = Vec::new();
                for row in self
                    .table(STORIES)?
                    .range((*author, 0u128)..=(*author, u128::MAX))?
                {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, v) = row?;
                    out.push((k.value().1, dec(v.value())?));
                }
                Ok(out)
            }

            /// Every story held, by author then id (at most `limit`).
            pub fn all_stories(
                &self,
                limit: usize,
            ) -> Result<Vec<(IdentityKey, u128, StoredStory)>, StoreError> {
                let mut out = Vec::new();
                for row in self.table(STORIES)?.iter()? {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, v) = row?;
                    let (author, id) = k.value();
                    out.push((author, id, dec(v.value())?));
                }
                Ok(out)
            }

            /// Who viewed one of this user's stories, and when.
            pub fn story_viewers(&self, id: u128) -> Result<Vec<(IdentityKey, u64)>, StoreError> {
                let mut out = Vec::new();
                let lo = (id, IdentityKey([0; 32]));
                let hi = (id, IdentityKey([0xff; 32]));
                for row in self.table(STORY_VIEWERS)?.range(lo..=hi)? {
                    let (k, v) = row?;
                    out.push((k.value().1, v.value()));
                }
                Ok(out)
            }

            /// Stories whose time ran out by `now_ms`, soonest first (at most `limit`).
            pub fn expired_stories(
                &self,
                now_ms: u64,
                limit: usize,
            ) -> Result<Vec<(IdentityKey, u128)>, StoreError> {
                let mut out = Vec::new();
                let lo = (0u64, IdentityKey([0; 32]), 0u128);
                for row in self.table(STORY_EXPIRY)?.range(lo..)? {
                    let (k, _) = row?;
                    let (at, author, id) = k.value();
                    if at > now_ms || out.len() >= limit {
                        break;
                    }
                    out.push((author, id));
                }
                Ok(out)
            }
        }
    };
}

story_reads!(ReadTx);
story_reads!(WriteTx<'_>);

impl WriteTx<'_> {
    pub(crate) fn create_story_tables(&mut self) -> Result<(), StoreError> {
        self.table_mut(STORIES)?;
        self.table_mut(STORY_EXPIRY)?;
        self.table_mut(STORY_VIEWERS)?;
        Ok(())
    }

    /// Saves a story (and its place in the expiry queue).
    pub fn put_story(
        &mut self,
        author: &IdentityKey,
        id: u128,
        story: &StoredStory,
    ) -> Result<(), StoreError> {
        if let Some(old) = self.story(author, id)?
            && old.expires_at_ms != story.expires_at_ms
        {
            self.table_mut(STORY_EXPIRY)?
                .remove((old.expires_at_ms, *author, id))?;
        }
        self.table_mut(STORY_EXPIRY)?
            .insert((story.expires_at_ms, *author, id), ())?;
        self.table_mut(STORIES)?
            .insert((*author, id), enc(story)?.as_slice())?;
        Ok(())
    }

    /// Removes a story with its viewers; returns whether it was there.
    pub fn remove_story(&mut self, author: &IdentityKey, id: u128) -> Result<bool, StoreError> {
        let Some(old) = self.story(author, id)? else {
            return Ok(false);
        };
        self.table_mut(STORY_EXPIRY)?
            .remove((old.expires_at_ms, *author, id))?;
        self.table_mut(STORIES)?.remove((*author, id))?;
        let viewers = self.story_viewers(id)?;
        let mut t = self.table_mut(STORY_VIEWERS)?;
        for (v, _) in viewers {
            t.remove((id, v))?;
        }
        Ok(true)
    }

    /// Notes that `viewer` viewed this user's story `id`; returns whether it is new.
    pub fn add_story_viewer(
        &mut self,
        id: u128,
        viewer: &IdentityKey,
        at_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut t = self.table_mut(STORY_VIEWERS)?;
        if t.get((id, *viewer))?.is_some() {
            return Ok(false);
        }
        t.insert((id, *viewer), at_ms)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stories_viewers_and_expiry_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let me = IdentityKey([1; 32]);
        let bob = IdentityKey([2; 32]);
        store
            .write(|w| {
                let s = StoredStory {
                    posted_at_ms: 10,
                    expires_at_ms: 1000,
                    text: "hello".into(),
                    viewed_at_ms: 0,
                    audience: vec![bob],
                };
                w.put_story(&me, 7, &s)?;
                w.put_story(
                    &bob,
                    8,
                    &StoredStory {
                        expires_at_ms: 2000,
                        ..s.clone()
                    },
                )?;
                assert_eq!(w.story(&me, 7)?, Some(s.clone()));
                assert_eq!(w.stories_of(&me, 10)?.len(), 1);
                assert_eq!(w.all_stories(10)?.len(), 2);
                assert!(w.add_story_viewer(7, &bob, 50)?);
                assert!(!w.add_story_viewer(7, &bob, 60)?, "a view counts once");
                assert_eq!(w.story_viewers(7)?, vec![(bob, 50)]);
                assert!(w.expired_stories(999, 10)?.is_empty());
                assert_eq!(w.expired_stories(1000, 10)?, vec![(me, 7)]);
                // A new expiry moves it in the queue.
                w.put_story(
                    &me,
                    7,
                    &StoredStory {
                        expires_at_ms: 3000,
                        ..s
                    },
                )?;
                assert_eq!(w.expired_stories(2500, 10)?, vec![(bob, 8)]);
                assert!(w.remove_story(&me, 7)?);
                assert!(!w.remove_story(&me, 7)?);
                assert!(w.story_viewers(7)?.is_empty(), "viewers go with the story");
                assert_eq!(w.expired_stories(u64::MAX, 10)?, vec![(bob, 8)]);
                Ok(())
            })
            .unwrap();
    }
}
