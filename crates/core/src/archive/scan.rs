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

/// A part of the walk, in archive order: entries already found, or a subtree (a mailbox) still
/// to be walked. Subtrees are walked as parallel jobs while earlier parts are already being
/// archived, so a large store's scan overlaps with compression.
#[derive(Debug)]
pub enum Unit {
    Found(Vec<Entry>, Vec<Skipped>),
    Subtree { abs: PathBuf, path: Vec<u8> },
}

/// Directories this deep (`store/mail/<domain>/<mailbox>`) are walked as units of their own.
const UNIT_DEPTH: usize = 4;

/// Walks subtrees; shared by the jobs that walk them.
#[derive(Debug)]
pub struct Walker {
    selection: Selection,
    excluded: Vec<PathBuf>,
    skip_unreadable: bool,
    /// Where the store is in the archive.
    pub store_prefix: String,
    /// The store is outside the install root: walked last, as `store/`.
    pub store_outside: bool,
}

/// What a directory's walk found: its entries in order, and what it skipped.
pub type Found = (Vec<Entry>, Vec<Skipped>);

/// Lists the install down to mailbox level, in archive order; the mailboxes themselves are left
/// as [`Unit::Subtree`]s for [`Walker::subtree`].
pub fn units(
    install: &Install,
    selection: &Selection,
    backup_dir: &Path,
    skip_unreadable: bool,
) -> Result<(Walker, Vec<Unit>), ArchiveError> {
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
    let walker = Walker {
        selection: selection.clone(),
        excluded,
        skip_unreadable,
        store_prefix,
        store_outside,
    };
    let mut out = Vec::new();
    walker.units(&root, b"", 0, &mut out)?;
    if store_outside {
        let meta = fs_err::symlink_metadata(&store).map_err(io_err(&store))?;
        let entry = walker.entry(&store, b"store".to_vec(), &meta);
        push_found(&mut out, entry.into_iter().collect(), Vec::new());
        if selection.enters(b"store") {
            walker.units(&store, b"store", 1, &mut out)?;
        }
    }
    Ok((walker, out))
}

fn push_found(out: &mut Vec<Unit>, entries: Vec<Entry>, skipped: Vec<Skipped>) {
    if entries.is_empty() && skipped.is_empty() {
        return;
    }
    if let Some(Unit::Found(e, s)) = out.last_mut() {
        e.extend(entries);
        s.extend(skipped);
    } else {
        out.push(Unit::Found(entries, skipped));
    }
}

/// A directory's child: name, path, metadata (not followed).
type Child = (OsString, PathBuf, std::fs::Metadata);

fn child_path(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + name.len() + 1);
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

impl Walker {
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

    /// The children of a directory with their metadata, sorted by name, and what could not
    /// be stat'ed.
    fn children(
        &self,
        abs: &Path,
        path: &[u8],
    ) -> Result<(Vec<Child>, Vec<Skipped>), ArchiveError> {
        let read = match std::fs::read_dir(abs) {
            Ok(r) => r,
            Err(e) => return Ok((Vec::new(), self.skip_or_fail(abs, path, e)?.1)),
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
        Ok((children, skipped))
    }

    /// Lists `abs` in order into `out`, leaving directories at [`UNIT_DEPTH`] as subtrees.
    fn units(
        &self,
        abs: &Path,
        path: &[u8],
        depth: usize,
        out: &mut Vec<Unit>,
    ) -> Result<(), ArchiveError> {
        let (children, skipped) = self.children(abs, path)?;
        push_found(out, Vec::new(), skipped);
        for (name, child, meta) in &children {
            let rel = child_path(path, name.as_bytes());
            // The config files may be links the admin made (a Docker volume): their content is
            // what the backup must hold, not the link.
            let followed;
            let meta = if depth == 0
                && meta.file_type().is_symlink()
                && crate::config::schema::is_config_file(name.as_bytes())
            {
                followed = fs_err::metadata(child).map_err(io_err(child))?;
                &followed
            } else {
                meta
            };
            if meta.is_dir() && !self.selection.enters(&rel) {
                continue;
            }
            push_found(
                out,
                self.entry(child, rel.clone(), meta).into_iter().collect(),
                Vec::new(),
            );
            if meta.is_dir() {
                if depth + 1 >= UNIT_DEPTH {
                    out.push(Unit::Subtree {
                        abs: child.clone(),
                        path: rel,
                    });
                } else {
                    self.units(child, &rel, depth + 1, out)?;
                }
            }
        }
        Ok(())
    }

    /// Everything below `abs` (archive path `path`), in order: a subtree's walk.
    pub fn subtree(&self, abs: &Path, path: &[u8]) -> Result<Found, ArchiveError> {
        let (children, mut skipped) = self.children(abs, path)?;
        let walk_child = |(name, child, meta): &Child| -> Result<Found, ArchiveError> {
            let rel = child_path(path, name.as_bytes());
            let is_dir = meta.is_dir();
            if is_dir && !self.selection.enters(&rel) {
                return Ok((Vec::new(), Vec::new()));
            }
            let mut found: Found = (
                self.entry(child, rel.clone(), meta).into_iter().collect(),
                Vec::new(),
            );
            if is_dir {
                let (below, skipped) = self.subtree(child, &rel)?;
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
