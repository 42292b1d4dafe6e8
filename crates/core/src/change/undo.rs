//! Taking a change back: after a failed step (rollback) or later (undo).
//!
//! Both go in two phases. **Stage**: the pre-change backup's copies of the touched paths are
//! restored into staging directories, then each is moved beside its target
//! (`.kc-stage-<id>-<name>`, same directory, so same filesystem). Nothing in the install has
//! changed yet; a failure here (a full disk) removes the staged copies and says nothing changed.
//! **Swap**, journalled first: renames are renamed back, then each target is replaced by its
//! staged copy by `rename(2)` (a file atomically, its old bytes kept as a hard link `aside`; a
//! directory moved aside first), and the asides are removed. A crash during the swap leaves the
//! journal `undoing` with the whole list, and the next undo finishes it: at every instant each
//! config file is either the old or the new one, never missing.
//!
//! Undo first checks that every touched path still holds what the change left (the journal
//! records it): a hand edit since, or mail the server delivered into a directory the change
//! made, is refused, naming the paths, unless forced (the forced undo backs up what it replaces
//! first). Logs are not restored but have exactly the change's lines cut out, so lines written
//! since stay.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::place::{
    Act, NewFile, TEMP_PREFIX, is_config_file, place, place_for, sync_parent, write_atomic,
};
use super::{ChangeError, Journal, Status, Step, io_at, save};
use crate::archive::{self, ArchiveError, Backup, RestoreOptions, Selection, decode_path};
use crate::install::Install;
use crate::progress::Progress;

/// What a touched path held when the change was done.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum State {
    /// Nothing: the change removed the path (or never created it).
    Absent,
    /// A regular file.
    File {
        /// The SHA-256 of its bytes, in lower-case hex.
        sha256: String,
    },
    /// A symbolic link.
    Link {
        /// What the link points to, as stored in it (not resolved).
        target: PathBuf,
    },
    /// A directory: a digest of its tree (names, kinds, sizes, modification times).
    Tree {
        /// SHA-256, in lower-case hex, over each entry's relative name, mode, size and mtime.
        digest: String,
    },
}

/// One touched path and what the change left there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct After {
    /// The path, relative to the install root, as in the plan's steps.
    #[serde(with = "super::encoded")]
    pub path: PathBuf,
    /// What it held when the change ended.
    #[serde(flatten)]
    pub state: State,
}

/// The lines a change appended to a log: where they start and what they are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Appended {
    /// The log file, relative to the install root.
    #[serde(with = "super::encoded")]
    pub path: PathBuf,
    /// The log's size in bytes before the change: where its lines start.
    pub offset: u64,
    /// How many bytes the change appended.
    pub length: u64,
    /// The SHA-256 of those bytes, in lower-case hex, to find them again at undo.
    pub sha256: String,
}

/// What is at `real` now.
pub(crate) fn state_of(real: &Path) -> std::io::Result<State> {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    let meta = match real.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::Absent),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() {
        return Ok(State::Link {
            target: std::fs::read_link(real)?,
        });
    }
    if meta.is_file() {
        return Ok(State::File {
            sha256: archive::sha256_file(real)?.1,
        });
    }
    let mut h = sha2::Sha256::new();
    for entry in walkdir::WalkDir::new(real).sort_by_file_name() {
        let entry = entry.map_err(std::io::Error::other)?;
        let m = entry.metadata().map_err(std::io::Error::other)?;
        let rel = entry.path().strip_prefix(real).unwrap_or(entry.path());
        h.update(rel.as_os_str().as_bytes());
        h.update([0]);
        h.update(format!("{:o} {} {}\n", m.mode(), m.len(), m.mtime()).as_bytes());
    }
    Ok(State::Tree {
        digest: format!("{:x}", h.finalize()),
    })
}

