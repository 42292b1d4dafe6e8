//! The store tree: domains, mailboxes and folders, walked in parallel.
//!
//! `store/mail/<domain>/<user>/` is a mailbox; names starting with `#` (`#public`, `#archive`, …)
//! are server folders, never mailboxes (KERIO-FORMAT.md §3); directly under `store/mail` such a
//! name (`mail/#public`, the public folders of all domains) is the server's, never a domain.
//! Inside a mailbox a folder is a
//! directory holding `#msgs/` (its messages) and the folder-level files (`index.fld`,
//! `status.fld`, …). Names are kept as `OsString`: a folder whose name is not UTF-8 must survive
//! every tool unchanged.

pub mod folder_map;
pub mod ical;
pub mod index_fld;
pub mod scope;
pub mod status_fld;
pub mod sub_fld;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;

use crate::progress::{Progress, Unit};

/// A folder's messages live here, one `NNNNNNNN.eml` each.
pub const MESSAGES_DIR: &str = "#msgs";
/// A folder's associated (hidden) items.
pub const ASSOC_DIR: &str = "#assoc";
/// A mailbox's shared-folder subscriptions.
pub const FOLDER_MAP: &str = "folder.map";
/// A folder's status, whose trailing tokens are its ACL.
pub const STATUS_FLD: &str = "status.fld";
/// A folder's message index (KERIO-FORMAT.md §3).
pub const INDEX_FLD: &str = "index.fld";
/// The public folders' permissions, in a `#public` directory (see [`crate::config::schema::PUBLIC_ACL`]).
pub const ACL_FLD: &str = crate::config::schema::PUBLIC_ACL.file;
/// A mailbox's folder subscriptions (see [`crate::config::schema::SUBSCRIPTIONS`]).
pub const SUB_FLD: &str = crate::config::schema::SUBSCRIPTIONS.file;
/// Public folders: `mail/#public` (the server's) or `mail/<domain>/#public` (a domain's).
pub const PUBLIC_DIR: &str = "#public";
/// The folders every mailbox has (KERIO-FORMAT.md §3 [T/C]): the server recreates their
/// `status.fld` when it is missing, and hides any other folder without one [C].
pub const STANDARD_FOLDERS: [&str; 9] = [
    "INBOX",
    "Sent Items",
    "Deleted Items",
    "Drafts",
    "Junk E-mail",
    "Calendar",
    "Contacts",
    "Tasks",
    "Notes",
];
/// The folder the server makes under the target when a removed user's mailbox is moved there
/// (KERIO-FORMAT.md §3 [C]); the address follows.
pub const DELETED_MAILBOX_PREFIX: &str = "Deleted mailbox \u{2014} ";

/// What can go wrong walking the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A directory of `store/mail`: a domain's mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainDir {
    /// The directory's name: the domain, as the store spells it.
    pub name: OsString,
    /// The directory.
    pub path: PathBuf,
}

/// A mailbox directory: `store/mail/<domain>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxDir {
    /// The domain directory's name.
    pub domain: OsString,
    /// The directory's name: the user name, as the store spells it.
    pub name: OsString,
    /// The directory.
    pub path: PathBuf,
}

/// What a mailbox holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MailboxStats {
    /// Apparent size of every file in it, in bytes (as `du -sb`).
    pub bytes: u64,
    /// Files in it, at any depth.
    pub files: u64,
    /// `.eml` files in `#msgs` directories.
    pub messages: u64,
    /// When the newest message arrived: the largest `D` (delivery) time of the folders'
    /// `index.fld`, or, in a folder without one, the newest `Date:` header of its messages.
    /// Never a file's modification time, which a copy (`cp -r`) resets.
    #[serde(skip)]
    pub newest: Option<SystemTime>,
}

/// Server folders: `#public`, `#archive`, … — never a mailbox.
pub fn is_server_folder(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'#')
}

/// Compares a directory name with an account name as the server does: case-insensitively.
pub fn name_matches(dir: &OsStr, account: &str) -> bool {
    dir.to_str()
        .is_some_and(|d| d.eq_ignore_ascii_case(account))
}

