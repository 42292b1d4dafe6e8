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
//!
//! The lock is taken before the tool reads what it plans from ([`lock`], then [`apply_locked`]),
//! and every file a step replaces must still hold the bytes the plan read ([`Expect`]), so a
//! second writer can never have its work overwritten by a plan made from an older copy.
//! Paths are logical (see `install`) and are checked by `place` before anything acts on them.

mod encoded;
mod place;
mod undo;

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use place::{NewFile, private_dir, write_atomic};
pub use undo::{After, Appended, State, Swap, SwapEntry};

use crate::archive::{self, ArchiveError, Backup, CreateOptions, Kind};
use crate::guard::{self, GuardError, InstallLock};
use crate::install::{Install, JOURNAL_DIR};
use crate::progress::Progress;
use place::{Act, place, place_for, sync_parent};

/// What a file must hold when a step replaces it: the bytes the plan was made from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// Not checked (a file the plan did not read).
    #[default]
    Any,
    /// The file must not exist.
    Absent,
    /// The file must hold bytes with this SHA-256.
    Sha256(String),
}

impl Expect {
    /// The expectation for a file the plan read as `bytes`.
    pub fn read(bytes: &[u8]) -> Expect {
        Expect::Sha256(crate::hash::sha256_hex(bytes))
    }

    /// Whether `real` holds what is expected.
    fn holds(&self, real: &Path) -> std::io::Result<bool> {
        Ok(match self {
            Expect::Any => true,
            Expect::Absent => real.symlink_metadata().is_err(),
            Expect::Sha256(want) => match archive::sha256_file(real) {
                Ok((_, have)) => have == *want,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(e),
            },
        })
    }
}

/// One step of a change. Paths are relative to the install root.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Write a file's new content (creating it if needed).
    WriteFile {
        /// The file written.
        #[serde(with = "encoded")]
        path: PathBuf,
        /// Its new bytes; not in the journal's JSON (kept in a file beside the journal until
        /// the change is done).
        #[serde(skip)]
        content: Vec<u8>,
        /// The SHA-256 of `content`, in lower-case hex: what the re-read after writing checks.
        sha256: String,
        /// The length of `content`, in bytes.
        bytes: u64,
        /// What the file must hold when the step runs.
        #[serde(default)]
        expect: Expect,
    },
    /// Rename a file or a directory (a mailbox, a folder). Its contents are not backed up: taking
    /// the change back renames it back. A plan writes inside a renamed tree before the rename.
    Rename {
        /// The present name.
        #[serde(with = "encoded")]
        from: PathBuf,
        /// The new name; must not exist.
        #[serde(with = "encoded")]
        to: PathBuf,
    },
    /// Move files to new names in the same directory tree: `index.fld` to `index.bad`, so that
    /// the server rebuilds the index. Unlike [`Step::Rename`], both ends of every move are in the
    /// pre-change backup (the file, and the new name's absence), so undo puts each file back from
    /// the verified copy, and refuses if either end changed since (the server rebuilt the index
    /// meanwhile). One step for any number of files: a journal is saved after each step, so a
    /// whole store's worth of moves is one save, not one per file. Each move is done or not, and
    /// a re-run skips those done.
    MoveFiles {
        /// The moves, done in this order.
        moves: Vec<FileMove>,
    },
    /// Create a directory (and its parents).
    CreateDir {
        /// The directory created.
        #[serde(with = "encoded")]
        path: PathBuf,
    },
    /// Remove a directory and everything in it.
    RemoveDir {
        /// The directory removed.
        #[serde(with = "encoded")]
        path: PathBuf,
    },
    /// Append lines to a log (the audit lines of `store/logs/config.log`, `warning.log`).
    /// Journals written before it took a list name it `append-line`, with one `line` that may
    /// hold several.
    #[serde(alias = "append-line")]
    AppendLines {
        /// The log file.
        #[serde(with = "encoded")]
        path: PathBuf,
        /// The lines, without their line ends, in order.
        #[serde(alias = "line", deserialize_with = "one_or_many")]
        lines: Vec<String>,
    },
    /// Restore these paths from a backup (its chain: the full one, then the differential), in
    /// place: `kc-backup restore --in-place` as a change, undone like any other.
    Restore {
        /// The archives of the chain, in order.
        #[serde(with = "encoded::list")]
        archives: Vec<PathBuf>,
        /// The paths restored, relative to the install root, as in the archives.
        #[serde(with = "encoded::list")]
        paths: Vec<PathBuf>,
        /// Directories the restore creates (the topmost missing ancestor of a path): touched
        /// too, so that undo removes them with what the restore put there.
        #[serde(default, with = "encoded::list")]
        creates: Vec<PathBuf>,
    },
}

/// One move of [`Step::MoveFiles`]: `to` must not exist when it runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileMove {
    /// The file's present path.
    #[serde(with = "encoded")]
    pub from: PathBuf,
    /// Its new path.
    #[serde(with = "encoded")]
    pub to: PathBuf,
}

impl Step {
    /// Writes a file, which must hold what `expect` says when the step runs.
    pub fn write_file(path: impl Into<PathBuf>, content: Vec<u8>, expect: Expect) -> Step {
        Step::WriteFile {
            path: path.into(),
            sha256: crate::hash::sha256_hex(&content),
            bytes: content.len() as u64,
            content,
            expect,
        }
    }

    /// Replaces a file the plan read as `read` (refused at apply if it changed since).
    pub fn replace_file(path: impl Into<PathBuf>, read: &[u8], content: Vec<u8>) -> Step {
        Step::write_file(path, content, Expect::read(read))
    }

    /// Creates a file that must not exist yet.
    pub fn create_file(path: impl Into<PathBuf>, content: Vec<u8>) -> Step {
        Step::write_file(path, content, Expect::Absent)
    }

    /// Saves an edited config document over the file it was read from.
    pub fn save_document(path: impl Into<PathBuf>, doc: &crate::config::Document) -> Step {
        Step::write_file(
            path,
            doc.to_bytes(),
            Expect::Sha256(doc.read_sha256().to_owned()),
        )
    }

    /// A save of each config file a plan edited, users.cfg first: the steps every planner
    /// starts with (paths relative to the root: the files' names).
    pub fn save_modified(config: &crate::config::Config) -> Vec<Step> {
        [&config.users, &config.mailserver]
            .into_iter()
            .filter(|doc| doc.is_modified())
            .map(|doc| Step::save_document(doc.path().file_name().unwrap_or_default(), doc))
            .collect()
    }

