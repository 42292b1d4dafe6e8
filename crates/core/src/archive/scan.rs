//! The walk that decides what goes into a backup: every directory, file and symlink the selection
//! covers, in a fixed order (depth first, names sorted bytewise), stat'ed on all cores.
//!
//! Left out always: the backup directory, the server's own `store/backup`, the toolkit's lock and
//! journal. A store outside the install root is walked too and archived as `store/`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{ArchiveError, Selection, Skipped, encode_path, io_err};
use crate::install::Install;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
}

/// One thing to archive.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The archive path: relative to the install root, `/`-separated.
    pub path: Vec<u8>,
    pub abs: PathBuf,
    pub kind: EntryKind,
    pub size: u64,
    /// The later of modification and status-change time, in seconds: a file copied back with
    /// an old mtime (`cp -p`, a restore) still counts as changed.
    pub changed: i64,
}

/// The result of a scan.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub entries: Vec<Entry>,
    /// Where the store is in the archive.
    pub store_prefix: String,
    pub skipped: Vec<Skipped>,
    pub bytes: u64,
}

struct Walk<'a> {
    selection: &'a Selection,
    excluded: Vec<PathBuf>,
    skip_unreadable: bool,
}

/// What a directory's walk found: its entries in order, and what it skipped.
type Found = (Vec<Entry>, Vec<Skipped>);

/// Walks the install for a backup.
pub fn scan(
    install: &Install,
    selection: &Selection,
    backup_dir: &Path,
    skip_unreadable: bool,
) -> Result<Scanned, ArchiveError> {
    let root = fs_err::canonicalize(&install.root).map_err(io_err(&install.root))?;
    let store = fs_err::canonicalize(&install.store).map_err(io_err(&install.store))?;
    let (store_prefix, store_outside) = match store.strip_prefix(&root) {
        Ok(rel) if !rel.as_os_str().is_empty() => (rel.to_string_lossy().into_owned(), false),
        _ => ("store".to_owned(), true),
    };
    let mut excluded = vec![
        store.join("backup"),
        root.join(crate::guard::LOCK_FILE),
        root.join(crate::install::JOURNAL_DIR),
    ];
    // The backup directory may not exist yet; it is excluded wherever it will be.
    excluded.push(fs_err::canonicalize(backup_dir).unwrap_or_else(|_| root.join(backup_dir)));
    if store_outside {
        // `store/` of the archive is the real store; a directory of that name in the root would
        // collide with it.
        excluded.push(root.join("store"));
    }
    let walk = Walk {
        selection,
        excluded,
        skip_unreadable,
    };
    let (mut entries, mut skipped) = walk.dir(&root, b"")?;
    if store_outside {
        let meta = fs_err::symlink_metadata(&store).map_err(io_err(&store))?;
        entries.extend(walk.entry(&store, b"store".to_vec(), &meta));
        if selection.enters(b"store") {
            let (more, more_skipped) = walk.dir(&store, b"store")?;
            entries.extend(more);
            skipped.extend(more_skipped);
        }
    }
    let bytes = entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.size)
        .sum();
    Ok(Scanned {
        entries,
        store_prefix,
        skipped,
        bytes,
    })
}

fn child_path(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + name.len() + 1);
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

impl Walk<'_> {
    fn skip_or_fail(
        &self,
        abs: &Path,
        path: &[u8],
        e: std::io::Error,
    ) -> Result<Found, ArchiveError> {
        if self.skip_unreadable {
            Ok((
                Vec::new(),
                vec![Skipped {
                    path: encode_path(path),
                    error: e.to_string(),
                }],
            ))
        } else {
            Err(io_err(abs)(e))
        }
    }

    /// The entry for one path, from its (not followed) metadata, if the selection covers it.
    fn entry(&self, abs: &Path, path: Vec<u8>, meta: &std::fs::Metadata) -> Option<Entry> {
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_file() {
            EntryKind::File
        } else {
            return None; // sockets, fifos, devices: not part of an install
        };
        self.selection.matches(&path).then(|| Entry {
            path,
            abs: abs.to_owned(),
            kind,
            size: if kind == EntryKind::File {
                meta.len()
            } else {
                0
            },
            changed: changed_time(meta),
        })
    }

    /// Everything below `abs` (archive path `path`), in order.
    fn dir(&self, abs: &Path, path: &[u8]) -> Result<Found, ArchiveError> {
        let read = match std::fs::read_dir(abs) {
            Ok(r) => r,
            Err(e) => return self.skip_or_fail(abs, path, e),
        };
        let mut children = Vec::new();
        let mut skipped = Vec::new();
        for entry in read {
            let entry = entry.map_err(io_err(abs))?;
            let child = entry.path();
            if self.excluded.contains(&child) {
                continue;
            }
            // Stat'ed relative to the open directory (fstatat), not by the full path again.
            match entry.metadata() {
                Ok(meta) => children.push((entry.file_name(), child, meta)),
                Err(e) => {
                    let rel = child_path(path, entry.file_name().as_bytes());
                    skipped.extend(self.skip_or_fail(&child, &rel, e)?.1);
                }
            }
        }
        children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let walk_child = |(name, child, meta): &(OsString, PathBuf, std::fs::Metadata)| -> Result<Found, ArchiveError> {
            let rel = child_path(path, name.as_bytes());
            let is_dir = meta.is_dir();
            if is_dir && !self.selection.enters(&rel) {
                return Ok((Vec::new(), Vec::new()));
            }
            let mut found: Found = (self.entry(child, rel.clone(), meta).into_iter().collect(), Vec::new());
            if is_dir {
                let (below, skipped) = self.dir(child, &rel)?;
                found.0.extend(below);
                found.1.extend(skipped);
            }
            Ok(found)
        };
        // Subdirectories on all cores; a directory of files alone is not worth splitting.
        let parts: Vec<Found> = if children.iter().any(|c| c.2.is_dir()) {
            children
                .par_iter()
                .map(walk_child)
                .collect::<Result<_, _>>()?
        } else {
            children.iter().map(walk_child).collect::<Result<_, _>>()?
        };
        let mut entries = Vec::new();
        for (e, s) in parts {
            entries.extend(e);
            skipped.extend(s);
        }
        Ok((entries, skipped))
    }
}

#[cfg(unix)]
pub(crate) fn changed_time(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime().max(meta.ctime())
}
