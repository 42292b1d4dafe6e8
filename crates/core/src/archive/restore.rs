//! Restoring a chain of backups (a full one, then a differential) under a target, selectively,
//! never writing outside it, so that the tree is exactly what it was when the last backup of the
//! chain was taken, whatever changed kind (a file become a directory, a directory become a file
//! or a link) or went away between the two.
//!
//! A differential holds every directory and link its masks cover, the files changed since its
//! base, and the list of the base's files it no longer found. So an entry of the base is written
//! only when the differential neither holds its path nor deleted it, nor (for a directory or a
//! link) covers it without holding it: each path is written once, and counted once. In place,
//! what the base held and the differential no longer does may be in the target: it is removed
//! before the differential's entries go in (emptied directories after them), and an entry
//! replaces whatever of another kind is at its path.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::read::{protected, shown, unsafe_path};
use super::{ArchiveError, Backup, Compression, Kind, Selection, decode_path, io_err};
use crate::config::schema::is_config_file;
use crate::progress::{Progress, Unit};

/// Where and what to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The directory the archive's paths are restored under (the install root in place).
    pub to: PathBuf,
    /// What of the archive is restored (masks, domain, user, folder, exact paths).
    pub selection: Selection,
    /// Where the store goes, when it is not `<to>/<store_prefix>` (a store outside the root).
    pub store: Option<PathBuf>,
    /// Give files back the owners the archive records (in place, as root); otherwise restored
    /// files belong to whoever restores them.
    pub preserve_owners: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    /// The IDs of the chain restored, full first.
    pub backups: Vec<String>,
    /// Files written.
    pub files: u64,
    /// Directories made or kept.
    pub dirs: u64,
    /// Bytes of the files written.
    pub bytes: u64,
    /// Paths removed because the differential deleted them.
    pub deleted: u64,
}

/// The backups to apply, in order: the full one, then the differential asked for.
pub fn chain(backup: &Backup, dir: &Path) -> Result<Vec<Backup>, ArchiveError> {
    match (backup.meta.kind, &backup.meta.base) {
        (Kind::Diff, Some(base)) => {
            let sibling = backup.archive.parent().unwrap_or(dir);
            let base = super::find(sibling, base).or_else(|_| super::find(dir, base))?;
            Ok(vec![base, backup.clone()])
        }
        _ => Ok(vec![backup.clone()]),
    }
}

fn open_stream(backup: &Backup) -> Result<Box<dyn Read>, ArchiveError> {
    let file = std::io::BufReader::with_capacity(
        1 << 20,
        fs_err::File::open(&backup.archive).map_err(io_err(&backup.archive))?,
    );
    Ok(match backup.meta.compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(file).map_err(io_err(&backup.archive))?,
        ),
    })
}

/// The first existing component of `rel` below `dest` (the last one too, when `last` is set)
/// that is a symbolic link: a write or a deletion must never go through one, wherever it leads.
fn link_on_the_way(dest: &Path, rel: &[u8], last: bool) -> Option<PathBuf> {
    let rel = Path::new(OsStr::from_bytes(rel));
    let count = rel.components().count();
    let mut at = dest.to_path_buf();
    for (i, c) in rel.components().enumerate() {
        at.push(c);
        if i + 1 == count && !last {
            break;
        }
        match at.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => return Some(at),
            Ok(_) => {}
            Err(_) => return None, // nothing further exists
        }
    }
    None
}