/// The subdirectories of `dir`, sorted by name; `None` when `dir` does not exist.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<(OsString, PathBuf)>, StoreError> {
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let file_type = entry.file_type().map_err(io(&entry.path()))?;
        if file_type.is_dir() {
            out.push((entry.file_name(), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The domain directories of `store/mail`. A `#`-name directly under `mail` (`mail/#public`,
/// the public folders shared by all domains) is the server's, never a domain: see
/// [`server_dirs`].
pub fn domains(mail_dir: &Path) -> Result<Vec<DomainDir>, StoreError> {
    Ok(subdirs(mail_dir)?
        .into_iter()
        .filter(|(name, _)| !is_server_folder(name))
        .map(|(name, path)| DomainDir { name, path })
        .collect())
}

/// The server's directories directly under `store/mail` (`#public`, …), sorted.
pub fn server_dirs(mail_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    Ok(subdirs(mail_dir)?
        .into_iter()
        .filter(|(name, _)| is_server_folder(name))
        .map(|(_, path)| path)
        .collect())
}

/// The mailboxes of a domain directory, server folders left out.
pub fn mailboxes(domain: &DomainDir) -> Result<Vec<MailboxDir>, StoreError> {
    Ok(subdirs(&domain.path)?
        .into_iter()
        .filter(|(name, _)| !is_server_folder(name))
        .map(|(name, path)| MailboxDir {
            domain: domain.name.clone(),
            name,
            path,
        })
        .collect())
}

/// Every mailbox of every domain.
pub fn all_mailboxes(mail_dir: &Path) -> Result<Vec<MailboxDir>, StoreError> {
    let mut out = Vec::new();
    for domain in domains(mail_dir)? {
        out.extend(mailboxes(&domain)?);
    }
    Ok(out)
}

/// The folders of a mailbox (or of `#public`), as paths relative to it, nested ones included,
/// sorted. `#msgs` and `#assoc` are a folder's insides, not folders.
pub fn folders(mailbox: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(mailbox)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !is_folder_inside(e.file_name()));
    for entry in walker {
        let entry = entry.map_err(|e| walk_error(mailbox, e))?;
        if entry.file_type().is_dir() {
            let rel = entry
                .path()
                .strip_prefix(mailbox)
                .expect("walkdir yields paths under its root");
            out.push(rel.to_path_buf());
        }
    }
    Ok(out)
}

pub(crate) fn is_folder_inside(name: &OsStr) -> bool {
    name == MESSAGES_DIR || name == ASSOC_DIR
}

fn walk_error(root: &Path, e: walkdir::Error) -> StoreError {
    let path = e.path().unwrap_or(root).to_owned();
    let source = e
        .into_io_error()
        .unwrap_or_else(|| std::io::Error::other("filesystem loop"));
    StoreError::Io { path, source }
}

/// Files called one of `names` at folder level anywhere under `root` (`#msgs` and `#assoc` are
/// not entered, so the cost follows the number of folders, not of messages), sorted.
pub fn folder_level_files(root: &Path, names: &[&str]) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !is_folder_inside(e.file_name()));
    for entry in walker {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        if entry.file_type().is_file() && names.iter().any(|n| entry.file_name() == OsStr::new(n)) {
            out.push(entry.into_path());
        }
    }
    Ok(out)
}

/// Reads a file only if it is a regular one (a FIFO would block, `/dev/zero` never end), and at
/// most `limit` bytes of it. Opened without blocking, then checked on the handle itself.
pub fn read_regular(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    // Sized from the start (one byte more, to see the end): one read for a small file rather
    // than a probe and a few growths, which shows over thousands of calendar items.
    let size = usize::try_from(meta.len().min(limit)).unwrap_or(0);
    let mut out = Vec::with_capacity(size.saturating_add(1));
    file.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// The largest index a folder may have to be read for dates: 64 MiB (a million messages).
const INDEX_LIMIT: u64 = 64 << 20;

/// A message date that can be believed: after 1990 and not in the future (a day of clock skew
/// allowed). A sender writes its own `Date:`; a year-2099 one must not make a mailbox look new.
fn plausible(t: SystemTime) -> Option<SystemTime> {
    let earliest = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(631_152_000);
    let latest = SystemTime::now() + std::time::Duration::from_secs(86_400);
    (earliest..=latest).contains(&t).then_some(t)
}

/// The newest delivery time `index.fld` records (its `D` fields, hex seconds since the epoch:
/// KERIO-FORMAT.md §3, [T]); `None` for a missing, unreadable or empty index.
fn index_newest(folder: &Path) -> Option<SystemTime> {
    let text = read_regular(&folder.join(INDEX_FLD), INDEX_LIMIT).ok()?;
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            line.split(|&b| b == b' ')
                .find_map(|token| token.strip_prefix(b"D"))
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u64::from_str_radix(hex.trim_end(), 16).ok())
                .and_then(|secs| {
                    SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))
                })
                .and_then(plausible)
        })
        .max()
}

