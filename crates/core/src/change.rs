//! The change protocol every writer goes through (ARCHITECTURE.md "The change protocol").
//!
//! A tool builds a [`Plan`] as a pure function of the loaded model: ordered [`Step`]s, each naming
//! the paths it touches, relative to the install root. [`apply`] then: takes the guard (server
//! stopped, lock), refuses while an earlier change is unfinished, backs up exactly the touched
//! paths (a verified `P` backup, which also records the paths that do not exist yet), writes the
//! journal `<root>/kc-journal/<change-id>.json`, runs each step atomically (temp file in the same
//! directory, fsync, rename, fsync of the directory), re-reads what it wrote, and marks the
//! journal done. Any error after the backup rolls back from it, so the install is unchanged.
//! [`undo`] takes a finished change back the same way.
//!
//! A change interrupted by a crash leaves its journal "applying": every writer then refuses until
//! [`undo`] takes it back or [`resume`] finishes it (the contents it writes are kept beside the
//! journal until it is done). With the `fault-injection` feature (tests only), the process can be
//! made to die after any step.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::archive::{
    self, ArchiveError, Backup, CreateOptions, Kind, RestoreOptions, Selection, decode_path,
};
use crate::guard::{self, GuardError};
use crate::install::{Install, JOURNAL_DIR};
use crate::progress::Progress;

/// One step of a change. Paths are relative to the install root.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Write a file's new content (creating it if needed).
    WriteFile {
        path: PathBuf,
        #[serde(skip)]
        content: Vec<u8>,
        sha256: String,
        bytes: u64,
    },
    /// Rename a file or a directory (a mailbox, a folder). Its contents are not backed up: taking
    /// the change back renames it back. A plan writes inside a renamed tree before the rename.
    Rename { from: PathBuf, to: PathBuf },
    /// Create a directory (and its parents).
    CreateDir { path: PathBuf },
    /// Remove a directory and everything in it.
    RemoveDir { path: PathBuf },
    /// Append one line to a log (the audit lines of `store/logs/config.log`, `warning.log`).
    AppendLine { path: PathBuf, line: String },
}

impl Step {
    pub fn write_file(path: impl Into<PathBuf>, content: Vec<u8>) -> Step {
        Step::WriteFile {
            path: path.into(),
            sha256: crate::archive::sha256_hex(&content),
            bytes: content.len() as u64,
            content,
        }
    }

    /// The paths the step touches (a rename's two ends included).
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            Step::WriteFile { path, .. }
            | Step::CreateDir { path }
            | Step::RemoveDir { path }
            | Step::AppendLine { path, .. } => vec![path],
            Step::Rename { from, to } => vec![from, to],
        }
    }

    fn describe(&self) -> String {
        match self {
            Step::WriteFile { path, bytes, .. } => {
                format!("write {} ({bytes} bytes)", path.display())
            }
            Step::Rename { from, to } => format!("rename {} -> {}", from.display(), to.display()),
            Step::CreateDir { path } => format!("create directory {}", path.display()),
            Step::RemoveDir { path } => format!("remove {}", path.display()),
            Step::AppendLine { path, line } => format!("append to {}: {line}", path.display()),
        }
    }
}

/// What a tool will do: shown by `--dry-run`, carried out by [`apply`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// `kc-<tool>`: the actor of the audit lines.
    pub tool: String,
    /// One line for the journal and messages: what the change is.
    pub description: String,
    pub steps: Vec<Step>,
    /// Things the admin should know that the plan does not change.
    pub warnings: Vec<String>,
}

