//! Params of `media.save`: files are sealed at rest (see `media::files`), so the engine
//! writes a file out, opened, where the user asks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Params of `media.save`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaSaveParams {
    /// The message the file is in.
    pub id: String,
    /// The new file to write (an absolute path; never overwritten).
    pub to: PathBuf,
    /// Write the file's thumbnail (a photo's, sealed at rest too) instead of the file.
    #[serde(default)]
    pub thumbnail: bool,
}

/// Params of `contact.photo`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactPhotoParams {
    /// The contact's name.
    pub contact: String,
    /// The new file to write (an absolute path; never overwritten).
    pub to: PathBuf,
}