/// The `Date:` header of a message (RFC 5322), read from its first 16 KiB; `None` without one
/// that parses.
fn header_date(message: &Path) -> Option<SystemTime> {
    let head = read_regular(message, 16 << 10).ok()?;
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return None; // the end of the header
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.eq_ignore_ascii_case("date") {
            continue;
        }
        // Folded onto the next lines.
        let mut value = value.trim().to_owned();
        for more in lines.by_ref() {
            if !more.starts_with([' ', '\t']) {
                break;
            }
            value.push(' ');
            value.push_str(more.trim());
        }
        let ts = jiff::fmt::rfc2822::DateTimeParser::new()
            .parse_timestamp(&value)
            .ok()?;
        return plausible(SystemTime::from(ts));
    }
    None
}

/// Sizes and counts of one mailbox (or any directory of the store).
pub fn mailbox_stats(dir: &Path) -> Result<MailboxStats, StoreError> {
    let mut stats = MailboxStats::default();
    // Folders whose index.fld gave their newest message: their messages are not opened.
    let mut indexed = std::collections::HashSet::new();
    let look_at = |folder: &Path,
                   stats: &mut MailboxStats,
                   indexed: &mut std::collections::HashSet<PathBuf>| {
        if let Some(t) = index_newest(folder) {
            stats.newest = stats.newest.max(Some(t));
            indexed.insert(folder.to_path_buf());
        }
    };
    look_at(dir, &mut stats, &mut indexed);
    for entry in walkdir::WalkDir::new(dir).min_depth(1) {
        let entry = entry.map_err(|e| walk_error(dir, e))?;
        if entry.file_type().is_dir() {
            if !is_folder_inside(entry.file_name()) {
                look_at(entry.path(), &mut stats, &mut indexed);
            }
            continue;
        }
        if !entry.file_type().is_file() {
            continue;
        }
        let meta = entry.metadata().map_err(|e| walk_error(dir, e))?;
        stats.bytes += meta.len();
        stats.files += 1;
        let in_msgs = entry
            .path()
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|p| p == MESSAGES_DIR);
        if in_msgs && entry.path().extension().is_some_and(|e| e == "eml") {
            stats.messages += 1;
            let folder = entry.path().parent().and_then(Path::parent);
            if !folder.is_some_and(|f| indexed.contains(f)) {
                stats.newest = stats.newest.max(header_date(entry.path()));
            }
        }
    }
    Ok(stats)
}

/// [`mailbox_stats`] of many directories on all cores, in the order given. A directory that
/// cannot be read gets its error; the others are still measured.
pub fn stats_of_all(
    dirs: &[&Path],
    progress: &dyn Progress,
) -> Vec<Result<MailboxStats, StoreError>> {
    progress.start("measuring mailboxes", Some(dirs.len() as u64), Unit::Items);
    let out = dirs
        .par_iter()
        .map(|dir| {
            let stats = mailbox_stats(dir);
            progress.advance(1);
            stats
        })
        .collect();
    progress.finish();
    out
}

#[cfg(test)]
mod tests;