impl Plan {
    /// Every path whose contents the steps change, once each, sorted: what the pre-change backup
    /// holds. A rename changes no contents (it is taken back by renaming back), so its ends are
    /// left out; that is what keeps moving a 50 GB mailbox from copying it.
    pub fn touched(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = self
            .steps
            .iter()
            .filter(|s| !matches!(s, Step::Rename { .. }))
            .flat_map(|s| s.paths())
            .map(Path::to_path_buf)
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The plan as lines, `WOULD …` when nothing will be done.
    pub fn lines(&self, dry_run: bool) -> Vec<String> {
        let lead = if dry_run { "WOULD " } else { "" };
        let mut out: Vec<String> = Vec::new();
        for step in &self.steps {
            match step {
                // Many audit lines at once (an import): one line each, under a heading.
                Step::AppendLine { path, line } if line.contains('\n') => {
                    out.push(format!(
                        "{lead}append {} lines to {}:",
                        line.lines().count(),
                        path.display()
                    ));
                    out.extend(line.lines().map(|l| format!("  {l}")));
                }
                _ => out.push(format!("{lead}{}", step.describe())),
            }
        }
        out.extend(self.warnings.iter().map(|w| format!("warning: {w}")));
        out
    }

    /// Refuses a plan that changes something inside a tree an earlier step renamed (or at either
    /// end of the rename): taking it back could not tell the moved contents from the changed ones.
    pub fn check(&self) -> Result<(), ChangeError> {
        let mut renamed: Vec<&Path> = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            if let Step::Rename { from, to } = step {
                renamed.extend([from.as_path(), to.as_path()]);
                continue;
            }
            for path in step.paths() {
                if let Some(tree) = renamed.iter().find(|r| path.starts_with(r)) {
                    return Err(ChangeError::BadPlan(format!(
                        "step {} ({}) is inside {}, renamed by an earlier step",
                        i + 1,
                        step.describe(),
                        tree.display()
                    )));
                }
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in self.lines(true) {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Guard(#[from] GuardError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(
        "change {id} was interrupted and is unfinished; run `kc-backup undo {id}` to take it back (or re-run the tool with --resume), then try again; nothing was changed"
    )]
    Unfinished { id: String },
    #[error(
        "step {step} ({what}) failed: {source}; the change was rolled back from backup {backup}, nothing changed"
    )]
    RolledBack {
        step: usize,
        what: String,
        backup: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the change could not start: {0}; nothing was changed")]
    NotStarted(Box<ChangeError>),
    #[error("no change {id} in {dir}")]
    NoSuchChange { id: String, dir: PathBuf },
    #[error("change {id} was already undone at {when}")]
    AlreadyUndone { id: String, when: String },
    #[error("no change to undo in {dir}")]
    NothingToUndo { dir: PathBuf },
    #[error(
        "change {later}, made after {id}, is still in effect; changes are undone newest first: run `kc-backup undo --last` until {id} is undone; nothing was changed"
    )]
    LaterChange { id: String, later: String },
    #[error("the plan cannot be taken back safely: {0}; nothing was changed")]
    BadPlan(String),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ChangeError + '_ {
    move |source| ChangeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where a change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Applying,
    Done,
    RolledBack,
    Undone,
}

/// `<root>/kc-journal/<change-id>.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Journal {
    pub id: String,
    pub tool: String,
    pub description: String,
    /// The pre-change backup's ID.
    pub backup: String,
    pub started: String,
    pub status: Status,
    pub steps: Vec<Step>,
    /// How many steps have completed.
    pub done: usize,
    pub touched: Vec<PathBuf>,
    pub undone: Option<String>,
    /// A log's length before the append of step N, so that a resumed append is not doubled.
    #[serde(default)]
    pub append_base: Option<(usize, u64)>,
}

fn journal_dir(install: &Install) -> PathBuf {
    install.root.join(JOURNAL_DIR)
}

/// One line of `kc-journal/journal.jsonl`: the audit trail of changes, kept even when a change
/// is undone (undo puts the logs back as they were, so this is where the undo itself is told).
#[derive(Debug, serde::Serialize)]
struct Event<'a> {
    time: String,
    change: &'a str,
    tool: &'a str,
    event: Status,
    description: &'a str,
    backup: &'a str,
    steps_done: usize,
}

