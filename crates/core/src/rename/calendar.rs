//! The calendar items of a rename: events and invitations that still name the old address as
//! `ORGANIZER` or `ATTENDEE` cannot be edited or deleted once the account is renamed (the
//! vendor's rename article says so), so a rename rewrites those addresses
//! ([`crate::store::ical`]) in the store, as part of its one change.
//!
//! Where it looks, so that the cost follows the calendar items and not the store's bytes:
//! - every message of the renamed accounts' own mailboxes that has a `text/calendar` part;
//! - in every other mailbox and in the public folders, only the messages that a folder's
//!   `index.fld` lists with a calendar class ([`crate::store::index_fld::is_calendar_class`]):
//!   folders whose index lists none cost one read of the index.
//!
//! Each changed message is one atomic [`Step::WriteFile`] of the pre-change backup, expecting
//! the bytes it was planned from; its folder's `index.fld` and `search.fld` are moved aside as
//! `kc-store reindex` does ([`crate::reindex::aside_moves`]), since the messages' sizes change.
//! A calendar item that cannot be read for certain is left as it is and named in a warning.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::account::AccountError;
use crate::change::{Expect, FileMove, Step};
use crate::install::Install;
use crate::store::{self, INDEX_FLD, MESSAGES_DIR, ical, index_fld, scope};

/// What a rename does to calendar items.
#[derive(Debug, Default)]
pub(super) struct Calendars {
    /// Changed messages: path relative to the root, new bytes, what the file holds now.
    writes: Vec<(PathBuf, Vec<u8>, Expect)>,
    moves: Vec<FileMove>,
    /// One audit line a folder.
    pub audit: Vec<String>,
    pub warnings: Vec<String>,
    /// Messages changed, and addresses changed in them.
    pub messages: usize,
    pub values: usize,
}

impl Calendars {
    /// The steps: the messages' writes, then the indexes moved aside.
    pub fn steps(&mut self) -> Vec<Step> {
        let mut out: Vec<Step> = std::mem::take(&mut self.writes)
            .into_iter()
            .map(|(path, bytes, read)| Step::write_file(path, bytes, read))
            .collect();
        if !self.moves.is_empty() {
            out.push(Step::MoveFiles {
                moves: std::mem::take(&mut self.moves),
            });
        }
        out
    }
}

/// One folder's changed messages and its warnings.
#[derive(Debug, Default)]
struct FolderResult {
    dir: PathBuf,
    writes: Vec<(PathBuf, Vec<u8>, Expect)>,
    values: usize,
    warnings: Vec<String>,
}

/// Which messages of a mailbox (or server folder) are read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scan {
    /// Every message (a renamed account's own mailbox).
    All,
    /// Those that each of these `index.fld` files lists with a calendar class.
    Indexed(Vec<PathBuf>),
}