/// The logs a plan appends to.
pub(crate) fn log_paths(steps: &[Step]) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = steps
        .iter()
        .filter_map(|s| match s {
            Step::AppendLines { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    logs.sort();
    logs.dedup();
    logs
}

/// Records, at the end of a change, what each touched path holds and what each log got.
pub(crate) fn record_after(install: &Install, journal: &mut Journal) -> Result<(), ChangeError> {
    let logs = log_paths(&journal.steps);
    journal.after.clear();
    for path in journal.touched.iter().filter(|p| !logs.contains(p)) {
        let real = place_for(install, path, Act::OnEntry)?;
        let state = state_of(&real).map_err(io_at(&real))?;
        journal.after.push(After {
            path: path.clone(),
            state,
        });
    }
    journal.appended = journal
        .log_bases
        .iter()
        .map(|(path, base)| {
            let ours = journal_lines(journal, path);
            Appended {
                path: path.clone(),
                offset: *base,
                length: ours.len() as u64,
                sha256: crate::hash::sha256_hex(&ours),
            }
        })
        .collect();
    Ok(())
}

/// The touched paths that no longer hold what the change left, each with what is there now.
pub(crate) fn edited_since(
    install: &Install,
    journal: &Journal,
) -> Result<Vec<String>, ChangeError> {
    let mut out = Vec::new();
    for after in &journal.after {
        let real = place_for(install, &after.path, Act::OnEntry)?;
        let now = state_of(&real).map_err(io_at(&real))?;
        if now != after.state {
            let what = match (&after.state, &now) {
                (_, State::Absent) => "removed",
                (State::Absent, _) => "created",
                (State::Tree { .. }, State::Tree { .. }) => "its contents changed",
                _ => "changed",
            };
            out.push(format!("{} ({what})", after.path.display()));
        }
    }
    Ok(out)
}

/// One path of a swap: the real target, its staged replacement (`None`: the target goes), and
/// where the old one is kept until the swap is over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SwapEntry {
    /// The path replaced, as on disk (for a config file that is a link, the file it leads to).
    #[serde(with = "super::encoded")]
    pub target: PathBuf,
    /// Its staged replacement (a config file's beside it, a store path's in the store's stage);
    /// `None`: the target is removed.
    #[serde(with = "super::encoded::option")]
    pub staged: Option<PathBuf>,
    /// Where the old target is kept, beside it (`.kc-old-…`), until the swap is over.
    #[serde(with = "super::encoded")]
    pub aside: PathBuf,
}

/// A swap under way, journalled before its first rename.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Swap {
    /// Every path to replace.
    pub entries: Vec<SwapEntry>,
    /// The staging directories, removed at the end.
    #[serde(with = "super::encoded::list")]
    pub stages: Vec<PathBuf>,
    /// Renames to take back first (those the change got to).
    pub rename_back: bool,
    /// Logs to cut the change's lines out of (undo), rather than restore (rollback).
    pub splice_logs: bool,
    /// Where the change ends up: rolled back or undone.
    pub then: Status,
    /// Where it stays if the swap fails and is reversed.
    #[serde(default = "default_before")]
    pub before: Status,
}

fn default_before() -> Status {
    Status::Done
}

fn beside(target: &Path, tag: &str, id: &str) -> PathBuf {
    let mut name = OsString::from(format!("{tag}{id}-"));
    name.push(target.file_name().unwrap_or_default());
    target.with_file_name(name)
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Moves `from` to `to`, copying a file when they are on different filesystems.
fn move_to(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) && from.is_file() => {
            std::fs::copy(from, to)?;
            std::fs::File::open(to)?.sync_all()?;
            std::fs::remove_file(from)
        }
        other => other,
    }
}

/// Phase one: everything `paths` should hold again, staged beside each target. Changes nothing
/// in the install; on failure removes what it staged.
pub(crate) fn stage(
    install: &Install,
    journal: &Journal,
    backup: &Backup,
    paths: &[PathBuf],
    progress: &dyn Progress,
) -> Result<Swap, ChangeError> {
    let report = archive::verify(backup, progress)?;
    if let Some(problem) = report.damage.first() {
        return Err(ArchiveError::Invalid {
            path: backup.archive.clone(),
            message: format!(
                "the pre-change backup is damaged ({problem}); nothing was taken back"
            ),
        }
        .into());
    }
    let stage = Stage::new(install, journal);
    let mut swap = Swap {
        entries: Vec::new(),
        stages: vec![stage.root.clone(), stage.store.clone()],
        rename_back: true,
        splice_logs: false,
        then: Status::Undone,
        before: journal.status,
    };
    let result = (|| -> Result<(), ChangeError> {
        for dir in &swap.stages {
            super::place::private_dir(dir).map_err(io_at(dir))?;
        }
        let absent: Vec<Vec<u8>> = backup.meta.absent.iter().map(|p| decode_path(p)).collect();
        stage.restore(backup, paths, &absent, progress)?;
        for path in paths {
            swap.entries.push(stage.entry(path, &absent)?);
        }
        Ok(())
    })();
    if let Err(e) = result {
        discard(&swap);
        return Err(e);
    }
    Ok(swap)
}