    /// The paths the step touches (a rename's two ends included).
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            Step::WriteFile { path, .. }
            | Step::CreateDir { path }
            | Step::RemoveDir { path }
            | Step::AppendLines { path, .. } => vec![path],
            Step::Rename { from, to } => vec![from, to],
            Step::MoveFiles { moves } => moves
                .iter()
                .flat_map(|m| [m.from.as_path(), m.to.as_path()])
                .collect(),
            Step::Restore { paths, creates, .. } => {
                paths.iter().chain(creates).map(PathBuf::as_path).collect()
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Step::WriteFile { path, bytes, .. } => {
                format!("write {} ({bytes} bytes)", path.display())
            }
            Step::Rename { from, to } => format!("rename {} -> {}", from.display(), to.display()),
            Step::MoveFiles { moves } => match moves.as_slice() {
                [one] => format!("move {} -> {}", one.from.display(), one.to.display()),
                _ => format!("move {} files aside", moves.len()),
            },
            Step::CreateDir { path } => format!("create directory {}", path.display()),
            Step::RemoveDir { path } => format!("remove {}", path.display()),
            Step::AppendLines { path, lines } => match lines.as_slice() {
                [line] => format!("append to {}: {line}", path.display()),
                _ => format!("append {} lines to {}", lines.len(), path.display()),
            },
            Step::Restore {
                archives, paths, ..
            } => format!(
                "restore {} paths from {}",
                paths.len(),
                archives
                    .iter()
                    .filter_map(|a| a.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" + ")
            ),
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
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// Things the admin should know that the plan does not change.
    pub warnings: Vec<String>,
}

/// [`Plan::touched`] of some steps (a journal's too).
pub(crate) fn touched(steps: &[Step]) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = steps
        .iter()
        .filter(|s| !matches!(s, Step::Rename { .. }))
        .flat_map(|s| s.paths())
        .map(Path::to_path_buf)
        .collect();
    all.sort();
    all.dedup();
    all
}

impl Plan {
    /// Every path whose contents the steps change, once each, sorted: what the pre-change backup
    /// holds. A rename changes no contents (it is taken back by renaming back), so its ends are
    /// left out; that is what keeps moving a 50 GB mailbox from copying it.
    pub fn touched(&self) -> Vec<PathBuf> {
        touched(&self.steps)
    }

    /// The plan's steps as lines, `WOULD …` when nothing will be done. Its warnings are not
    /// among them: they are messages, for stderr.
    pub fn lines(&self, dry_run: DryRun) -> Vec<String> {
        let lead = match dry_run {
            DryRun::Enabled => "WOULD ",
            DryRun::Disabled => "",
        };
        let mut out: Vec<String> = Vec::new();
        for step in &self.steps {
            match step {
                // Many audit lines at once (an import): one line each, under a heading.
                Step::AppendLines { lines, .. } if lines.len() > 1 => {
                    out.push(format!("{lead}{}:", step.describe()));
                    out.extend(
                        lines
                            .iter()
                            .map(|l| printable(&format!("  {l}")).into_owned()),
                    );
                }
                // Many moves at once (a reindex): one line each, under a heading.
                Step::MoveFiles { moves } if moves.len() > 1 => {
                    out.push(format!("{lead}{}:", step.describe()));
                    out.extend(moves.iter().map(|m| {
                        printable(&format!("  {} -> {}", m.from.display(), m.to.display()))
                            .into_owned()
                    }));
                }
                _ => out.push(format!("{lead}{}", printable(&step.describe()))),
            }
        }
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
        for line in self.lines(DryRun::Enabled) {
            writeln!(f, "{line}")?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {}", printable(warning))?;
        }
        Ok(())
    }
}

