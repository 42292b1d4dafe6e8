//! Backups of an install: writing, listing, verifying and restoring them.
//!
//! A backup is a POSIX tar stream, compressed as a series of independent gzip members or zstd
//! frames ("chunks" of a few MiB of tar), that GNU tar extracts as-is. Paths are relative to the
//! install root. Beside it (ARCHITECTURE.md "Backups"):
//! - `<name>.sha256`: one line per file, accepted by `sha256sum -c` run from the install root;
//! - `<name>.json`: [`Meta`]: kind, base, time, counts, and where each chunk starts, so that
//!   chunks can be decompressed and checked in parallel.
//!
//! Names follow the server's own convention: `<K><UTC>.tar.gz|.tar.zst`, K = `F` full, `D`
//! differential, `P` pre-change. An archive is written as `<name>.partial`, verified, fsynced and
//! renamed: an archive that exists under its final name is whole. What a stopped run leaves of
//! one is removed: see the `partial` module.

mod chunk;
mod manifest;
mod partial;
mod pipeline;
mod read;
mod restore;
mod scan;
mod select;
mod sorted;
mod write;

use std::path::{Path, PathBuf};

pub use manifest::{decode_path, encode_path};
pub use partial::{Abandoned, Leftover, Removed, abandon, leftovers, remove_leftovers};
pub use read::{VerifyReport, verify, verify_against_live};
pub use restore::{RestoreOptions, RestoreReport, chain, entry_paths, restore};
pub use select::{Mask, Selection, mailboxes};
pub(crate) use write::sync_dir;
pub use write::{CreateOptions, create};

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Everything the mask selects.
    Full,
    /// What changed since a full backup, and what was deleted.
    Diff,
    /// The paths a change is about to touch, taken before it (see `change`).
    PreChange,
}

impl Kind {
    /// The letter a backup's ID starts with: `F`, `D`, `P`.
    pub fn letter(self) -> char {
        match self {
            Kind::Full => 'F',
            Kind::Diff => 'D',
            Kind::PreChange => 'P',
        }
    }
}

/// How chunks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// Each chunk one gzip member (`.tar.gz`): what every tar and gzip reads.
    Gzip,
    /// Each chunk one zstd frame with its checksum (`.tar.zst`).
    Zstd,
}

impl Compression {
    /// The archive file's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "tar.gz",
            Compression::Zstd => "tar.zst",
        }
    }
    /// gzip 6, as gzip's and pigz's own default: libdeflate's level 6 comes within 1% of
    /// `pigz -6`'s size on mail (text plus base64 attachments, compressible or not) in well
    /// under its time (BENCHMARKS.md). zstd 3, zstd's own default.
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Gzip => 6,
            Compression::Zstd => 3,
        }
    }
}

/// One independently compressed piece of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkMeta {
    /// Where its compressed bytes start in the archive file, and how many there are.
    pub offset: u64,
    /// Its compressed bytes.
    pub length: u64,
    /// Where its bytes start in the tar stream, and how many there are.
    pub tar_offset: u64,
    /// Its bytes of tar, once decompressed.
    pub tar_length: u64,
    /// Bytes at its start that finish a file begun in an earlier chunk (data and padding).
    pub lead: u64,
}

/// A path left out of a backup with `--skip-unreadable`, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    /// The path in the archive's form (encoded, see [`encode_path`]).
    pub path: String,
    /// Why it could not be read.
    pub error: String,
}

/// The `<name>.json` sidecar.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    /// The layout of this sidecar ([`FORMAT`]).
    pub format: u32,
    /// The file name without extension, e.g. `F20261122T101500Z`: the backup's ID.
    pub id: String,
    /// Full, differential or pre-change.
    pub kind: Kind,
    /// The full backup a differential is based on.
    pub base: Option<String>,
    /// When the backup finished (RFC 3339, UTC, in the JSON).
    pub created: jiff::Timestamp,
    /// When the scan of the tree began, in seconds since the epoch: a differential based on this
    /// backup takes every file changed since.
    pub scan_started: i64,
    /// The tool and version that wrote it (`kc-backup 0.1.0`).
    pub tool: String,
    /// How its chunks are compressed.
    pub compression: Compression,
    /// The compression level used.
    pub level: i32,
    /// What it holds (a pre-change backup: the masks are unused, it holds exact paths).
    pub mask: Vec<Mask>,
    /// Where the store is in the archive (`store`, or its path below the root).
    pub store_prefix: String,
    /// Files it holds.
    pub files: u64,
    /// Directories it holds.
    pub dirs: u64,
    /// Symbolic links it holds (as links, never followed).
    pub symlinks: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// The archive file's size.
    pub archive_bytes: u64,
    /// The index of its chunks, in order: what verify and a narrowed restore seek by.
    pub chunks: Vec<ChunkMeta>,
    /// Paths (encoded, see [`encode_path`]) deleted since the base, for a differential.
    #[serde(default)]
    pub deleted: Vec<String>,
    /// Paths a pre-change backup was asked for that did not exist (undo removes them).
    #[serde(default)]
    pub absent: Vec<String>,
    /// Files left out with `--skip-unreadable`, and why.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
}

/// Current version of [`Meta`]'s layout.
pub const FORMAT: u32 = 1;