fn record(install: &Install, journal: &Journal) -> Result<(), ChangeError> {
    let dir = journal_dir(install);
    fs_err::create_dir_all(&dir).map_err(io_at(&dir))?;
    let path = dir.join("journal.jsonl");
    let event = Event {
        time: jiff::Timestamp::now().to_string(),
        change: &journal.id,
        tool: &journal.tool,
        event: journal.status,
        description: &journal.description,
        backup: &journal.backup,
        steps_done: journal.done,
    };
    let mut line = serde_json::to_vec(&event).expect("events serialise");
    line.push(b'\n');
    let mut f = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_at(&path))?;
    f.write_all(&line).map_err(io_at(&path))?;
    f.sync_all().map_err(io_at(&path))
}

fn save(install: &Install, journal: &Journal) -> Result<(), ChangeError> {
    let dir = journal_dir(install);
    fs_err::create_dir_all(&dir).map_err(io_at(&dir))?;
    let path = dir.join(format!("{}.json", journal.id));
    let bytes = serde_json::to_vec_pretty(journal).expect("the journal serialises");
    write_atomic(&path, &bytes)
}

/// The journals of the install, oldest first.
pub fn journals(install: &Install) -> Result<Vec<Journal>, ChangeError> {
    let dir = journal_dir(install);
    let Ok(entries) = fs_err::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_at(&dir))?.path();
        if path.extension() == Some(OsStr::new("json")) {
            let bytes = fs_err::read(&path).map_err(io_at(&path))?;
            let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| ChangeError::Io {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?;
            out.push(journal);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Temp files of atomic writes start so; a crash can leave one, and taking a change back removes it.
const TEMP_PREFIX: &str = ".kc-tmp-";

/// Writes a file atomically: a temp file beside it, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ChangeError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(io_at(dir))?;
    tmp.write_all(bytes).map_err(io_at(path))?;
    tmp.as_file().sync_all().map_err(io_at(path))?;
    if let Ok(meta) = std::fs::metadata(path) {
        // Keep the mode of the file being replaced.
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(path).map_err(|e| ChangeError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(archive::sync_dir(dir)?)
}

/// Whether something is at `path`, a link included even when it leads nowhere.
fn is_there(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

fn run_step(root: &Path, step: &Step) -> std::io::Result<()> {
    let at = |p: &Path| root.join(p);
    let sync_parent = |p: &Path| -> std::io::Result<()> {
        std::fs::File::open(p.parent().unwrap_or(root))?.sync_all()
    };
    match step {
        Step::WriteFile { path, content, .. } => {
            write_atomic(&at(path), content).map_err(std::io::Error::other)
        }
        Step::Rename { from, to } => {
            let (from, to) = (at(from), at(to));
            if !is_there(&from) && is_there(&to) {
                return Ok(()); // done by an earlier run
            }
            std::fs::rename(&from, &to)?;
            sync_parent(&from)?;
            sync_parent(&to)
        }
        Step::CreateDir { path } => {
            std::fs::create_dir_all(at(path))?;
            sync_parent(&at(path))
        }
        Step::RemoveDir { path } => match std::fs::remove_dir_all(at(path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => sync_parent(&at(path)),
        },
        Step::AppendLine { path, line } => {
            let path = at(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            f.write_all(format!("{line}\n").as_bytes())?;
            f.sync_all()
        }
    }
}

/// Re-reads what a step wrote.
fn check_step(root: &Path, step: &Step) -> std::io::Result<()> {
    let fail = |what: String| Err(std::io::Error::other(what));
    match step {
        Step::WriteFile { path, sha256, .. } => {
            let now = std::fs::read(root.join(path))?;
            if crate::archive::sha256_hex(&now) != *sha256 {
                return fail(format!("{} does not hold what was written", path.display()));
            }
            Ok(())
        }
        Step::Rename { to, .. } if !is_there(&root.join(to)) => {
            fail(format!("{} is missing after the rename", to.display()))
        }
        Step::CreateDir { path } if !root.join(path).is_dir() => {
            fail(format!("{} was not created", path.display()))
        }
        _ => Ok(()),
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    pub change: String,
    pub backup: String,
    pub steps: usize,
}

/// Where the contents a change writes are kept until it is done, for `--resume`.
fn stash_dir(install: &Install, id: &str) -> PathBuf {
    journal_dir(install).join(id)
}

fn stash(install: &Install, id: &str, steps: &[Step]) -> Result<(), ChangeError> {
    let dir = stash_dir(install, id);
    fs_err::create_dir_all(&dir).map_err(io_at(&dir))?;
    for (i, step) in steps.iter().enumerate() {
        if let Step::WriteFile { content, .. } = step {
            write_atomic(&dir.join(format!("step-{i}")), content)?;
        }
    }
    Ok(())
}

fn unstash(install: &Install, journal: &Journal) -> Result<Vec<Step>, ChangeError> {
    let dir = stash_dir(install, &journal.id);
    let mut steps = journal.steps.clone();
    for (i, step) in steps.iter_mut().enumerate() {
        if let Step::WriteFile { content, .. } = step {
            let path = dir.join(format!("step-{i}"));
            *content = fs_err::read(&path).map_err(io_at(&path))?;
        }
    }
    Ok(steps)
}

/// Refuses while a change is unfinished (interrupted by a crash). Tools call it before they
/// even plan, since an interrupted change leaves the install half-changed; [`apply`] checks again.
pub fn check_unfinished(install: &Install) -> Result<(), ChangeError> {
    match journals(install)?
        .into_iter()
        .find(|j| j.status == Status::Applying)
    {
        Some(open) => Err(ChangeError::Unfinished { id: open.id }),
        None => Ok(()),
    }
}

/// Applies a plan through the whole protocol. `backup_dir` holds the pre-change backup.
pub fn apply(
    install: &Install,
    plan: &Plan,
    backup_dir: &Path,
    pid_file: &Path,
    progress: &dyn Progress,
) -> Result<Applied, ChangeError> {
    plan.check()?;
    let _lock = guard::acquire(&install.root, pid_file, &plan.tool)?;
    check_unfinished(install)?;
    let touched = plan.touched();
    let paths: Vec<Vec<u8>> = touched
        .iter()
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .collect();
    let options = CreateOptions {
        kind: Kind::PreChange,
        paths: Some(paths),
        ..CreateOptions::default()
    };
    let not_started = |e: ChangeError| ChangeError::NotStarted(Box::new(e));
    let backup = archive::create(install, backup_dir, &options, progress)
        .map_err(|e| not_started(e.into()))?;
    let mut journal = Journal {
        id: backup.meta.id.replacen('P', "C", 1),
        tool: plan.tool.clone(),
        description: plan.description.clone(),
        backup: backup.meta.id.clone(),
        started: jiff::Timestamp::now().to_string(),
        status: Status::Applying,
        steps: plan.steps.clone(),
        done: 0,
        touched,
        undone: None,
        append_base: None,
    };
    if let Err(e) = stash(install, &journal.id, &plan.steps) {
        let _ = std::fs::remove_dir_all(stash_dir(install, &journal.id));
        return Err(not_started(e));
    }
    save(install, &journal)?;
    record(install, &journal)?;
    run(install, &mut journal, &plan.steps, &backup, progress)
}

/// Finishes a change that was interrupted: the steps not yet done are run (each is idempotent),
/// as if it had never stopped. `which` names it; `None` takes the unfinished one.
pub fn resume(
    install: &Install,
    which: Option<&str>,
    backup_dir: &Path,
    pid_file: &Path,
    progress: &dyn Progress,
) -> Result<Applied, ChangeError> {
    let _lock = guard::acquire(&install.root, pid_file, "kc-resume")?;
    let mut journal = journals(install)?
        .into_iter()
        .filter(|j| j.status == Status::Applying)
        .find(|j| which.is_none_or(|id| j.id == id))
        .ok_or_else(|| ChangeError::NothingToUndo {
            dir: journal_dir(install),
        })?;
    let steps = unstash(install, &journal)?;
    let backup = archive::find(backup_dir, &journal.backup)?;
    run(install, &mut journal, &steps, &backup, progress)
}

/// Runs the steps from `journal.done` on, journalling each; rolls back on failure.
fn run(
    install: &Install,
    journal: &mut Journal,
    steps: &[Step],
    backup: &Backup,
    progress: &dyn Progress,
) -> Result<Applied, ChangeError> {
    for (i, step) in steps.iter().enumerate().skip(journal.done) {
        if let Step::AppendLine { path, .. } = step {
            // The log's length before this append, kept across a crash: a re-run cuts back to it.
            let base = match journal.append_base {
                Some((j, len)) if j == i => len,
                _ => {
                    let len = std::fs::metadata(install.root.join(path)).map_or(0, |m| m.len());
                    journal.append_base = Some((i, len));
                    save(install, journal)?;
                    len
                }
            };
            let full = install.root.join(path);
            if std::fs::metadata(&full).is_ok_and(|m| m.len() > base) {
                let f = fs_err::OpenOptions::new()
                    .write(true)
                    .open(&full)
                    .map_err(io_at(&full))?;
                f.set_len(base).map_err(io_at(&full))?;
            }
        }
        let outcome = run_step(&install.root, step).and_then(|()| check_step(&install.root, step));
        if let Err(source) = outcome {
            take_back(install, journal, backup, progress)?;
            journal.status = Status::RolledBack;
            finish(install, journal)?;
            return Err(ChangeError::RolledBack {
                step: i + 1,
                what: step.describe(),
                backup: backup.meta.id.clone(),
                source,
            });
        }
        journal.done = i + 1;
        save(install, journal)?;
        crash_point(journal.done);
    }
    journal.status = Status::Done;
    finish(install, journal)?;
    Ok(Applied {
        change: journal.id.clone(),
        backup: backup.meta.id.clone(),
        steps: steps.len(),
    })
}

/// Saves the journal's final state and drops the contents kept for `--resume`.
fn finish(install: &Install, journal: &Journal) -> Result<(), ChangeError> {
    save(install, journal)?;
    record(install, journal)?;
    let dir = stash_dir(install, &journal.id);
    match fs_err::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_at(&dir)(e)),
        _ => Ok(()),
    }
}

/// The fault-injection seam (feature `fault-injection`, for tests only): with
/// `KC_CRASH_AFTER_STEP=N`, the process dies right after step N is journalled, as a crash would.
#[cfg(feature = "fault-injection")]
fn crash_point(done: usize) {
    if std::env::var("KC_CRASH_AFTER_STEP")
        .ok()
        .and_then(|v| v.parse().ok())
        == Some(done)
    {
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
fn crash_point(_done: usize) {}

/// Renames back, newest first, what the change's renames moved (those it got to).
fn rename_back(install: &Install, journal: &Journal) -> Result<(), ChangeError> {
    for step in journal.steps.iter().rev() {
        if let Step::Rename { from, to } = step {
            let (from, to) = (install.root.join(from), install.root.join(to));
            if is_there(&to) && !is_there(&from) {
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

/// Puts the install back as it was before the change: renames are renamed back, then every
/// touched path is put back as the pre-change backup has it (what the change created is removed,
/// what it changed or removed comes back).
fn take_back(
    install: &Install,
    journal: &Journal,
    backup: &Backup,
    progress: &dyn Progress,
) -> Result<(), ChangeError> {
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
    rename_back(install, journal)?;
    for path in &journal.touched {
        let full = install.root.join(path);
        if let Some(Ok(entries)) = full.parent().map(std::fs::read_dir) {
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
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.is_dir() => fs_err::remove_dir_all(&full).map_err(io_at(&full))?,
            Ok(_) => fs_err::remove_file(&full).map_err(io_at(&full))?,
            Err(_) => {}
        }
    }
    let absent: Vec<Vec<u8>> = backup.meta.absent.iter().map(|p| decode_path(p)).collect();
    let present: Vec<Vec<u8>> = journal
        .touched
        .iter()
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .filter(|p| !absent.contains(p))
        .collect();
    if !present.is_empty() {
        let options = RestoreOptions {
            to: install.root.clone(),
            selection: Selection::paths(&present),
            store: None,
            preserve_owners: true,
        };
        archive::restore(std::slice::from_ref(backup), &options, progress)?;
    }
    Ok(())
}

/// What [`undo`] took back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Undone {
    pub change: String,
    pub backup: String,
    pub paths: usize,
}

/// Takes a change back from its pre-change backup: the named one, or (`None`) the newest one not
/// yet undone. Goes through the guard and the lock, and is journalled.
pub fn undo(
    install: &Install,
    which: Option<&str>,
    backup_dir: &Path,
    pid_file: &Path,
    progress: &dyn Progress,
) -> Result<Undone, ChangeError> {
    let _lock = guard::acquire(&install.root, pid_file, "kc-backup")?;
    let all = journals(install)?;
    // Every change appends to the logs and most share users.cfg: taking back an older one from
    // its backup would take the later ones' edits with it. Changes are undone newest first.
    let in_effect: Vec<String> = all
        .iter()
        .filter(|j| j.status == Status::Done)
        .map(|j| j.id.clone())
        .collect();
    let mut journal = match which {
        Some(id) => {
            all.into_iter()
                .find(|j| j.id == id)
                .ok_or_else(|| ChangeError::NoSuchChange {
                    id: id.to_owned(),
                    dir: journal_dir(install),
                })?
        }
        None => all
            .into_iter()
            .rev()
            .find(|j| matches!(j.status, Status::Done | Status::Applying))
            .ok_or_else(|| ChangeError::NothingToUndo {
                dir: journal_dir(install),
            })?,
    };
    if let (Status::Undone, Some(when)) = (journal.status, &journal.undone) {
        return Err(ChangeError::AlreadyUndone {
            id: journal.id,
            when: when.clone(),
        });
    }
    if let Some(later) = in_effect.iter().rfind(|id| **id > journal.id) {
        return Err(ChangeError::LaterChange {
            id: journal.id,
            later: later.clone(),
        });
    }
    let backup = archive::find(backup_dir, &journal.backup)?;
    take_back(install, &journal, &backup, progress)?;
    journal.status = Status::Undone;
    journal.undone = Some(jiff::Timestamp::now().to_string());
    finish(install, &journal)?;
    Ok(Undone {
        change: journal.id,
        backup: backup.meta.id,
        paths: journal.touched.len(),
    })
}

/// The Kerio log line for an action: `[DD/Mon/YYYY HH:MM:SS] kc-<tool> - <text>`, local time.
pub fn audit_line(tool: &str, text: &str) -> String {
    let now = jiff::Zoned::now();
    format!("[{}] {tool} - {text}", now.strftime("%d/%b/%Y %H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(steps: Vec<Step>) -> Plan {
        Plan {
            tool: "kc-test".into(),
            description: "test".into(),
            steps,
            warnings: vec![],
        }
    }

    #[test]
    fn renames_are_not_backed_up_and_nothing_may_change_inside_them_afterwards() {
        let rename = Step::Rename {
            from: "store/mail/d/a".into(),
            to: "store/mail/d/b".into(),
        };
        let inside_old = Step::write_file("store/mail/d/a/INBOX/status.fld", b"x".to_vec());
        let log = Step::AppendLine {
            path: "store/logs/config.log".into(),
            line: "l".into(),
        };
        let good = plan(vec![inside_old.clone(), rename.clone(), log.clone()]);
        good.check().expect("writes before the rename are fine");
        assert_eq!(
            good.touched(),
            [
                PathBuf::from("store/logs/config.log"),
                PathBuf::from("store/mail/d/a/INBOX/status.fld")
            ]
        );
        for late in [
            Step::write_file("store/mail/d/b/INBOX/status.fld", b"x".to_vec()),
            inside_old,
            Step::CreateDir {
                path: "store/mail/d/b".into(),
            },
        ] {
            let err = plan(vec![rename.clone(), late])
                .check()
                .expect_err("refused");
            assert!(
                err.to_string()
                    .starts_with("the plan cannot be taken back safely: step 2 ("),
                "{err}"
            );
        }
    }
}