/// Plans the rewrite of calendar items for the renames `new_of` answers (old address, any
/// case, to new). `listed` are the mailboxes and server folders with the `index.fld` files
/// under each (from the walk of the share files), `own` the renamed accounts' mailbox
/// directories, relative to the root. With `enabled` false (`--no-calendars`), nothing.
pub(super) fn plan(
    install: &Install,
    enabled: bool,
    listed: crate::account::Listed,
    own: &[PathBuf],
    new_of: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Calendars, AccountError> {
    let mut out = Calendars::default();
    if !enabled {
        return Ok(out);
    }
    let mail = install.mail_dir();
    let own: Vec<PathBuf> = own.iter().map(|p| install.resolve(p)).collect();
    let tops: Vec<(PathBuf, Scan)> = listed
        .into_iter()
        .map(|(top, indexes)| {
            if own.contains(&top) {
                (top, Scan::All)
            } else {
                (top, Scan::Indexed(indexes))
            }
        })
        .collect();
    let folders: Vec<FolderResult> = tops
        .par_iter()
        .map(|(top, scan)| folders_of(install, top, scan, new_of))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    for folder in folders {
        out.warnings.extend(folder.warnings);
        if folder.writes.is_empty() {
            continue;
        }
        let name = folder
            .dir
            .strip_prefix(&mail)
            .unwrap_or(&folder.dir)
            .display()
            .to_string();
        let n = folder.writes.len();
        let mut moved = Vec::new();
        for (what, m) in crate::reindex::aside_moves(install, &folder.dir, &name, &mut out.warnings)
        {
            moved.push(what);
            out.moves.push(m);
        }
        out.audit.push(format!(
            "Rewrite calendar items (ORGANIZER/ATTENDEE) in folder '{name}': {n} message{}, {} address{}; {} (the server rebuilds them from {MESSAGES_DIR})",
            if n == 1 { "" } else { "s" },
            folder.values,
            if folder.values == 1 { "" } else { "es" },
            if moved.is_empty() {
                "no index to move aside".to_owned()
            } else {
                moved.join(", ")
            }
        ));
        out.messages += n;
        out.values += folder.values;
        out.writes.extend(folder.writes);
    }
    Ok(out)
}

/// The folders under one mailbox (or server folder) `top`, each with its changed messages.
/// A folder whose `index.fld` lists no calendar item costs the read of that index.
fn folders_of(
    install: &Install,
    top: &Path,
    scan: &Scan,
    new_of: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Vec<FolderResult>, AccountError> {
    let dirs: Vec<PathBuf> = match scan {
        Scan::Indexed(indexes) => {
            let mut dirs: Vec<PathBuf> = (indexes.iter())
                .filter_map(|index| index.parent().map(Path::to_path_buf))
                .collect();
            dirs.sort();
            dirs.dedup();
            dirs
        }
        Scan::All => {
            let (dirs, errors) = scope::directories(top);
            if let Some((path, source)) = errors.into_iter().next() {
                return Err(AccountError::Io { path, source });
            }
            dirs.into_iter()
                .filter(|d| d.holds.messages)
                .map(|d| d.path)
                .collect()
        }
    };
    let mut out = Vec::new();
    for dir in dirs {
        let mut folder = FolderResult {
            dir,
            ..FolderResult::default()
        };
        let messages = match scan {
            Scan::All => all_messages(&folder.dir),
            Scan::Indexed(_) => calendar_messages(&folder.dir),
        };
        match messages {
            Ok(files) => {
                for file in files {
                    rewrite_one(install, &file, new_of, &mut folder);
                }
            }
            Err(e) => folder.warnings.push(format!(
                "{}: cannot be read ({e}); its calendar items are left as they are",
                folder.dir.display()
            )),
        }
        if !folder.writes.is_empty() || !folder.warnings.is_empty() {
            out.push(folder);
        }
    }
    Ok(out)
}

/// Every message file of a folder, sorted.
fn all_messages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let msgs = dir.join(MESSAGES_DIR);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&msgs)? {
        let entry = entry?;
        if index_fld::message_number(&entry.file_name()).is_some() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The message files a folder's `index.fld` lists with a calendar class, in index order. A
/// folder whose index an earlier change of this window moved aside (a rename, a reindex; the
/// server has not rebuilt it yet) is read from the newest `index.bad`: the same items.
fn calendar_messages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let index = match store::read_regular(&dir.join(INDEX_FLD), 1 << 30) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match crate::reindex::newest_aside(dir)? {
                Some(aside) => store::read_regular(&aside, 1 << 30)?,
                None => return Err(e),
            }
        }
        read => read?,
    };
    let mut out = Vec::new();
    for line in index.split(|&b| b == b'\n') {
        if !index_fld::class(line).is_some_and(index_fld::is_calendar_class) {
            continue;
        }
        // A line the codec cannot read names no file; the check reports it.
        if let Ok(Some(record)) = index_fld::parse_line(line) {
            out.push(
                dir.join(MESSAGES_DIR)
                    .join(index_fld::message_file_name(record.uid)),
            );
        }
    }
    Ok(out)
}

/// Reads one message and, when it names a renamed address, adds its rewrite to `folder`; what
/// cannot be read or parsed is left as it is, with a warning.
fn rewrite_one(
    install: &Install,
    file: &Path,
    new_of: &(dyn Fn(&str) -> Option<String> + Sync),
    folder: &mut FolderResult,
) {
    let logical = install.logical(file).unwrap_or_else(|| file.to_path_buf());
    if file
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        folder.warnings.push(format!(
            "{}: is a symbolic link; a calendar item behind it is left as it is (nothing is written through a link)",
            logical.display()
        ));
        return;
    }
    let bytes = match store::read_regular(file, u64::MAX) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            folder.warnings.push(format!(
                "{}: listed as a calendar item in {INDEX_FLD} but not there; nothing to rewrite",
                logical.display()
            ));
            return;
        }
        Err(e) => {
            folder.warnings.push(format!(
                "{}: cannot be read ({e}); a calendar item in it is left as it is",
                logical.display()
            ));
            return;
        }
    };
    if !ical::may_hold_calendar(&bytes) {
        return;
    }
    match ical::rewrite_addresses(&bytes, new_of) {
        Ok(None) => {}
        Ok(Some(new)) => {
            folder.values += new.values;
            folder
                .writes
                .push((logical, new.bytes, Expect::read(&bytes)));
        }
        Err(why) => folder.warnings.push(format!(
            "{}: a calendar item that cannot be read for certain ({why}); left as it is: look at its ORGANIZER and ATTENDEE by hand",
            logical.display()
        )),
    }
}