/// Why a backup could not be written, read, verified or restored.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file operation failed on `path`.
    #[error("{path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A backup file (archive, manifest, sidecar) is not what it must be.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// No backup of that ID (or `latest`) in the backup directory.
    #[error("no backup {id} in {dir}")]
    NotFound {
        /// The ID asked for.
        id: String,
        /// The backup directory looked in.
        dir: PathBuf,
    },
    /// A file changed while it was read: the server (or something) is writing the store.
    #[error(
        "{path}: changed while it was being backed up ({what}); run the backup again with the server stopped"
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// How it changed (grew, shrank, its size).
        what: String,
    },
    /// An archive entry would land outside the restore target (a crafted archive).
    #[error("{path} is outside the restore target; refusing the whole restore (entry {entry})")]
    Escapes {
        /// Where it would land.
        path: PathBuf,
        /// The entry's path in the archive.
        entry: String,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A backup found in the backup directory.
#[derive(Debug, Clone)]
pub struct Backup {
    /// The archive file (`<ID>.tar.gz` or `.tar.zst`).
    pub archive: PathBuf,
    /// Its `.json` sidecar.
    pub meta: Meta,
}

impl Backup {
    /// Its ID (`F20261122T101500Z`).
    pub fn id(&self) -> &str {
        &self.meta.id
    }
    /// Its `.sha256` manifest, which `sha256sum -c` reads.
    pub fn manifest_path(&self) -> PathBuf {
        sidecar(&self.archive, "sha256")
    }
    /// Its `.json` sidecar.
    pub fn meta_path(&self) -> PathBuf {
        sidecar(&self.archive, "json")
    }

    /// The manifest: each file's SHA-256 (hex) and archive path.
    pub fn manifest(&self) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
        manifest::read(&self.manifest_path())
    }

    /// Reads a backup from its archive path.
    pub fn open(archive: &Path) -> Result<Backup, ArchiveError> {
        let meta_path = sidecar(archive, "json");
        let text = fs_err::read(&meta_path).map_err(|e| ArchiveError::Io {
            path: meta_path.clone(),
            source: std::io::Error::new(e.kind(), "cannot read the backup's .json"),
        })?;
        let meta: Meta = serde_json::from_slice(&text).map_err(|e| ArchiveError::Invalid {
            path: meta_path.clone(),
            message: format!("not a kc-backup description: {e}"),
        })?;
        Ok(Backup {
            archive: archive.to_owned(),
            meta,
        })
    }
}

/// `<archive>.<ext>`: `F…Z.tar.gz.sha256`.
pub fn sidecar(archive: &Path, ext: &str) -> PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// The backups in `dir`, oldest first. Partial archives and foreign files are ignored, and so
/// is an archive whose `.json` is not one of ours (see [`foreign`]): one junk file must not stop
/// `list` or `undo` from finding the others.
pub fn list(dir: &Path) -> Result<Vec<Backup>, ArchiveError> {
    Ok(scan_dir(dir)?.0)
}

/// The archives in `dir` whose `.json` could not be read as a backup's, with why: for a warning.
pub fn foreign(dir: &Path) -> Result<Vec<(PathBuf, String)>, ArchiveError> {
    Ok(scan_dir(dir)?.1)
}

type Scanned = (Vec<Backup>, Vec<(PathBuf, String)>);

fn scan_dir(dir: &Path) -> Result<Scanned, ArchiveError> {
    let entries = match fs_err::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for entry in entries {
        let path = entry.map_err(io_err(dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let is_archive = [Compression::Gzip, Compression::Zstd]
            .iter()
            .any(|c| name.ends_with(&format!(".{}", c.extension())));
        if is_archive && sidecar(&path, "json").is_file() {
            match Backup::open(&path) {
                Ok(b)
                    if b.archive
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| {
                            n.strip_prefix(b.meta.id.as_str())
                                .is_some_and(|rest| rest.starts_with('.'))
                        }) =>
                {
                    out.push(b)
                }
                Ok(b) => bad.push((
                    path,
                    format!("its .json names another backup ({})", b.meta.id),
                )),
                Err(e) => bad.push((path, e.to_string())),
            }
        }
    }
    out.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
    Ok((out, bad))
}

/// The ID that names the newest full or differential backup.
pub const LATEST: &str = "latest";

/// Finds a backup by ID (`F20261122T101500Z`), file name, path, or [`LATEST`].
pub fn find(dir: &Path, id_or_path: &str) -> Result<Backup, ArchiveError> {
    let as_path = Path::new(id_or_path);
    if as_path.is_file() {
        return Backup::open(as_path);
    }
    let id = [".tar.gz", ".tar.zst"]
        .iter()
        .find_map(|ext| id_or_path.strip_suffix(ext))
        .unwrap_or(id_or_path);
    let all = list(dir)?;
    if id == LATEST {
        // The newest full or differential backup (pre-change ones are the changes' own), by when
        // it was made: IDs name the second only, and a full backup and a differential taken in
        // the same second share it.
        let made = |b: &Backup| b.meta.created;
        return all
            .into_iter()
            .filter(|b| b.meta.kind != Kind::PreChange)
            .max_by(|a, b| (made(a), &a.meta.id[1..]).cmp(&(made(b), &b.meta.id[1..])))
            .ok_or_else(|| ArchiveError::NotFound {
                id: id_or_path.to_owned(),
                dir: dir.to_owned(),
            });
    }
    all.into_iter()
        .find(|b| b.meta.id == id)
        .ok_or_else(|| ArchiveError::NotFound {
            id: id_or_path.to_owned(),
            dir: dir.to_owned(),
        })
}

pub use crate::hash::{sha256_file, sha256_hex};

/// The UTC time stamp of names: `20261122T101500Z`.
pub fn stamp(time: jiff::Timestamp) -> String {
    time.strftime("%Y%m%dT%H%M%SZ").to_string()
}