/// The paths a restore of `chain` with `selection` would write or delete (files and links; the
/// directories that hold them are made as needed), sorted: what an in-place restore touches.
pub fn entry_paths(chain: &[Backup], selection: &Selection) -> Result<Vec<Vec<u8>>, ArchiveError> {
    let (mut out, mut dirs) = (Vec::new(), Vec::new());
    // The directories of the backup before, to find those the next one no longer holds: gone
    // since, they are removed with what is below them, and so touched.
    let mut earlier: Vec<Vec<u8>> = Vec::new();
    for backup in chain {
        let (mut holds, mut these) = (HashSet::new(), Vec::<Vec<u8>>::new());
        let mut archive = tar::Archive::new(open_stream(backup)?);
        for entry in archive.entries().map_err(io_err(&backup.archive))? {
            let entry = entry.map_err(io_err(&backup.archive))?;
            let path = trimmed(&entry.path_bytes()).to_vec();
            if !selection.matches(&path) {
                continue;
            }
            holds.insert(path.clone());
            if entry.header().entry_type().is_dir() {
                these.push(path);
            } else {
                out.push(path);
            }
        }
        let meta = &backup.meta;
        let covers = Selection::new(&meta.mask, &meta.store_prefix, None, None, None);
        out.extend(
            earlier
                .drain(..)
                .filter(|d| !holds.contains(d) && covers.matches(d)),
        );
        dirs.extend(these.iter().cloned());
        earlier = these;
        for encoded in &backup.meta.deleted {
            let path = decode_path(encoded);
            if selection.matches(&path) {
                out.push(path);
            }
        }
    }
    // A directory counts only when nothing below it does (an empty `#msgs`): naming a directory
    // takes in everything below it.
    out.sort();
    out.dedup();
    dirs.sort();
    dirs.dedup();
    let has_below = |all: &[Vec<u8>], dir: &[u8]| {
        let mut low = dir.to_vec();
        low.push(b'/');
        let at = all.partition_point(|p| p.as_slice() < low.as_slice());
        all.get(at).is_some_and(|p| p.starts_with(&low))
    };
    let empty: Vec<Vec<u8>> = dirs
        .iter()
        .filter(|d| !has_below(&out, d) && !has_below(&dirs, d))
        .cloned()
        .collect();
    out.extend(empty);
    out.sort();
    // A path below another listed one goes with it (a file of the full backup that is a
    // directory in the differential, and that directory's files): the topmost is backed up,
    // restored and taken back with everything below it, and no path is looked for below a file.
    let listed: HashSet<&[u8]> = out.iter().map(Vec::as_slice).collect();
    let below_listed = |p: &[u8]| {
        p.iter()
            .enumerate()
            .any(|(i, &b)| b == b'/' && listed.contains(&p[..i]))
    };
    let topmost: Vec<bool> = out.iter().map(|p| !below_listed(p)).collect();
    let mut keep = topmost.into_iter();
    out.retain(|_| keep.next().unwrap_or(true));
    Ok(out)
}

/// An archive path without the `/` a directory entry ends with.
fn trimmed(path: &[u8]) -> &[u8] {
    path.strip_suffix(b"/").unwrap_or(path)
}

/// What becomes of an entry of a backup that a later one of the chain follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Write,
    /// The later backup holds the path (newer, or a file become a link): it writes it.
    Superseded,
    /// A file or link the later backup holds as a directory: it writes it, over the link the
    /// target may hold (in place).
    Retyped,
    /// A file the later backup records as deleted since.
    Deleted,
    /// A directory or link the later backup's masks cover but that it does not hold: gone since.
    Gone,
}

/// The later backup of a chain (a differential), as the entries of its base are weighed against
/// it: the paths it holds, of any kind, read from its tar headers.
struct Later {
    /// Each path, and whether it is a directory there.
    holds: HashMap<Vec<u8>, bool>,
    deleted: HashSet<Vec<u8>>,
    covers: Selection,
}

impl Later {
    fn read(backup: &Backup) -> Result<Later, ArchiveError> {
        let mut holds = HashMap::new();
        let mut archive = tar::Archive::new(open_stream(backup)?);
        for entry in archive.entries().map_err(io_err(&backup.archive))? {
            let entry = entry.map_err(io_err(&backup.archive))?;
            let dir = entry.header().entry_type().is_dir();
            holds.insert(trimmed(&entry.path_bytes()).to_vec(), dir);
        }
        let meta = &backup.meta;
        Ok(Later {
            holds,
            deleted: meta.deleted.iter().map(|p| decode_path(p)).collect(),
            covers: Selection::new(&meta.mask, &meta.store_prefix, None, None, None),
        })
    }

    fn fate(&self, path: &[u8], kind: tar::EntryType) -> Fate {
        if self.deleted.contains(path) {
            Fate::Deleted
        } else if let Some(&dir) = self.holds.get(path) {
            if dir && !kind.is_dir() {
                Fate::Retyped
            } else {
                Fate::Superseded
            }
        } else if (kind.is_dir() || kind.is_symlink()) && self.covers.matches(path) {
            Fate::Gone
        } else {
            Fate::Write
        }
    }
}