/// Why a change was not made, not taken back, or was left half-way; each message says what
/// state the install is in and what to run next.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The server is running, or another tool holds the install's lock.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// The install could not be read (its root, config files or store).
    #[error(transparent)]
    Install(#[from] crate::install::InstallError),
    /// The pre-change backup could not be made, or a backup read for taking a change back.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// An earlier change's journal is still `applying` or `undoing`: every writer refuses.
    #[error(
        "change {id} was interrupted and is unfinished; run `kc-backup undo {id}` to take it back (or re-run the tool with --resume), then try again; nothing was changed"
    )]
    Unfinished {
        /// The unfinished change's ID.
        id: String,
    },
    /// A step failed; the install was restored from the pre-change backup.
    #[error(
        "step {step} ({what}) failed; the change was rolled back from backup {backup}, nothing changed"
    )]
    RolledBack {
        /// The failed step's number, from 1.
        step: usize,
        /// The failed step, described as in the plan.
        what: String,
        /// The ID of the pre-change backup rolled back from.
        backup: String,
        /// Why the step failed.
        #[source]
        source: std::io::Error,
    },
    /// A file operation failed.
    #[error("{path}")]
    Io {
        /// The path acted on.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The pre-change backup failed (the cause inside), before anything was changed.
    #[error("the change could not start; nothing was changed")]
    NotStarted(#[source] Box<ChangeError>),
    /// Undo was asked for a change ID that has no journal.
    #[error("no change {id} in {dir}")]
    NoSuchChange {
        /// The change ID asked for.
        id: String,
        /// The journal directory searched (`<root>/kc-journal`).
        dir: PathBuf,
    },
    /// Undo was asked for a change that was already taken back.
    #[error("change {id} was already undone at {when}")]
    AlreadyUndone {
        /// The change's ID.
        id: String,
        /// When it was undone (RFC 3339), or that it was rolled back on its own failure.
        when: String,
    },
    /// `undo --last` found no change in effect.
    #[error("no change to undo in {dir}")]
    NothingToUndo {
        /// The journal directory searched.
        dir: PathBuf,
    },
    /// `--resume` found no interrupted change.
    #[error("no interrupted change to resume in {dir}; nothing was changed")]
    NothingToResume {
        /// The journal directory searched.
        dir: PathBuf,
    },
    /// Undo was asked for a change while a later one is still in effect.
    #[error(
        "change {later}, made after {id}, is still in effect; changes are undone newest first: run `kc-backup undo --last` until {id} is undone; nothing was changed"
    )]
    LaterChange {
        /// The change asked to be undone.
        id: String,
        /// The later change still in effect.
        later: String,
    },
    /// The plan could not be taken back safely (a step inside a tree an earlier step renamed,
    /// a backup directory the change removes); the text says which.
    #[error("the plan cannot be taken back safely: {0}; nothing was changed")]
    BadPlan(String),
    /// A file the plan read was written by someone else before its step ran.
    #[error(
        "{} changed since the plan was made (another program wrote it); nothing was changed, run the tool again",
        printable(&.paths.join(", "))
    )]
    ChangedSincePlan {
        /// The files whose bytes no longer match the plan's [`Expect`].
        paths: Vec<String>,
    },
    /// Undo (without `--force`) found paths the change touched edited since.
    #[error(
        "change {id} cannot be undone as it is: {} since; undoing it would lose that. Take those edits back first, or undo with --force (what it replaces is backed up first); nothing was changed",
        printable(&.paths.join(", "))
    )]
    EditedSince {
        /// The change asked to be undone.
        id: String,
        /// Each path changed since, with how (`removed`, `created`, `changed`).
        paths: Vec<String>,
    },
    /// A step's path is not a plain relative path inside the install, or leads out of it
    /// through a link.
    #[error("{} {why}; nothing was changed", printable(&.path.display().to_string()))]
    Escapes {
        /// The path, as the step or the disk gives it.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A journal in `kc-journal` cannot be read or parsed, or breaks its rules; the text names
    /// the file.
    #[error(
        "the journal is not trustworthy: {0}; every tool refuses until it is readable, since it may record an unfinished change. If `kc-backup changes` and the backups show that change finished or undone, move the file out of kc-journal (keep it) and run again"
    )]
    BadJournal(String),
    /// Undo failed while staging the backup's copies: nothing was changed.
    #[error(
        "undo of change {id} could not start: nothing was changed, the change is still in effect; fix the cause (room on the disk?), then run `kc-backup undo {id}` again"
    )]
    UndoNotStarted {
        /// The change that was to be undone.
        id: String,
        /// Why staging failed.
        #[source]
        source: Box<ChangeError>,
    },
    /// Undo or rollback failed during the swap, and what it had swapped was put back.
    #[error(
        "taking change {id} back failed part-way, and what it had put back was undone: the install is as it was before; fix the cause, then run `kc-backup undo {id}` again"
    )]
    TakeBackFailed {
        /// The change that was being taken back.
        id: String,
        /// Why the swap failed.
        #[source]
        source: Box<ChangeError>,
    },
    /// Undo failed during the swap, and putting back what it had swapped failed too: the
    /// install is half-way and the journal stays `undoing`.
    #[error(
        "taking change {id} back failed part-way ({cause}), and putting back what it had done failed too; the install is half-way: fix the cause, then run `kc-backup undo {id}`"
    )]
    TakeBackStuck {
        /// The change that was being taken back.
        id: String,
        /// Why the swap failed.
        cause: Box<ChangeError>,
        /// Why reversing the swap failed too.
        #[source]
        source: Box<ChangeError>,
    },
    /// A change rolled back over files another program wrote after the change wrote them:
    /// what they held is kept in a backup.
    #[error(
        "{cause}; {} had been written by another program after this change wrote {}: what {} then is kept in backup {backup} (kc-backup restore {backup} --to DIR shows it)",
        .paths.join(", "),
        if .paths.len() == 1 { "it" } else { "them" },
        if .paths.len() == 1 { "it held" } else { "they held" }
    )]
    KeptRewritten {
        /// Why the change was rolled back.
        cause: Box<ChangeError>,
        /// The files written again meanwhile.
        paths: Vec<String>,
        /// The backup holding them as they were before the rollback.
        backup: String,
    },
    /// A step failed and rolling the change back failed too: the change stays unfinished.
    #[error(
        "step {step} ({what}) failed ({cause}), and rolling the change back failed too: change {id} is unfinished; every tool refuses until `kc-backup undo {id}` has run (fix the cause first)"
    )]
    RollbackFailed {
        /// The failed step's number, from 1.
        step: usize,
        /// The failed step, described as in the plan.
        what: String,
        /// The change, left unfinished.
        id: String,
        /// Why the step failed.
        cause: Box<ChangeError>,
        /// Why the rollback failed.
        #[source]
        source: Box<ChangeError>,
    },
}

/// A list of lines, or (journals from before `AppendLines`) one string.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Lines {
        One(String),
        Many(Vec<String>),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        Lines::One(line) => vec![line],
        Lines::Many(lines) => lines,
    })
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
    /// Steps are running, or a crash stopped them: every writer refuses until undo or resume.
    Applying,
    /// Every step ran and was checked; the change is in effect.
    Done,
    /// A step failed and the install was restored from the pre-change backup.
    RolledBack,
    /// Being taken back (an undo, or a rollback): the journal's `swap` says how far.
    Undoing,
    /// Taken back by undo; the journal's `undone` says when.
    Undone,
}

impl Status {
    /// Whether the install is half-way: every writer refuses until it is finished or undone.
    pub fn unfinished(self) -> bool {
        matches!(self, Status::Applying | Status::Undoing)
    }
}

/// `<root>/kc-journal/<change-id>.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Journal {
    /// The change ID: the pre-change backup's ID with its `P` made a `C`.
    pub id: String,
    /// The tool that made the change (`kc-…`), from the plan.
    pub tool: String,
    /// The plan's one-line description.
    pub description: String,
    /// The pre-change backup's ID.
    pub backup: String,
    /// When the change started (after its backup).
    pub started: jiff::Timestamp,
    /// Where the change stands.
    pub status: Status,
    /// The plan's steps, in order (without the bytes files get, kept beside the journal).
    pub steps: Vec<Step>,
    /// How many steps have completed.
    pub done: usize,
    /// Every path whose contents the steps change ([`Plan::touched`]): what the backup holds.
    #[serde(with = "encoded::list")]
    pub touched: Vec<PathBuf>,
    /// When the change was undone; `None` while it is not.
    pub undone: Option<jiff::Timestamp>,
    /// A log's length before the append of step N, so that a resumed append is not doubled.
    #[serde(default)]
    pub append_base: Option<(usize, u64)>,
    /// Each log's length before the change's first line in it.
    #[serde(default)]
    pub log_bases: Vec<(PathBuf, u64)>,
    /// What each touched path held when the change was done (undo checks it).
    #[serde(default)]
    pub after: Vec<After>,
    /// The lines the change appended to each log (undo cuts exactly them out).
    #[serde(default)]
    pub appended: Vec<Appended>,
    /// A take-back under way (status `undoing`).
    #[serde(default)]
    pub swap: Option<Swap>,
    /// What a forced undo replaced, backed up first.
    #[serde(default)]
    pub undo_backup: Option<String>,
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
    private_dir(&dir).map_err(io_at(&dir))?;
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
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io_at(&path))?
    };
    f.write_all(&line).map_err(io_at(&path))?;
    f.sync_all().map_err(io_at(&path))
}

fn save(install: &Install, journal: &Journal) -> Result<(), ChangeError> {
    let dir = journal_dir(install);
    private_dir(&dir).map_err(io_at(&dir))?;
    let path = dir.join(format!("{}.json", journal.id));
    let bytes = serde_json::to_vec_pretty(journal).expect("the journal serialises");
    write_atomic(&path, &bytes, NewFile::Private)
}

