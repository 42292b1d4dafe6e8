//! Where a change may write, and how it writes there.
//!
//! Every path of a plan or a journal is logical (see `install`): [`place`] turns it into the real
//! path a step acts on, and refuses one that would act through a link leading out of the install
//! (the root, the store and the log directory, wherever the admin put them). The two config files
//! are the exception the admin makes on purpose: a symlinked `users.cfg` (a Docker volume) is
//! written through, in the link's target directory, the link left as it is.
//!
//! [`write_atomic`] writes a file as the protocol requires (temp file beside it, fsync, rename,
//! fsync of the directory) and keeps the replaced file's owner, group and mode; a new file takes
//! its siblings' (or is private, for the toolkit's own files).

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::ChangeError;
use crate::install::{Install, is_plain_relative};

/// Temp files of atomic writes start so; a crash can leave one, and taking a change back removes it.
pub(crate) const TEMP_PREFIX: &str = ".kc-tmp-";

fn escapes(path: &Path, why: impl Into<String>) -> ChangeError {
    ChangeError::Escapes {
        path: path.to_owned(),
        why: why.into(),
    }
}

/// The directories a change may act in, resolved: the root, the store and the log directory.
pub(crate) fn allowed_roots(install: &Install) -> Vec<PathBuf> {
    [
        install.root.clone(),
        install.store.clone(),
        install.logs_dir(),
    ]
    .iter()
    .filter_map(|p| p.canonicalize().ok())
    .collect()
}

/// Whether `logical` names one of the two config files, which may be links the admin made.
pub(crate) fn is_config_file(logical: &Path) -> bool {
    crate::config::schema::is_config_file(logical.as_os_str().as_bytes())
}

/// Fsyncs the directory holding `path`, so that a rename or removal in it is durable. A
/// directory gone with its parent (a tree removed or moved aside) has nothing left to sync.
pub(crate) fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().map(std::fs::File::open) {
        Some(Ok(dir)) => dir.sync_all(),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Some(Err(e)) => Err(e),
        None => Ok(()),
    }
}

/// How a step acts on the last component of its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// Writes into it (a file's content, an append, a directory made there): never a link.
    Through,
    /// Renames or removes the entry itself, a link included (a link is data in the store).
    OnEntry,
}

/// The real path a step on `logical` acts on, after checking that it stays inside the install:
/// the nearest existing ancestor, resolved, is below the root, the store or the log directory,
/// and, for [`Act::Through`], the path itself is no link (but for the config files, which are
/// followed to their target whatever the act).
pub(crate) fn place_for(
    install: &Install,
    logical: &Path,
    act: Act,
) -> Result<PathBuf, ChangeError> {
    if !is_plain_relative(logical) {
        return Err(escapes(logical, "is not a plain path inside the install"));
    }
    let real = install.resolve(logical);
    let meta = real.symlink_metadata().ok();
    if meta.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
        if is_config_file(logical) {
            let target = real
                .canonicalize()
                .map_err(|_| escapes(&real, "is a link that leads nowhere"))?;
            if !target.is_file() {
                return Err(escapes(&real, "is a link to something other than a file"));
            }
            return Ok(target);
        }
        if act == Act::Through {
            return Err(escapes(
                &real,
                "is a symbolic link; the toolkit never writes through one",
            ));
        }
    }
    let mut existing = real.parent().unwrap_or(&real);
    while existing.symlink_metadata().is_err() {
        match existing.parent() {
            Some(p) => existing = p,
            None => break,
        }
    }
    let resolved = existing
        .canonicalize()
        .map_err(|_| escapes(existing, "cannot be resolved"))?;
    if !allowed_roots(install)
        .iter()
        .any(|r| resolved.starts_with(r))
    {
        return Err(escapes(
            &real,
            format!(
                "leads out of the install (through {}, which is {})",
                existing.display(),
                resolved.display()
            ),
        ));
    }
    Ok(real)
}

/// [`place_for`] a step that writes through the path.
pub(crate) fn place(install: &Install, logical: &Path) -> Result<PathBuf, ChangeError> {
    place_for(install, logical, Act::Through)
}

/// How a file that did not exist before is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewFile {
    /// Owner, group and mode of a sibling file (a store file among its kind).
    LikeSiblings,
    /// 0600: the toolkit's journals and stashes, which may hold secrets.
    Private,
}

/// Owner, group and mode for a new file in `dir`: those of its first regular sibling, else the
/// directory's owner with 0644.
fn sibling_meta(dir: &Path) -> Option<(u32, u32, u32)> {
    let entries = std::fs::read_dir(dir).ok()?;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if let Ok(m) = e.path().symlink_metadata()
            && m.is_file()
        {
            return Some((m.uid(), m.gid(), m.mode() & 0o7777));
        }
    }
    let m = dir.metadata().ok()?;
    Some((m.uid(), m.gid(), 0o644))
}

/// Writes a file atomically: a temp file beside it, fsync, rename, fsync of the directory. The
/// replaced file's owner, group and mode are kept.
pub fn write_atomic(path: &Path, bytes: &[u8], new: NewFile) -> Result<(), ChangeError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| ChangeError::Io { path: p, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    let keep = match std::fs::metadata(path) {
        Ok(m) => Some((m.uid(), m.gid(), m.mode() & 0o7777)),
        Err(_) if new == NewFile::LikeSiblings => sibling_meta(dir),
        Err(_) => None,
    };
    if let Some((uid, gid, mode)) = keep {
        // Only root can give a file away; anyone else keeps what the temp file has.
        let _ = std::os::unix::fs::chown(tmp.path(), Some(uid), Some(gid));
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(io(path))?;
    }
    tmp.persist(path).map_err(|e| ChangeError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(crate::archive::sync_dir(dir)?)
}

/// Makes a directory (and its parents) that only its owner may enter: backups and journals hold
/// users.cfg, whose passwords anyone can decrypt (KERIO-FORMAT.md §2).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = dir.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