/// Restores a backup (with its base, for a differential) under `options.to`.
pub fn restore(
    chain: &[Backup],
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport, ArchiveError> {
    let mut restorer = Restorer::new(options, progress)?;
    for (i, backup) in chain.iter().enumerate() {
        let later = chain.get(i + 1).map(Later::read).transpose()?;
        restorer.backup(backup, later.as_ref())?;
    }
    Ok(restorer.report)
}

/// A destination directory, and its resolved path, which every write is checked against.
#[derive(Debug, Clone)]
struct Dest {
    dir: PathBuf,
    real: PathBuf,
}

impl Dest {
    fn new(dir: &Path) -> Result<Dest, ArchiveError> {
        Ok(Dest {
            dir: dir.to_owned(),
            real: fs_err::canonicalize(dir).map_err(io_err(dir))?,
        })
    }
}

/// An entry's path placed: its destination, its path below it, and the full path.
struct Placed {
    dest: Dest,
    rel: Vec<u8>,
    full: PathBuf,
}

/// A restore under way, one backup of the chain after the other.
struct Restorer<'a> {
    options: &'a RestoreOptions,
    progress: &'a dyn Progress,
    to: Dest,
    /// The store's destination, when it is not below `to`.
    store: Option<Dest>,
    /// The backup's `store_prefix`, which `store` stands for.
    store_prefix: Vec<u8>,
    report: RestoreReport,
    /// Directories and links of an earlier backup that the later one no longer holds (whether
    /// each is a directory): in place, they may be in the target, and are removed.
    gone: Vec<(Vec<u8>, bool)>,
    /// The later backup's deletions an earlier backup held, and were therefore not written.
    not_written: HashSet<Vec<u8>>,
    /// Links of an earlier backup that the later one holds as directories: the only links a
    /// directory entry replaces (any other one on its way is refused).
    retyped: HashSet<Vec<u8>>,
    /// The last directory found to resolve inside its destination: the entries of a directory
    /// follow each other, and resolving costs a system call per component. Forgotten whenever
    /// a link is written or something removed.
    inside: Option<PathBuf>,
}

impl<'a> Restorer<'a> {
    fn new(options: &'a RestoreOptions, progress: &'a dyn Progress) -> Result<Self, ArchiveError> {
        fs_err::create_dir_all(&options.to).map_err(io_err(&options.to))?;
        Ok(Restorer {
            options,
            progress,
            to: Dest::new(&options.to)?,
            store: options.store.as_deref().map(Dest::new).transpose()?,
            store_prefix: Vec::new(),
            report: RestoreReport::default(),
            gone: Vec::new(),
            not_written: HashSet::new(),
            retyped: HashSet::new(),
            inside: None,
        })
    }

    /// Restores one backup of the chain; `later` is the one that follows it, if any. The
    /// deletions since the earlier backups come first: a path deleted may be one this backup
    /// writes anew, as a directory or a link.
    fn backup(&mut self, backup: &Backup, later: Option<&Later>) -> Result<(), ArchiveError> {
        self.report.backups.push(backup.meta.id.clone());
        self.progress.start(
            &format!("restoring {}", backup.meta.id),
            Some(backup.meta.bytes),
            Unit::Bytes,
        );
        self.store_prefix = backup.meta.store_prefix.as_bytes().to_vec();
        self.remove_deleted(backup)?;
        self.remove_gone(false)?;
        let mut archive = tar::Archive::new(open_stream(backup)?);
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        archive.set_preserve_ownerships(self.options.preserve_owners);
        for entry in archive.entries().map_err(io_err(&backup.archive))? {
            let mut entry = entry.map_err(io_err(&backup.archive))?;
            self.entry(&mut entry, later)?;
        }
        self.deletions_below_links(backup)?;
        if later.is_none() {
            self.remove_gone(true)?;
        }
        self.progress.finish();
        Ok(())
    }

    /// Where an archive path goes: below the store's destination when it is in the store and
    /// that is elsewhere, below the target otherwise.
    fn place(&self, path: &[u8]) -> Placed {
        let prefix = &self.store_prefix;
        let (dest, rel) = match &self.store {
            Some(store)
                if path.starts_with(prefix)
                    && path.get(prefix.len()).is_none_or(|&b| b == b'/') =>
            {
                let rest = path[prefix.len()..].strip_prefix(b"/").unwrap_or_default();
                (store, rest)
            }
            _ => (&self.to, path),
        };
        Placed {
            full: dest.dir.join(OsStr::from_bytes(rel)),
            dest: dest.clone(),
            rel: rel.to_vec(),
        }
    }

    /// Refuses an entry no restore writes: a path out of the target, a hard link (whose target
    /// resolves against the working directory; kc-backup never writes them), a config file
    /// stored as a link.
    fn refuse(&self, path: &[u8], kind: tar::EntryType) -> Result<(), ArchiveError> {
        let entry = |why: &str| format!("{}{why}", shown(path));
        if unsafe_path(path) {
            return Err(ArchiveError::Escapes {
                path: self.options.to.clone(),
                entry: entry(""),
            });
        }
        if kind.is_hard_link() {
            return Err(ArchiveError::Escapes {
                path: self.options.to.clone(),
                entry: entry(" (a hard link)"),
            });
        }
        // A link is restored as a link, whatever it points at: nothing below is ever written
        // through one (`link_on_the_way`).
        if kind.is_symlink() && is_config_file(path) {
            return Err(ArchiveError::Escapes {
                path: self.options.to.join(OsStr::from_bytes(path)),
                entry: entry(": a config file stored as a symbolic link"),
            });
        }
        Ok(())
    }