/// Where an undo stages what it takes back: a private directory in the root and one in the
/// store (which may be another filesystem than the root), named after the change.
struct Stage<'a> {
    install: &'a Install,
    journal: &'a Journal,
    root: PathBuf,
    store: PathBuf,
}

impl<'a> Stage<'a> {
    fn new(install: &'a Install, journal: &'a Journal) -> Stage<'a> {
        let tag = format!(".kc-stage-{}", journal.id);
        Stage {
            install,
            journal,
            root: install.root.join(&tag),
            store: install.store.join(&tag),
        }
    }

    /// Restores the paths the backup holds (those that existed before the change) into the
    /// stage directories.
    fn restore(
        &self,
        backup: &Backup,
        paths: &[PathBuf],
        absent: &[Vec<u8>],
        progress: &dyn Progress,
    ) -> Result<(), ChangeError> {
        let present: Vec<Vec<u8>> = paths
            .iter()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .filter(|p| !absent.contains(p))
            .collect();
        if !present.is_empty() {
            let options = RestoreOptions {
                to: self.root.clone(),
                selection: Selection::paths(&present),
                store: Some(self.store.clone()),
                preserve_owners: true,
            };
            archive::restore(std::slice::from_ref(backup), &options, progress)?;
        }
        Ok(())
    }

    /// The swap of one path: its target, where the target goes aside, and what is staged for
    /// it (nothing when it did not exist before the change).
    fn entry(&self, path: &Path, absent: &[Vec<u8>]) -> Result<SwapEntry, ChangeError> {
        let (install, id) = (self.install, &self.journal.id);
        let target = place_for(install, path, Act::OnEntry)?;
        let bytes = path.as_os_str().as_bytes().to_vec();
        let staged_in = match path.strip_prefix(&install.store_prefix) {
            Ok(inside) if !is_config_file(path) => self.store.join(inside),
            _ => self.root.join(path),
        };
        let staged = if absent.contains(&bytes) || staged_in.symlink_metadata().is_err() {
            None
        } else if is_config_file(path) {
            // A config file may be a link into a volume on another filesystem: staged beside
            // its real target, so that the swap is one rename.
            let to = beside(&target, ".kc-stage-", id);
            remove_any(&to).map_err(io_at(&to))?;
            move_to(&staged_in, &to).map_err(io_at(&staged_in))?;
            Some(to)
        } else {
            // Store paths name what was there before the change's renames, which the swap takes
            // back first: until then they wait in the stage, in the store itself.
            Some(staged_in)
        };
        Ok(SwapEntry {
            aside: beside(&target, ".kc-old-", id),
            target,
            staged,
        })
    }
}

/// Removes a stage that will not be used.
pub(crate) fn discard(swap: &Swap) {
    for e in &swap.entries {
        if let Some(s) = &e.staged {
            let _ = remove_any(s);
        }
    }
    for dir in &swap.stages {
        let _ = remove_any(dir);
    }
}