/// The journals of the install, oldest first.
pub fn journals(install: &Install) -> Result<Vec<Journal>, ChangeError> {
    let (journals, mut unreadable) = journals_listing(install)?;
    match unreadable.pop() {
        Some(why) => Err(ChangeError::BadJournal(why)),
        None => Ok(journals),
    }
}

/// For listing only (`kc-backup changes`): the journals that can be read, and `PATH: why` of
/// each one that cannot, which [`journals`] refuses on (a writer must not run over an
/// unfinished change it cannot see, but the admin must see the others to decide).
pub fn journals_listing(install: &Install) -> Result<(Vec<Journal>, Vec<String>), ChangeError> {
    let dir = journal_dir(install);
    let entries = match fs_err::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        // Unreadable is not empty: a writer must not run over an unfinished change it cannot see.
        Err(e) => return Err(io_at(&dir)(e)),
    };
    let (mut out, mut unreadable) = (Vec::new(), Vec::new());
    for entry in entries {
        let path = entry.map_err(io_at(&dir))?.path();
        if path.extension() == Some(OsStr::new("json")) {
            match read_journal(&path) {
                Ok(journal) => out.push(journal),
                Err(why) => unreadable.push(format!("{}: {why}", path.display())),
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    unreadable.sort();
    Ok((out, unreadable))
}

/// One journal file, checked; why not when it cannot be trusted.
fn read_journal(path: &Path) -> Result<Journal, String> {
    // A regular file only: a FIFO planted there must not hang every tool.
    let bytes = crate::store::read_regular(path, 1 << 30).map_err(|e| e.to_string())?;
    let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    check_journal(&journal)?;
    Ok(journal)
}

/// A journal names only plain paths inside the install, and an ID of the toolkit's form: a
/// journal edited to name `../../etc` or an absolute path is refused, never acted on.
fn check_journal(journal: &Journal) -> Result<(), String> {
    let id_ok = journal.id.len() > 1
        && journal.id.starts_with('C')
        && journal.id[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !id_ok {
        return Err(format!("{:?} is not a change ID", journal.id));
    }
    let steps = journal.steps.iter().flat_map(|s| s.paths());
    let recorded = journal
        .touched
        .iter()
        .map(PathBuf::as_path)
        .chain(journal.after.iter().map(|a| a.path.as_path()))
        .chain(journal.appended.iter().map(|a| a.path.as_path()));
    for path in steps.chain(recorded) {
        if !crate::install::is_plain_relative(path) {
            return Err(format!(
                "{} is not a path inside the install",
                path.display()
            ));
        }
    }
    // Undo acts on `touched`: it must be exactly what the steps touch.
    if touched(&journal.steps) != journal.touched {
        return Err("its touched paths are not those of its steps".into());
    }
    // Undo cuts the appended bytes out of a log: they must be exactly the steps' own lines.
    for a in &journal.appended {
        let ours = undo::journal_lines(journal, &a.path);
        if ours.is_empty()
            || ours.len() as u64 != a.length
            || crate::hash::sha256_hex(&ours) != a.sha256
        {
            return Err(format!(
                "what it says it appended to {} is not its steps' lines",
                a.path.display()
            ));
        }
    }
    Ok(())
}

/// Whether something is at `path`, a link included even when it leads nowhere.
fn is_there(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Runs one step. Its paths were resolved and checked by `place` (through [`at`]).
fn run_step(install: &Install, step: &Step) -> Result<(), ChangeError> {
    let at = |p: &Path| place(install, p);
    let on = |p: &Path| place_for(install, p, Act::OnEntry);
    match step {
        Step::WriteFile {
            path,
            content,
            sha256,
            expect,
            ..
        } => {
            let real = at(path)?;
            if !expect.holds(&real).map_err(io_at(&real))? {
                // Already written: a run killed after this write and before its journal said so,
                // finished by --resume.
                if Expect::Sha256(sha256.clone())
                    .holds(&real)
                    .map_err(io_at(&real))?
                {
                    return Ok(());
                }
                return Err(ChangeError::ChangedSincePlan {
                    paths: vec![path.display().to_string()],
                });
            }
            write_atomic(&real, content, NewFile::LikeSiblings)
        }
        Step::Rename { from, to } => {
            let (from, to) = (on(from)?, on(to)?);
            if !is_there(&from) && is_there(&to) {
                return Ok(()); // done by an earlier run
            }
            std::fs::rename(&from, &to).map_err(io_at(&from))?;
            sync_parent(&from).map_err(io_at(&from))?;
            sync_parent(&to).map_err(io_at(&to))
        }
        Step::MoveFiles { moves } => move_files(install, moves),
        Step::CreateDir { path } => {
            let real = at(path)?;
            std::fs::create_dir_all(&real).map_err(io_at(&real))?;
            sync_parent(&real).map_err(io_at(&real))
        }
        Step::RemoveDir { path } => {
            let real = on(path)?;
            match std::fs::remove_dir_all(&real) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_at(&real)(e)),
                _ => sync_parent(&real).map_err(io_at(&real)),
            }
        }
        Step::Restore {
            archives, paths, ..
        } => restore_paths(install, archives, paths),
        Step::AppendLines { path, lines } => append_lines(&at(path)?, lines),
    }
}

/// [`Step::MoveFiles`]: each file renamed, those an earlier run moved skipped; a file already
/// at a destination is not overwritten.
fn move_files(install: &Install, moves: &[FileMove]) -> Result<(), ChangeError> {
    let on = |p: &Path| place_for(install, p, Act::OnEntry);
    for m in moves {
        let (from, to) = (on(&m.from)?, on(&m.to)?);
        if !is_there(&from) && is_there(&to) {
            continue; // done by an earlier run
        }
        if is_there(&to) {
            return Err(ChangeError::ChangedSincePlan {
                paths: vec![m.to.display().to_string()],
            });
        }
        std::fs::rename(&from, &to).map_err(io_at(&from))?;
        sync_parent(&to).map_err(io_at(&to))?;
    }
    Ok(())
}

/// [`Step::Restore`]: `paths` (logical) back from the chain of `archives`, in place.
fn restore_paths(
    install: &Install,
    archives: &[PathBuf],
    paths: &[PathBuf],
) -> Result<(), ChangeError> {
    for path in paths {
        place_for(install, path, Act::OnEntry)?;
    }
    let chain = archives
        .iter()
        .map(|a| Backup::open(a))
        .collect::<Result<Vec<_>, _>>()?;
    let selected: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .collect();
    let options = archive::RestoreOptions {
        to: install.root.clone(),
        selection: archive::Selection::paths(&selected),
        store: Some(install.store.clone()),
        preserve_owners: true,
    };
    archive::restore(&chain, &options, &crate::progress::Silent)?;
    Ok(())
}

/// [`Step::AppendLines`]: the lines appended to the log at `real` in one write, never through a
/// link, then synced.
fn append_lines(real: &Path, lines: &[String]) -> Result<(), ChangeError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = real.parent() {
        fs_err::create_dir_all(parent).map_err(io_at(parent))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(real)
        .map_err(io_at(real))?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    f.write_all(text.as_bytes()).map_err(io_at(real))?;
    f.sync_all().map_err(io_at(real))
}

/// Re-reads what a step wrote.
fn check_step(install: &Install, step: &Step) -> Result<(), ChangeError> {
    let fail = |path: &Path, what: &str| {
        Err(ChangeError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(what.to_owned()),
        })
    };
    match step {
        Step::WriteFile { path, sha256, .. } => {
            let real = place(install, path)?;
            let now = fs_err::read(&real).map_err(io_at(&real))?;
            if crate::hash::sha256_hex(&now) != *sha256 {
                return fail(path, "does not hold what was written");
            }
            Ok(())
        }
        Step::Rename { to, .. } if !is_there(&install.resolve(to)) => {
            fail(to, "is missing after the rename")
        }
        Step::CreateDir { path } if !install.resolve(path).is_dir() => {
            fail(path, "was not created")
        }
        Step::MoveFiles { moves } => {
            for m in moves {
                if is_there(&install.resolve(&m.from)) || !is_there(&install.resolve(&m.to)) {
                    return fail(&m.from, "was not moved");
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    /// The change ID, for `kc-backup undo`.
    pub change: String,
    /// The ID of the pre-change backup.
    pub backup: String,
    /// How many steps ran.
    pub steps: usize,
    /// Servers of other installs the guard let be (when this call took the guard itself).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_servers: Vec<String>,
}

/// Where the contents a change writes are kept until it is done, for `--resume`.
fn stash_dir(install: &Install, id: &str) -> PathBuf {
    journal_dir(install).join(id)
}

fn stash(install: &Install, id: &str, steps: &[Step]) -> Result<(), ChangeError> {
    let dir = stash_dir(install, id);
    private_dir(&dir).map_err(io_at(&dir))?;
    for (i, step) in steps.iter().enumerate() {
        if let Step::WriteFile { content, .. } = step {
            write_atomic(&dir.join(format!("step-{i}")), content, NewFile::Private)?;
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

/// Refuses while a change is unfinished (interrupted by a crash, or an undo that was). Tools
/// call it before they even plan, since such a change leaves the install half-changed;
/// [`apply`] checks again.
pub fn check_unfinished(install: &Install) -> Result<(), ChangeError> {
    match journals(install)?
        .into_iter()
        .find(|j| j.status.unfinished())
    {
        Some(open) => Err(ChangeError::Unfinished { id: open.id }),
        None => Ok(()),
    }
}

/// Takes the guard: the server must be stopped, and the install's lock becomes ours. Writers
/// take it before they read anything they plan from, and hold it until the change is done.
pub fn lock(install: &Install, pid_file: &Path, tool: &str) -> Result<InstallLock, ChangeError> {
    Ok(guard::acquire(&install.root, pid_file, tool)?)
}

/// Whether a writer changes anything (`-n`, `--dry-run`: it prints what it would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// Only print the plan; change nothing.
    Enabled,
    /// Carry the plan out.
    Disabled,
}

/// Where and how changes are carried out, taken back or finished: the install, the directory
/// of its pre-change backups, the pid file the guard reads to tell a running server, and where
/// progress goes.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The install changed.
    pub install: &'a Install,
    /// Where pre-change backups are written and looked for.
    pub backup_dir: &'a Path,
    /// The server's pid file, which the guard reads to refuse while the server runs.
    pub pid_file: &'a Path,
    /// Where progress is reported.
    pub progress: &'a dyn Progress,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("install", &self.install)
            .field("backup_dir", &self.backup_dir)
            .field("pid_file", &self.pid_file)
            .finish_non_exhaustive()
    }
}

/// Applies a plan through the whole protocol, taking the guard itself (for plans made without
/// reading the install; tools use [`lock`] then [`apply_locked`]).
pub fn apply(cx: &Context<'_>, plan: &Plan) -> Result<Applied, ChangeError> {
    let lock = lock(cx.install, cx.pid_file, &plan.tool)?;
    let mut applied = apply_locked(cx, &lock, plan)?;
    applied.other_servers = notes(&lock);
    Ok(applied)
}

/// What a dry run can tell of whether the change would be carried out: the plan can be taken
/// back, every path stays inside the install (no link out), every file still holds what the
/// plan read. Reads only; the server and lock checks are the real run's.
pub fn would_apply(cx: &Context<'_>, plan: &Plan) -> Result<(), ChangeError> {
    plan.check()?;
    preflight(cx.install, plan, cx.backup_dir)
}

/// Checks, before anything is written, what can be checked: every path stays inside the install,
/// every file still holds what the plan read, and the backup directory is not inside something
/// the change removes or moves.
fn preflight(install: &Install, plan: &Plan, backup_dir: &Path) -> Result<(), ChangeError> {
    let mut changed = Vec::new();
    for step in &plan.steps {
        let act = match step {
            Step::Rename { .. }
            | Step::RemoveDir { .. }
            | Step::Restore { .. }
            | Step::MoveFiles { .. } => Act::OnEntry,
            _ => Act::Through,
        };
        if let Step::MoveFiles { moves } = step {
            for m in moves {
                let (from, to) = (install.resolve(&m.from), install.resolve(&m.to));
                if !from.symlink_metadata().is_ok_and(|meta| meta.is_file()) {
                    changed.push(m.from.display().to_string());
                }
                if is_there(&to) {
                    changed.push(m.to.display().to_string());
                }
            }
        }
        for path in step.paths() {
            let real = place_for(install, path, act)?;
            if let Step::WriteFile { expect, .. } = step
                && !expect.holds(&real).map_err(io_at(&real))?
            {
                changed.push(path.display().to_string());
            }
        }
    }
    if !changed.is_empty() {
        return Err(ChangeError::ChangedSincePlan { paths: changed });
    }
    // A backup holds files, directories and links: a FIFO, socket or device in a tree the change
    // removes could not come back with undo, so it is refused, named.
    for step in &plan.steps {
        if let Step::RemoveDir { path } = step {
            let real = install.resolve(path);
            for entry in walkdir::WalkDir::new(&real).into_iter().flatten() {
                let t = entry.file_type();
                if !(t.is_dir() || t.is_file() || t.is_symlink()) {
                    return Err(ChangeError::BadPlan(format!(
                        "{} is a FIFO, socket or device, which a backup cannot hold; move it out of {} first",
                        entry.path().display(),
                        path.display()
                    )));
                }
            }
        }
    }
    let backups = backup_dir
        .canonicalize()
        .unwrap_or_else(|_| backup_dir.to_owned());
    for step in &plan.steps {
        let gone = match step {
            Step::RemoveDir { path } => path,
            Step::Rename { from, .. } => from,
            _ => continue,
        };
        let real = install.resolve(gone);
        let real = real.canonicalize().unwrap_or(real);
        if backups.starts_with(&real) {
            return Err(ChangeError::BadPlan(format!(
                "the backup directory {} is inside {}, which the change removes or moves; give another --backup-dir",
                backup_dir.display(),
                gone.display()
            )));
        }
    }
    Ok(())
}

/// A verified `P` backup of exactly `paths` (logical), recording those that do not exist.
fn pre_change_backup(
    install: &Install,
    paths: &[PathBuf],
    backup_dir: &Path,
    progress: &dyn Progress,
) -> Result<Backup, ArchiveError> {
    let options = CreateOptions {
        kind: Kind::PreChange,
        paths: Some(
            paths
                .iter()
                .map(|p| p.as_os_str().as_bytes().to_vec())
                .collect(),
        ),
        ..CreateOptions::default()
    };
    archive::create(install, backup_dir, &options, progress)
}

/// A change is named after its pre-change backup: `C` and the backup's time stamp
/// (`P20261122T101500Z` → `C20261122T101500Z`), so each names the other.
fn change_id(backup: &Backup) -> String {
    let id = &backup.meta.id;
    let stamp = id.strip_prefix(Kind::PreChange.letter()).unwrap_or(id);
    format!("C{stamp}")
}

/// Applies a plan under a lock the caller took before it read what the plan is made from.
pub fn apply_locked(
    cx: &Context<'_>,
    _lock: &InstallLock,
    plan: &Plan,
) -> Result<Applied, ChangeError> {
    let Context {
        install,
        backup_dir,
        progress,
        ..
    } = *cx;
    plan.check()?;
    check_unfinished(install)?;
    preflight(install, plan, backup_dir)?;
    let touched = plan.touched();
    let not_started = |e: ChangeError| ChangeError::NotStarted(Box::new(e));
    let backup = pre_change_backup(install, &touched, backup_dir, progress)
        .map_err(|e| not_started(e.into()))?;
    let mut journal = Journal {
        id: change_id(&backup),
        tool: plan.tool.clone(),
        description: plan.description.clone(),
        backup: backup.meta.id.clone(),
        started: jiff::Timestamp::now(),
        status: Status::Applying,
        steps: plan.steps.clone(),
        done: 0,
        touched,
        undone: None,
        append_base: None,
        log_bases: Vec::new(),
        after: Vec::new(),
        appended: Vec::new(),
        swap: None,
        undo_backup: None,
    };
    for log in undo::log_paths(&plan.steps) {
        let real = place(install, &log).map_err(not_started)?;
        let len = std::fs::metadata(&real).map_or(0, |m| m.len());
        journal.log_bases.push((log, len));
    }
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
pub fn resume(cx: &Context<'_>, which: Option<&str>) -> Result<Applied, ChangeError> {
    let Context {
        install,
        backup_dir,
        pid_file,
        progress,
    } = *cx;
    let lock = guard::acquire(&install.root, pid_file, "kc-resume")?;
    let mut journal = journals(install)?
        .into_iter()
        .filter(|j| j.status == Status::Applying)
        .find(|j| which.is_none_or(|id| j.id == id))
        .ok_or_else(|| ChangeError::NothingToResume {
            dir: journal_dir(install),
        })?;
    let steps = unstash(install, &journal)?;
    let backup = archive::find(backup_dir, &journal.backup)?;
    let mut applied = run(install, &mut journal, &steps, &backup, progress)?;
    applied.other_servers = notes(&lock);
    Ok(applied)
}

/// What the lock's guard let be, as lines for the admin.
fn notes(lock: &InstallLock) -> Vec<String> {
    lock.other_servers().iter().map(|o| o.to_string()).collect()
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
        let outcome = prepare_append(install, journal, i, step)
            .and_then(|()| run_step(install, step))
            .and_then(|()| check_step(install, step));
        if let Err(source) = outcome {
            // What may have been written: the steps done, and this one unless it was refused
            // before it wrote (a file changed since the plan, a path out of the install). Only
            // those paths are put back: a file the change never wrote keeps what another
            // program wrote to it meanwhile.
            let refused_first = matches!(step, Step::WriteFile { .. })
                && matches!(
                    source,
                    ChangeError::ChangedSincePlan { .. } | ChangeError::Escapes { .. }
                );
            let ran = &steps[..if refused_first { i } else { i + 1 }];
            // A file another program wrote again after this change wrote it: what it holds now
            // is kept in a backup of its own before the rollback puts the old bytes back.
            let kept = match keep_rewritten(install, &steps[..i], backup, progress) {
                Ok(kept) => kept,
                Err(failed) => {
                    return Err(ChangeError::RollbackFailed {
                        step: i + 1,
                        what: step.describe(),
                        id: journal.id.clone(),
                        cause: Box::new(source),
                        source: Box::new(failed),
                    });
                }
            };
            if let Err(failed) = undo::roll_back(install, journal, backup, ran, progress) {
                return Err(ChangeError::RollbackFailed {
                    step: i + 1,
                    what: step.describe(),
                    id: journal.id.clone(),
                    cause: Box::new(source),
                    source: Box::new(failed),
                });
            }
            finish(install, journal)?;
            let err = match source {
                e @ ChangeError::ChangedSincePlan { .. } => e,
                e @ ChangeError::Escapes { .. } => e,
                other => ChangeError::RolledBack {
                    step: i + 1,
                    what: step.describe(),
                    backup: backup.meta.id.clone(),
                    source: std::io::Error::other(other),
                },
            };
            return Err(match kept {
                Some((paths, id)) => ChangeError::KeptRewritten {
                    cause: Box::new(err),
                    paths,
                    backup: id,
                },
                None => err,
            });
        }
        journal.done = i + 1;
        save(install, journal)?;
        crash_point(journal.done);
    }
    undo::record_after(install, journal)?;
    journal.status = Status::Done;
    finish(install, journal)?;
    Ok(Applied {
        change: journal.id.clone(),
        backup: backup.meta.id.clone(),
        steps: steps.len(),
        other_servers: Vec::new(),
    })
}

/// The files of the steps `done` that no longer hold what their step wrote (another program
/// wrote them while the change ran), backed up as they are now, beside the pre-change backup:
/// their paths and the backup's ID, or `None` when there are none.
fn keep_rewritten(
    install: &Install,
    done: &[Step],
    backup: &Backup,
    progress: &dyn Progress,
) -> Result<Option<(Vec<String>, String)>, ChangeError> {
    let mut rewritten = Vec::new();
    for step in done {
        if let Step::WriteFile { path, sha256, .. } = step {
            let real = place(install, path)?;
            if !Expect::Sha256(sha256.clone())
                .holds(&real)
                .map_err(io_at(&real))?
                && !rewritten.contains(path)
            {
                rewritten.push(path.clone());
            }
        }
    }
    if rewritten.is_empty() {
        return Ok(None);
    }
    let dir = backup.archive.parent().unwrap_or(Path::new("."));
    let kept = pre_change_backup(install, &rewritten, dir, progress)?;
    let paths = rewritten.iter().map(|p| p.display().to_string()).collect();
    Ok(Some((paths, kept.meta.id)))
}

/// Before an append: the log's length is kept across a crash, and a re-run cuts back to it so
/// that the line is never doubled.
fn prepare_append(
    install: &Install,
    journal: &mut Journal,
    i: usize,
    step: &Step,
) -> Result<(), ChangeError> {
    let Step::AppendLines { path, .. } = step else {
        return Ok(());
    };
    let full = place(install, path)?;
    let base = match journal.append_base {
        Some((j, len)) if j == i => len,
        _ => {
            let len = std::fs::metadata(&full).map_or(0, |m| m.len());
            journal.append_base = Some((i, len));
            save(install, journal)?;
            len
        }
    };
    if std::fs::metadata(&full).is_ok_and(|m| m.len() > base) {
        let f = fs_err::OpenOptions::new()
            .write(true)
            .open(&full)
            .map_err(io_at(&full))?;
        f.set_len(base).map_err(io_at(&full))?;
    }
    Ok(())
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
fn crash_point(done: usize) {
    crash_if("KC_CRASH_AFTER_STEP", done);
}

/// With `fault-injection`: dies when the environment variable `var` holds `n`.
#[cfg(feature = "fault-injection")]
pub(crate) fn crash_if(var: &str, n: usize) {
    if std::env::var(var).ok().and_then(|v| v.parse().ok()) == Some(n) {
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
pub(crate) fn crash_if(_var: &str, _n: usize) {}

/// What [`undo`] took back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Undone {
    /// The change ID.
    pub change: String,
    /// The tool that had made the change.
    pub tool: String,
    /// The change's one-line description.
    pub description: String,
    /// The ID of the pre-change backup it was taken back from.
    pub backup: String,
    /// How many touched paths the change had.
    pub paths: usize,
    /// With `--force`: the backup of what the undo replaced.
    pub replaced_backup: Option<String>,
    /// What the admin should know about the undo (one line each).
    pub warnings: Vec<String>,
    /// Servers of other installs the guard let be.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_servers: Vec<String>,
}

/// How [`undo`] goes about it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UndoOptions {
    /// Undo even over edits made since the change (backing them up first).
    pub force: bool,
}

/// The change [`undo`] would take back, and why it may not: for `undo -n` and for undo itself.
pub fn undo_target(install: &Install, which: Option<&str>) -> Result<Journal, ChangeError> {
    let all = journals(install)?;
    // Every change appends to the logs and most share users.cfg: taking back an older one from
    // its backup would take the later ones' edits with it. Changes are undone newest first.
    let in_effect: Vec<String> = all
        .iter()
        .filter(|j| j.status == Status::Done)
        .map(|j| j.id.clone())
        .collect();
    let journal = match which {
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
            .find(|j| matches!(j.status, Status::Done | Status::Applying | Status::Undoing))
            .ok_or_else(|| ChangeError::NothingToUndo {
                dir: journal_dir(install),
            })?,
    };
    if let (Status::Undone, Some(when)) = (journal.status, &journal.undone) {
        return Err(ChangeError::AlreadyUndone {
            id: journal.id,
            when: when.to_string(),
        });
    }
    if journal.status == Status::RolledBack {
        return Err(ChangeError::AlreadyUndone {
            id: journal.id,
            when: "its own failure (it was rolled back)".into(),
        });
    }
    if let Some(later) = in_effect.iter().rfind(|id| **id > journal.id) {
        return Err(ChangeError::LaterChange {
            id: journal.id,
            later: later.clone(),
        });
    }
    Ok(journal)
}

/// Takes a change back from its pre-change backup: the named one, or (`None`) the newest one not
/// yet undone. Goes through the guard and the lock, and is journalled.
pub fn undo(
    cx: &Context<'_>,
    which: Option<&str>,
    options: UndoOptions,
) -> Result<Undone, ChangeError> {
    let Context {
        install,
        backup_dir,
        pid_file,
        progress,
    } = *cx;
    let lock = guard::acquire(&install.root, pid_file, "kc-backup")?;
    let mut journal = undo_target(install, which)?;
    let backup = archive::find(backup_dir, &journal.backup)?;
    check_backup_of(&journal, &backup)?;
    for a in &journal.appended {
        place(install, &a.path)?;
    }
    let mut warnings = Vec::new();
    if journal.status == Status::Undoing {
        // An undo (or rollback) that was interrupted: finish it.
        warnings.extend(undo::finish_swap(install, &mut journal)?);
    } else {
        if journal.status == Status::Done {
            let edited = undo::edited_since(install, &journal)?;
            if !edited.is_empty() && !options.force {
                return Err(ChangeError::EditedSince {
                    id: journal.id,
                    paths: edited,
                });
            }
            if !edited.is_empty() {
                journal.undo_backup =
                    Some(backup_current(install, &journal, backup_dir, progress)?);
            }
        }
        let logs = undo::log_paths(&journal.steps);
        let done = journal.status == Status::Done;
        // A finished change has its log lines cut out; an interrupted one gets its logs back.
        let paths: Vec<PathBuf> = journal
            .touched
            .iter()
            .filter(|p| !(done && logs.contains(p)))
            .cloned()
            .collect();
        let mut staged =
            undo::stage(install, &journal, &backup, &paths, progress).map_err(|e| {
                ChangeError::UndoNotStarted {
                    id: journal.id.clone(),
                    source: Box::new(e),
                }
            })?;
        staged.splice_logs = done;
        warnings.extend(undo::swap(install, &mut journal, staged)?);
    }
    journal.status = Status::Undone;
    journal.undone = Some(jiff::Timestamp::now());
    finish(install, &journal)?;
    Ok(Undone {
        change: journal.id,
        tool: journal.tool,
        description: journal.description,
        backup: backup.meta.id,
        paths: journal.touched.len(),
        replaced_backup: journal.undo_backup,
        warnings,
        other_servers: notes(&lock),
    })
}

/// The paths a change touched that no longer hold what it left (for `undo -n`).
pub fn edited_since(install: &Install, journal: &Journal) -> Result<Vec<String>, ChangeError> {
    if journal.status != Status::Done {
        return Ok(Vec::new());
    }
    undo::edited_since(install, journal)
}

/// Refuses a journal whose `backup` is not its own pre-change backup (edited to name another):
/// every file a step replaced must be in the backup with the bytes the plan read.
fn check_backup_of(journal: &Journal, backup: &Backup) -> Result<(), ChangeError> {
    let bad = |why: String| ChangeError::BadJournal(format!("change {}: {why}", journal.id));
    if backup.meta.kind != Kind::PreChange {
        return Err(bad(format!(
            "{} is not a pre-change backup",
            backup.meta.id
        )));
    }
    let expected: Vec<(&Path, &str)> = journal
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::WriteFile {
                path,
                expect: Expect::Sha256(h),
                ..
            } => Some((path.as_path(), h.as_str())),
            _ => None,
        })
        .collect();
    if expected.is_empty() {
        return Ok(());
    }
    let manifest: std::collections::HashMap<Vec<u8>, String> = backup
        .manifest()?
        .into_iter()
        .map(|(h, p)| (p, h))
        .collect();
    for (path, want) in expected {
        if manifest
            .get(path.as_os_str().as_bytes())
            .map(String::as_str)
            != Some(want)
        {
            return Err(bad(format!(
                "backup {} does not hold {} as the change read it",
                backup.meta.id,
                path.display()
            )));
        }
    }
    Ok(())
}

/// A pre-change backup of what a forced undo is about to replace.
fn backup_current(
    install: &Install,
    journal: &Journal,
    backup_dir: &Path,
    progress: &dyn Progress,
) -> Result<String, ChangeError> {
    Ok(
        pre_change_backup(install, &journal.touched, backup_dir, progress)?
            .meta
            .id,
    )
}

/// `text` with every control character (C0, DEL, C1) written as `\u{…}`.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, |_| false)
}

/// [`printable`], keeping line breaks and tabs: for messages of many lines.
pub fn printable_lines(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, |c| c == '\n' || c == '\t')
}

/// Problems of a refusal, one a line, each with its control characters escaped: a name holding
/// a line break cannot make a refusal print a line of its own.
pub fn problem_lines(problems: &[impl std::fmt::Display]) -> String {
    problems
        .iter()
        .map(|p| printable(&p.to_string()).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Characters that change how text after them is shown without being control characters: the
/// line and paragraph separators, the bidirectional overrides and isolates (a name could turn
/// `…exe.txt` into `…txt.exe` on screen), zero-width characters and the byte order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn escape_controls(text: &str, keep: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| (c.is_control() || is_invisible_format(c)) && !keep(c);
    if !text.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if escaped(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_refusals_show_their_control_characters_escaped() {
        let err = ChangeError::ChangedSincePlan {
            paths: vec!["store/a\nb".into(), "users.cfg".into()],
        };
        assert_eq!(
            err.to_string(),
            "store/a\\u{a}b, users.cfg changed since the plan was made (another program wrote it); nothing was changed, run the tool again"
        );
        let err = ChangeError::EditedSince {
            id: "C1".into(),
            paths: vec!["x\ty (changed)".into()],
        };
        assert!(
            err.to_string()
                .contains("as it is: x\\u{9}y (changed) since"),
            "{err}"
        );
    }

    fn plan(steps: Vec<Step>) -> Plan {
        Plan {
            tool: "kc-test".into(),
            description: "test".into(),
            steps,
            warnings: vec![],
        }
    }

    #[test]
    fn journals_of_the_one_line_form_still_read() {
        let old = r#"{"step":"append-line","path":"store/logs/config.log","line":"a\nb"}"#;
        let step: Step = serde_json::from_str(old).expect("the old form reads");
        let path = PathBuf::from("store/logs/config.log");
        let lines = vec!["a\nb".to_owned()];
        assert_eq!(step, Step::AppendLines { path, lines });
        let new = serde_json::to_string(&step).expect("serialises");
        assert_eq!(
            new,
            r#"{"step":"append-lines","path":"store/logs/config.log","lines":["a\nb"]}"#
        );
        assert_eq!(
            serde_json::from_str::<Step>(&new).expect("reads back"),
            step
        );
    }

    #[test]
    fn a_path_with_an_escape_is_printed_escaped() {
        let plan = plan(vec![Step::RemoveDir {
            path: "store/mail/d/evil\u{1b}]0;owned\u{7}".into(),
        }]);
        assert_eq!(
            plan.lines(DryRun::Enabled),
            ["WOULD remove store/mail/d/evil\\u{1b}]0;owned\\u{7}"]
        );
    }

    #[test]
    fn moved_files_are_backed_up_at_both_ends_and_listed_one_a_line() {
        let moves = |n: usize| Step::MoveFiles {
            moves: (0..n)
                .map(|i| FileMove {
                    from: format!("store/mail/d/u/F{i}/index.fld").into(),
                    to: format!("store/mail/d/u/F{i}/index.bad").into(),
                })
                .collect(),
        };
        let two = plan(vec![moves(2)]);
        assert_eq!(
            two.touched(),
            [
                PathBuf::from("store/mail/d/u/F0/index.bad"),
                PathBuf::from("store/mail/d/u/F0/index.fld"),
                PathBuf::from("store/mail/d/u/F1/index.bad"),
                PathBuf::from("store/mail/d/u/F1/index.fld"),
            ]
        );
        assert_eq!(
            two.lines(DryRun::Enabled),
            [
                "WOULD move 2 files aside:",
                "  store/mail/d/u/F0/index.fld -> store/mail/d/u/F0/index.bad",
                "  store/mail/d/u/F1/index.fld -> store/mail/d/u/F1/index.bad",
            ]
        );
        assert_eq!(
            plan(vec![moves(1)]).lines(DryRun::Disabled),
            ["move store/mail/d/u/F0/index.fld -> store/mail/d/u/F0/index.bad"]
        );
        let json = serde_json::to_string(&moves(1)).expect("serialises");
        assert_eq!(
            json,
            r#"{"step":"move-files","moves":[{"from":"store/mail/d/u/F0/index.fld","to":"store/mail/d/u/F0/index.bad"}]}"#
        );
        assert_eq!(
            serde_json::from_str::<Step>(&json).expect("parses"),
            moves(1)
        );
    }

    #[test]
    fn renames_are_not_backed_up_and_nothing_may_change_inside_them_afterwards() {
        let rename = Step::Rename {
            from: "store/mail/d/a".into(),
            to: "store/mail/d/b".into(),
        };
        let inside_old = Step::create_file("store/mail/d/a/INBOX/status.fld", b"x".to_vec());
        let log = Step::AppendLines {
            path: "store/logs/config.log".into(),
            lines: vec!["l".into()],
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
            Step::create_file("store/mail/d/b/INBOX/status.fld", b"x".to_vec()),
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