    /// One entry of the archive: refused, left out (not selected, or not what the tree was
    /// when the later backup was taken), or written.
    fn entry(
        &mut self,
        entry: &mut tar::Entry<'_, Box<dyn Read>>,
        later: Option<&Later>,
    ) -> Result<(), ArchiveError> {
        let path = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if unsafe_path(&path) {
            self.refuse(&path, kind)?;
        }
        if !self.options.selection.matches(&path) {
            return Ok(());
        }
        self.refuse(&path, kind)?;
        let path = trimmed(&path).to_vec();
        match later.map_or(Fate::Write, |l| l.fate(&path, kind)) {
            Fate::Write => return self.write(entry, &path, kind),
            Fate::Superseded => {}
            Fate::Retyped => {
                self.retyped.insert(path);
            }
            Fate::Deleted => {
                self.not_written.insert(path);
            }
            Fate::Gone => self.gone.push((path, kind.is_dir())),
        }
        if kind.is_file() {
            self.progress.advance(entry.size());
        }
        Ok(())
    }

    /// Writes an entry at its place, replacing what is there when it is of another kind.
    fn write(
        &mut self,
        entry: &mut tar::Entry<'_, Box<dyn Read>>,
        path: &[u8],
        kind: tar::EntryType,
    ) -> Result<(), ArchiveError> {
        let at = self.place(path);
        if at.rel.is_empty() {
            return fs_err::create_dir_all(&at.dest.dir).map_err(io_err(&at.dest.dir));
        }
        // Only the components before the last count: a file or a link replaces a link at its
        // path, and so does a directory (it never fills or chmods where the link leads).
        if let Some(link) = link_on_the_way(&at.dest.dir, &at.rel, false) {
            return Err(ArchiveError::Escapes {
                path: link,
                entry: format!("{}: a symbolic link is on its way", shown(path)),
            });
        }
        let size = entry.size();
        if kind.is_file() && self.write_config_target(entry, &at)? {
            self.count(false, size);
            return Ok(());
        }
        self.make_room(path, &at.full, kind.is_dir())?;
        self.check_parent(&at, path)?;
        if kind.is_symlink() {
            self.inside = None;
        }
        if kind.is_dir() && at.full.is_dir() {
            // Keep an existing directory; only its mode and time come from the archive.
            let _ = entry.unpack(&at.full);
        } else {
            entry.unpack(&at.full).map_err(io_err(&at.full))?;
        }
        self.count(kind.is_dir(), size);
        Ok(())
    }

    fn count(&mut self, dir: bool, size: u64) {
        if dir {
            self.report.dirs += 1;
        } else {
            self.report.files += 1;
            self.report.bytes += size;
            self.progress.advance(size);
        }
    }