/// Renames back, newest first, what the change's renames moved (those it got to).
fn rename_back(install: &Install, journal: &Journal) -> Result<(), ChangeError> {
    for step in journal.steps.iter().rev() {
        if let Step::Rename { from, to } = step {
            let on = |p: &Path| place_for(install, p, Act::OnEntry);
            let (from, to) = (on(from)?, on(to)?);
            if to.symlink_metadata().is_ok() && from.symlink_metadata().is_err() {
                fs_err::rename(&to, &from).map_err(io_at(&to))?;
                for dir in [&from, &to] {
                    if let Some(parent) = dir.parent() {
                        archive::sync_dir(parent)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// One entry's swap; each part is skipped when an earlier run did it, so a re-run finishes.
fn swap_one(e: &SwapEntry) -> std::io::Result<()> {
    let there = e.target.symlink_metadata().ok();
    match &e.staged {
        Some(staged) if staged.symlink_metadata().is_ok() => {
            if let Some(parent) = e.target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let aside_free = e.aside.symlink_metadata().is_err();
            match there {
                Some(m) if m.is_dir() && aside_free => std::fs::rename(&e.target, &e.aside)?,
                // The old file stays reachable until the swap is over; the rename below
                // replaces the target atomically.
                Some(m) if !m.is_dir() && aside_free => std::fs::hard_link(&e.target, &e.aside)?,
                _ => {}
            }
            // A directory is not renamed over a file (a path that changed kind, as a restore
            // of a differential may leave it): the file, kept aside above, goes first.
            let is_dir = |p: &Path| p.symlink_metadata().is_ok_and(|m| m.is_dir());
            if is_dir(staged)
                && e.target.symlink_metadata().is_ok_and(|m| !m.is_dir())
                && e.aside.symlink_metadata().is_ok()
            {
                std::fs::remove_file(&e.target)?;
            }
            move_to(staged, &e.target)?;
        }
        Some(_) => {} // done by an earlier run
        None => {
            if there.is_some() {
                remove_any(&e.aside)?;
                std::fs::rename(&e.target, &e.aside)?;
            }
        }
    }
    sync_parent(&e.target)
}

/// Phase two: journals the swap, then carries it out (see the module's doc).
pub(crate) fn swap(
    install: &Install,
    journal: &mut Journal,
    swap: Swap,
) -> Result<Vec<String>, ChangeError> {
    journal.status = Status::Undoing;
    journal.swap = Some(swap);
    save(install, journal)?;
    finish_swap(install, journal)
}

/// Finishes a journalled swap (again, after a crash). Returns warnings (logs left as they are).
/// If a rename fails part-way (an immutable file, a disk gone read-only), everything already
/// swapped is put back, the journal returns to where it was, and the error says so.
pub(crate) fn finish_swap(
    install: &Install,
    journal: &mut Journal,
) -> Result<Vec<String>, ChangeError> {
    let swap = journal
        .swap
        .clone()
        .ok_or_else(|| ChangeError::BadJournal("an undo with nothing to swap".into()))?;
    let logs = if !swap.splice_logs {
        Spliced::default()
    } else {
        match spliced_logs(install, journal) {
            Ok(logs) => logs,
            Err(cause) => {
                // Nothing is swapped yet: the undo ends here, the install as it was.
                discard(&swap);
                journal.status = swap.before;
                journal.swap = None;
                save(install, journal)?;
                return Err(ChangeError::TakeBackFailed {
                    id: journal.id.clone(),
                    source: Box::new(cause),
                });
            }
        }
    };
    let outcome = (|| -> Result<(), ChangeError> {
        if swap.rename_back {
            rename_back(install, journal)?;
        }
        // Each directory is listed once, not once per path in it: a restore of a folder of
        // tens of thousands of messages would read that folder as many times.
        let mut cleaned = std::collections::HashSet::new();
        for e in &swap.entries {
            if let Some(parent) = e.target.parent()
                && cleaned.insert(parent)
            {
                remove_leftover_temps(&e.target);
            }
        }
        for (i, e) in swap.entries.iter().enumerate() {
            swap_one(e).map_err(io_at(&e.target))?;
            // Tests only (`KC_CRASH_IN_SWAP=N`): die after the Nth path is swapped.
            super::crash_if("KC_CRASH_IN_SWAP", i + 1);
        }
        for (real, ..) in &logs.logs {
            remove_leftover_temps(real);
        }
        logs.write()
    })();
    if let Err(cause) = outcome {
        let reversed = reverse(install, journal, &swap, &logs);
        discard(&swap);
        journal.status = swap.before;
        journal.swap = None;
        save(install, journal)?;
        return Err(match reversed {
            Ok(()) => ChangeError::TakeBackFailed {
                id: journal.id.clone(),
                source: Box::new(cause),
            },
            Err(again) => ChangeError::TakeBackStuck {
                id: journal.id.clone(),
                cause: Box::new(cause),
                source: Box::new(again),
            },
        });
    }
    for e in &swap.entries {
        remove_any(&e.aside).map_err(io_at(&e.aside))?;
    }
    for dir in &swap.stages {
        remove_any(dir).map_err(io_at(dir))?;
    }
    journal.status = swap.then;
    journal.swap = None;
    Ok(logs.warnings)
}

/// Leftover temp files of an interrupted atomic write beside `target`.
fn remove_leftover_temps(target: &Path) {
    if let Some(Ok(entries)) = target.parent().map(std::fs::read_dir) {
        for leftover in entries.flatten() {
            if leftover
                .file_name()
                .as_bytes()
                .starts_with(TEMP_PREFIX.as_bytes())
            {
                let _ = std::fs::remove_file(leftover.path());
            }
        }
    }
}

/// Puts back what a failed swap had done: the old contents from their asides, the staged ones
/// back into the stage, and the change's renames again.
fn reverse(
    install: &Install,
    journal: &Journal,
    swap: &Swap,
    logs: &Spliced,
) -> Result<(), ChangeError> {
    logs.put_back()?;
    for e in swap.entries.iter().rev() {
        unswap_one(e).map_err(io_at(&e.target))?;
    }
    if swap.rename_back {
        for step in journal.steps.iter().take(journal.done) {
            if let Step::Rename { from, to } = step {
                let on = |p: &Path| place_for(install, p, Act::OnEntry);
                let (from, to) = (on(from)?, on(to)?);
                if from.symlink_metadata().is_ok() && to.symlink_metadata().is_err() {
                    fs_err::rename(&from, &to).map_err(io_at(&from))?;
                }
            }
        }
    }
    Ok(())
}

/// The inverse of [`swap_one`], from wherever it stopped.
fn unswap_one(e: &SwapEntry) -> std::io::Result<()> {
    let there = e.target.symlink_metadata().ok();
    let kept = e.aside.symlink_metadata().is_ok();
    match &e.staged {
        Some(staged) => {
            let staged_free = staged.symlink_metadata().is_err();
            match there {
                // A file: its old bytes come back in one rename over it.
                Some(m) if kept && !m.is_dir() => std::fs::rename(&e.aside, &e.target)?,
                Some(_) if staged_free => {
                    std::fs::rename(&e.target, staged)?;
                    if kept {
                        std::fs::rename(&e.aside, &e.target)?;
                    }
                }
                None if kept => std::fs::rename(&e.aside, &e.target)?,
                _ => {}
            }
        }
        None => {
            if kept && there.is_none() {
                std::fs::rename(&e.aside, &e.target)?;
            }
        }
    }
    sync_parent(&e.target)
}

/// The logs of an undo: each log's bytes now and with the change's lines cut out.
#[derive(Debug, Default)]
struct Spliced {
    logs: Vec<(PathBuf, Vec<u8>, Vec<u8>)>,
    warnings: Vec<String>,
}

impl Spliced {
    fn write(&self) -> Result<(), ChangeError> {
        for (real, _, kept) in &self.logs {
            write_atomic(real, kept, NewFile::LikeSiblings)?;
        }
        Ok(())
    }

    fn put_back(&self) -> Result<(), ChangeError> {
        for (real, was, _) in &self.logs {
            if std::fs::read(real).ok().as_ref() != Some(was) {
                write_atomic(real, was, NewFile::LikeSiblings)?;
            }
        }
        Ok(())
    }
}

/// Finds the change's own lines in each log it appended to, where they are now (a log may have
/// been rotated or trimmed at its head since), and prepares the log without them. The lines the
/// server wrote since stay.
fn spliced_logs(install: &Install, journal: &Journal) -> Result<Spliced, ChangeError> {
    let mut out = Spliced::default();
    for a in &journal.appended {
        let real = place(install, &a.path)?;
        let bytes = match std::fs::read(&real) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_at(&real)(e)),
        };
        let ours = journal_lines(journal, &a.path);
        if ours.is_empty() {
            continue;
        }
        let at = bytes
            .get(a.offset as usize..)
            .filter(|rest| rest.starts_with(&ours))
            .map(|_| a.offset as usize)
            .or_else(|| memchr::memmem::find(&bytes, &ours));
        match at {
            Some(start) => {
                let mut kept = bytes[..start].to_vec();
                kept.extend_from_slice(&bytes[start + ours.len()..]);
                out.logs.push((real, bytes, kept));
            }
            None => out.warnings.push(format!(
                "{}: the change's lines are no longer in it; the log is left as it is",
                a.path.display()
            )),
        }
    }
    Ok(out)
}

/// The bytes the change's steps appended to `log`, in order.
pub(crate) fn journal_lines(journal: &Journal, log: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for step in &journal.steps {
        if let Step::AppendLines { path, lines } = step
            && path == log
        {
            for line in lines {
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
        }
    }
    out
}

/// Puts the install back as it was before a change that failed part-way: the paths of the
/// steps that `ran` (logs too) from the pre-change backup, and the renames it got to. A path
/// only a later step would have written is left as it is: another program may have written it.
pub(crate) fn roll_back(
    install: &Install,
    journal: &mut Journal,
    backup: &Backup,
    ran: &[Step],
    progress: &dyn Progress,
) -> Result<(), ChangeError> {
    if ran.is_empty() {
        // Refused before anything was written: nothing to put back.
        journal.status = Status::RolledBack;
        return Ok(());
    }
    let written = super::touched(ran);
    let mut staged = stage(install, journal, backup, &written, progress)?;
    staged.then = Status::RolledBack;
    staged.before = Status::Applying;
    swap(install, journal, staged)?;
    Ok(())
}
