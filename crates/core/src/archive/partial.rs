//! Unfinished backups: the `.partial` files a backup is written to before it gets its name.
//!
//! An archive is written as `<name>.partial`, its sidecars as `<name>.sha256.partial` and
//! `<name>.json.partial`, and all three renamed once the archive is whole. A run can stop before
//! then in three ways, and none leaves them behind for long:
//! - an error: [`Partial`], dropped, removes them;
//! - a signal (Ctrl-C, SIGTERM): the command line's handler calls [`abandon`], which removes the
//!   partial files of every backup this process is writing, and keeps them from being renamed
//!   until the process has exited;
//! - `kill -9`, a crash, a power cut: nothing runs, and the files stay. The archive's
//!   `.partial` is held under an advisory lock while it is written, which the kernel releases
//!   when the process dies; [`leftovers`] tells the files of a dead run (lock free) from those of
//!   a run still writing (another process using the same backup directory), and `kc-backup
//!   create` removes the former.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{ArchiveError, io_err};

/// The partial files this process is writing, for [`abandon`].
static WRITING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn writing() -> MutexGuard<'static, Vec<PathBuf>> {
    // A panic while the list was held leaves it as good as before: paths are only pushed and
    // removed whole.
    WRITING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The partial files of one backup being written; removed when dropped, unless
/// [`Partial::finish`] gave them their names.
#[derive(Debug)]
pub(crate) struct Partial {
    paths: Vec<PathBuf>,
    /// The lock that says, to another process, that this archive is being written.
    _lock: File,
}

impl Partial {
    /// Registers the archive's partial file, just created, and locks it.
    pub(crate) fn new(archive: &Path) -> Result<Partial, ArchiveError> {
        let lock = File::open(archive).map_err(io_err(archive))?;
        lock.try_lock().map_err(|e| ArchiveError::Io {
            path: archive.to_owned(),
            source: e.into(),
        })?;
        writing().push(archive.to_owned());
        Ok(Partial {
            paths: vec![archive.to_owned()],
            _lock: lock,
        })
    }

    /// Registers a sidecar's partial file, before it is created.
    pub(crate) fn add(&mut self, path: &Path) {
        writing().push(path.to_owned());
        self.paths.push(path.to_owned());
    }

    /// Gives the files their names with `rename`, which no signal can interrupt half-way: a
    /// backup is either renamed whole or removed whole.
    pub(crate) fn finish(
        mut self,
        rename: impl FnOnce() -> Result<(), ArchiveError>,
    ) -> Result<(), ArchiveError> {
        let mut list = writing();
        rename()?;
        list.retain(|p| !self.paths.contains(p));
        self.paths.clear();
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        let mut list = writing();
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
        list.retain(|p| !self.paths.contains(p));
    }
}

/// A file removed because its run stopped, and its size.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Removed {
    /// The partial file.
    pub path: PathBuf,
    /// Its size when removed.
    pub bytes: u64,
}

/// What [`abandon`] removed. Until it is dropped, no backup of this process gets its name: the
/// caller says what was removed and exits while holding it.
#[derive(Debug)]
pub struct Abandoned {
    /// The partial files removed.
    pub removed: Vec<Removed>,
    _writing: MutexGuard<'static, Vec<PathBuf>>,
}

/// Removes the partial files of every backup this process is writing: for a signal handler,
/// which then exits.
pub fn abandon() -> Abandoned {
    let mut list = writing();
    let removed = list
        .drain(..)
        .filter_map(|path| {
            let bytes = std::fs::symlink_metadata(&path).ok()?.len();
            std::fs::remove_file(&path).ok()?;
            Some(Removed { path, bytes })
        })
        .collect();
    Abandoned {
        removed,
        _writing: list,
    }
}

/// A partial file left in a backup directory by a run that stopped without removing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The partial file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// When it was last written to: about when its run stopped.
    pub modified: Option<jiff::Timestamp>,
}

/// The partial files of backups in `dir` that no live process is writing, by name. Only names
/// this toolkit gives (`F20250301T020000Z.tar.gz.partial`, its `.sha256.partial`, …) are looked
/// at: a backup directory shared with other programs keeps their files.
pub fn leftovers(dir: &Path) -> Result<Vec<Leftover>, ArchiveError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut partials: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if let Some(id) = name.to_str().and_then(backup_id) {
            partials.push((id.to_owned(), entry.path()));
        }
    }
    partials.sort();
    // A backup still being written holds its archive's partial file locked; its sidecars go
    // with it.
    let live: Vec<&str> = partials
        .iter()
        .filter(|(_, path)| is_locked(path))
        .map(|(id, _)| id.as_str())
        .collect();
    Ok(partials
        .iter()
        .filter(|(id, _)| !live.contains(&id.as_str()))
        .filter_map(|(_, path)| {
            let meta = std::fs::symlink_metadata(path).ok()?;
            Some(Leftover {
                path: path.clone(),
                bytes: meta.len(),
                modified: meta
                    .modified()
                    .ok()
                    .and_then(|t| jiff::Timestamp::try_from(t).ok()),
            })
        })
        .collect())
}

/// Removes what [`leftovers`] finds; says what it removed.
pub fn remove_leftovers(dir: &Path) -> Result<Vec<Leftover>, ArchiveError> {
    let found = leftovers(dir)?;
    for leftover in &found {
        match std::fs::remove_file(&leftover.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&leftover.path)(e)),
        }
    }
    if !found.is_empty() {
        super::write::sync_dir(dir)?;
    }
    Ok(found)
}

fn is_locked(path: &Path) -> bool {
    File::open(path).is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
}

/// The backup id of a partial file's name this toolkit writes, e.g. `F20250301T020000Z` of
/// `F20250301T020000Z.tar.zst.sha256.partial`.
fn backup_id(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".partial")?;
    let (id, rest) = stem.split_once('.')?;
    let stamp = id.strip_prefix(['F', 'D', 'P'])?;
    let stamp_ok = stamp.len() == 16
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    let rest_ok = ["tar.gz", "tar.zst"].iter().any(|archive| {
        rest == *archive
            || rest
                .strip_prefix(archive)
                .is_some_and(|s| s == ".sha256" || s == ".json")
    });
    (stamp_ok && rest_ok).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_toolkits_partial_names_are_taken() {
        for name in [
            "F20250301T020000Z.tar.gz.partial",
            "D20250301T020000Z.tar.zst.partial",
            "P20250301T020000Z.tar.gz.sha256.partial",
            "F20250301T020000Z.tar.zst.json.partial",
        ] {
            assert_eq!(backup_id(name), Some(&name[..17]), "{name}");
        }
        for name in [
            "F20250301T020000Z.tar.gz",
            "X20250301T020000Z.tar.gz.partial",
            "F2025030T020000Z.tar.gz.partial",
            "F20250301T020000Z.zip.partial",
            "notes.partial",
            "F20250301T020000Z.tar.gz.old.partial",
        ] {
            assert_eq!(backup_id(name), None, "{name}");
        }
    }
}