    /// The admin's symlinked users.cfg or mailserver.cfg (a Docker volume): written in the
    /// link's target, the link kept. Whether it was.
    fn write_config_target(
        &self,
        entry: &mut tar::Entry<'_, Box<dyn Read>>,
        at: &Placed,
    ) -> Result<bool, ArchiveError> {
        let is_link = at
            .full
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink());
        let target = (is_link && is_config_file(&at.rel))
            .then(|| at.full.canonicalize().ok())
            .flatten()
            .filter(|t| t.is_file());
        let Some(target) = target else {
            return Ok(false);
        };
        entry.unpack(&target).map_err(io_err(&target))?;
        Ok(true)
    }

    /// Clears the way for an entry of another kind than what is at its path: a directory (with
    /// all below it) where a file or a link goes, a file or a link where a directory goes, a link
    /// where a file goes. Never follows a link; never removes a config file or the toolkit's own.
    fn make_room(&mut self, path: &[u8], full: &Path, dir: bool) -> Result<(), ArchiveError> {
        let Ok(there) = full.symlink_metadata() else {
            return Ok(());
        };
        let link = there.file_type().is_symlink();
        let remove = if dir {
            !there.is_dir()
        } else {
            there.is_dir() || link
        };
        if !remove {
            return Ok(());
        }
        if dir && link && !self.retyped.contains(path) {
            return Err(ArchiveError::Escapes {
                path: full.to_owned(),
                entry: format!("{}: a symbolic link is on its way", shown(path)),
            });
        }
        if (dir || !link) && protected(path) {
            return Err(ArchiveError::Escapes {
                path: full.to_owned(),
                entry: format!(
                    "{}: a config file or the toolkit's own files are never replaced by a restore",
                    shown(path)
                ),
            });
        }
        self.inside = None;
        if there.is_dir() {
            fs_err::remove_dir_all(full).map_err(io_err(full))
        } else {
            fs_err::remove_file(full).map_err(io_err(full))
        }
    }

    /// Resolved, the parent of an entry must be inside its destination: a chain of symlinks
    /// restored earlier could otherwise lead a write (or the creation of a directory) outside.
    fn check_parent(&mut self, at: &Placed, path: &[u8]) -> Result<(), ArchiveError> {
        let Some(parent) = at.full.parent() else {
            return Ok(());
        };
        if self.inside.as_deref() == Some(parent) {
            return Ok(());
        }
        let mut existing = parent;
        while !existing.exists() {
            existing = existing.parent().unwrap_or(&at.dest.dir);
        }
        let real = fs_err::canonicalize(existing).map_err(io_err(existing))?;
        if !real.starts_with(&at.dest.real) {
            return Err(ArchiveError::Escapes {
                path: real,
                entry: shown(path),
            });
        }
        fs_err::create_dir_all(parent).map_err(io_err(parent))?;
        self.inside = Some(parent.to_owned());
        Ok(())
    }

    /// The backup's own deletions (a differential's): each file is removed from the target
    /// where it is there (in place), and counted when it was there or left out of an earlier
    /// backup of the chain.
    fn remove_deleted(&mut self, backup: &Backup) -> Result<(), ArchiveError> {
        for (path, at) in self.deletions(backup)? {
            if protected(&path) {
                return Err(ArchiveError::Escapes {
                    path: at.full.clone(),
                    entry: format!(
                        "{} (deleted): a config file or the toolkit's own files are never deleted by a restore",
                        shown(&path)
                    ),
                });
            }
            let removed = self.remove_entry(&at.full, false)?;
            if removed || self.not_written.contains(&path) {
                self.report.deleted += 1;
            }
        }
        Ok(())
    }

    /// Refuses a backup that deletes below a link it holds itself (as `verify` reports it): the
    /// deletions went first and found nothing there, but the archive is not one of ours.
    fn deletions_below_links(&self, backup: &Backup) -> Result<(), ArchiveError> {
        self.deletions(backup).map(|_| ())
    }

    /// The backup's deletions this restore covers, each with where it lands; refused when a
    /// symbolic link is on the way to one (a deletion never goes through a link).
    fn deletions(&self, backup: &Backup) -> Result<Vec<(Vec<u8>, Placed)>, ArchiveError> {
        let mut out = Vec::new();
        for encoded in &backup.meta.deleted {
            let path = decode_path(encoded);
            if unsafe_path(&path) || !self.options.selection.matches(&path) {
                continue;
            }
            let at = self.place(&path);
            if let Some(link) = link_on_the_way(&at.dest.dir, &at.rel, false) {
                return Err(ArchiveError::Escapes {
                    path: link,
                    entry: format!("{} (deleted): a symbolic link is on its way", shown(&path)),
                });
            }
            out.push((path, at));
        }
        Ok(out)
    }

    /// What earlier backups held that the later one does not: its links (`dirs` false), before
    /// its entries go in, or its directories, after, deepest first, each only once empty.
    fn remove_gone(&mut self, dirs: bool) -> Result<(), ArchiveError> {
        let mut gone: Vec<Vec<u8>> = self
            .gone
            .iter()
            .filter(|(_, dir)| *dir == dirs)
            .map(|(p, _)| p.clone())
            .collect();
        gone.sort_unstable_by(|a, b| b.cmp(a));
        for path in gone {
            let at = self.place(&path);
            if at.rel.is_empty()
                || protected(&path)
                || link_on_the_way(&at.dest.dir, &at.rel, false).is_some()
            {
                continue;
            }
            self.remove_entry(&at.full, dirs)?;
        }
        Ok(())
    }

    /// Removes a file or a link (`dir` false), or an empty directory, if that is what is there;
    /// whether it was.
    fn remove_entry(&mut self, full: &Path, dir: bool) -> Result<bool, ArchiveError> {
        let there = match full.symlink_metadata() {
            Ok(m) if m.is_dir() == dir => m,
            _ => return Ok(false),
        };
        self.inside = None;
        let removed = if there.is_dir() {
            std::fs::remove_dir(full)
        } else {
            std::fs::remove_file(full)
        };
        match removed {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(false),
            Err(e) => Err(io_err(full)(e)),
        }
    }
}
