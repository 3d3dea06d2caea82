//! Remote file browsing: a viewer with `files` lists directories under the roots the host's
//! owner shares and downloads files (guests and visitors after the owner allows browsing
//! for the session).
//!
//! Paths are `/ROOT/sub/dir`: the first component names one of the host's roots (as the
//! host lists them for `/`), the rest is relative to it. The host refuses `..`, and
//! anything whose real path (symlinks followed) leaves its root.

use serde::{Deserialize, Serialize};

/// Largest number of entries in one listing (a larger directory is cut, and says so).
pub const MAX_LISTING: usize = 4096;
/// Data bytes in one download chunk.
pub const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// Viewer → host: list `path`, or download it (`get`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Browse {
    /// The viewer's number for this request (answers carry it).
    pub req: u32,
    /// `/ROOT/…` (`/` lists the roots).
    pub path: String,
    /// Download the file at `path` instead of listing it.
    pub get: bool,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// Its name (cleaned of control and bidi characters).
    pub name: String,
    /// A directory.
    pub dir: bool,
    /// Size in bytes (files).
    pub size: u64,
    /// Last modification, Unix seconds.
    pub modified: u64,
}

/// Host → viewer: the listing of a `Browse` without `get`, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The request.
    pub req: u32,
    /// Entries, directories first, by name.
    pub entries: Vec<DirEntry>,
    /// More entries than [`MAX_LISTING`] were left out.
    pub truncated: bool,
    /// Why there is no listing.
    pub error: Option<String>,
}

/// Host → viewer: a chunk of a download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Download {
    /// The request.
    pub req: u32,
    /// Where in the file.
    pub offset: u64,
    /// The file's size.
    pub total: u64,
    /// At most [`DOWNLOAD_CHUNK`] bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Host → viewer: the download is complete (its SHA-256 over what was sent), or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadEnd {
    /// The request.
    pub req: u32,
    /// SHA-256 of the whole file, when it went well.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub sha256: Option<Vec<u8>>,
    /// Why it failed.
    pub error: Option<String>,
}
