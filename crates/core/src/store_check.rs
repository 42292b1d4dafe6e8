//! The store's consistency, offline (`kc-store check`): for every folder of the selected
//! mailboxes and public folders, `index.fld` against `#msgs` (records without a file, files
//! without a record, sizes that differ from the record's), a missing or unreadable `status.fld`,
//! `index.fld` or message, and the accounts named by `status.fld` ACLs, `acl.fld`, `sub.fld` and
//! `folder.map` that users.cfg does not have.
//!
//! It only reads. Folders are checked in parallel, each on its own: memory holds the folder
//! list and one folder's index per worker, never the store's messages. A message is `stat`ed
//! once (as `du` does) and opened only when its mode says this process may not read it. A file
//! or directory that cannot be read is a finding, and the run goes on.
//!
//! What the comparison assumes of the server's files is in the schema table
//! ([`crate::config::schema::INDEX`]): a record's `U` field names `#msgs/<U>.eml` [T], its `S`
//! field is the file's size [A].

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rayon::prelude::*;

use crate::account::{NameKey, name_key};
use crate::config::schema::INDEX;
use crate::config::{Config, ConfigError};
use crate::model::Model;
use crate::progress::{Progress, Unit};
use crate::store::folder_map::FolderMap;
use crate::store::index_fld::{self, Record};
use crate::store::scope::{self, Directory, Place, PlaceKind, ScopeError, Selection};
use crate::store::status_fld::StatusFld;
use crate::store::sub_fld::SubFld;
use crate::store::{ACL_FLD, FOLDER_MAP, MESSAGES_DIR, STANDARD_FOLDERS, STATUS_FLD, SUB_FLD};

/// The binary's name: the actor of its audit lines.
pub const TOOL: &str = "kc-store";

/// What is wrong. The order is the table's.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An `index.fld` record whose message file is not in `#msgs`.
    RecordWithoutFile,
    /// A message file in `#msgs` that no record names.
    FileWithoutRecord,
    /// A message file whose size is not its record's `S` field.
    SizeMismatch,
    /// Two records naming one file.
    DuplicateRecord,
    /// An `index.fld` line that is not a record.
    BadIndexLine,
    /// A folder with messages and no `index.fld`.
    MissingIndex,
    /// A folder with no `status.fld`.
    MissingStatus,
    /// A file or directory that cannot be read.
    Unreadable,
    /// A `folder.map` that is not XML.
    MalformedFile,
    /// A `status.fld` or `acl.fld` entry granting rights to an account that does not exist.
    AclUnknownAccount,
    /// A `sub.fld` subscription to a folder of an account that does not exist.
    SubscriptionUnknownAccount,
    /// A `folder.map` entry for a folder of an account that does not exist.
    FolderMapUnknownAccount,
}

impl Kind {
    /// Every kind, in the order reports count them.
    pub const ALL: [Kind; 12] = [
        Kind::RecordWithoutFile,
        Kind::FileWithoutRecord,
        Kind::SizeMismatch,
        Kind::DuplicateRecord,
        Kind::BadIndexLine,
        Kind::MissingIndex,
        Kind::MissingStatus,
        Kind::Unreadable,
        Kind::MalformedFile,
        Kind::AclUnknownAccount,
        Kind::SubscriptionUnknownAccount,
        Kind::FolderMapUnknownAccount,
    ];

    /// The kind's name in reports and on the command line (`record-without-file`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RecordWithoutFile => "record-without-file",
            Kind::FileWithoutRecord => "file-without-record",
            Kind::SizeMismatch => "size-mismatch",
            Kind::DuplicateRecord => "duplicate-record",
            Kind::BadIndexLine => "bad-index-line",
            Kind::MissingIndex => "missing-index",
            Kind::MissingStatus => "missing-status",
            Kind::Unreadable => "unreadable",
            Kind::MalformedFile => "malformed-file",
            Kind::AclUnknownAccount => "acl-unknown-account",
            Kind::SubscriptionUnknownAccount => "subscription-unknown-account",
            Kind::FolderMapUnknownAccount => "folder-map-unknown-account",
        }
    }

    /// The kind [`Kind::as_str`] names `text`, if any.
    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether the server's rebuild of the folder's index (what `kc-store reindex` asks for)
    /// answers it: the index disagrees with `#msgs`, or is missing.
    pub fn reindex_fixes(self) -> bool {
        matches!(
            self,
            Kind::RecordWithoutFile
                | Kind::FileWithoutRecord
                | Kind::SizeMismatch
                | Kind::DuplicateRecord
                | Kind::BadIndexLine
                | Kind::MissingIndex
        )
    }
}

/// One finding: exactly the fields of the JSON Lines and CSV output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// What is wrong.
    pub kind: Kind,
    /// The domain directory; empty for the server's own `mail/#public`.
    pub domain: String,
    /// The mailbox directory, or the `#`-name (`#public`, `#archive`).
    pub user: String,
    /// The folder, relative to the mailbox (`INBOX/Projects`); empty for a mailbox's own files
    /// (`sub.fld`, `folder.map`) and a public tree's `acl.fld`.
    pub folder: String,
    /// The file (or directory) concerned, absolute.
    pub path: String,
    /// The particulars, for a reader: the record, the sizes, the address, the error.
    pub detail: String,
}

/// What a check found, and what it covered.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Sorted by domain, user, folder, kind, path.
    pub findings: Vec<Finding>,
    /// Mailboxes and public-folder trees.
    pub places: usize,
    /// Folders checked.
    pub folders: u64,
    /// Message files seen.
    pub messages: u64,
}

impl Report {
    /// How many findings of each kind, in the kinds' order, kinds without any left out.
    pub fn counts(&self) -> Vec<(Kind, usize)> {
        let mut counts: HashMap<Kind, usize> = HashMap::new();
        for f in &self.findings {
            *counts.entry(f.kind).or_default() += 1;
        }
        Kind::ALL
            .into_iter()
            .filter_map(|k| counts.get(&k).map(|n| (k, *n)))
            .collect()
    }
}

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The config files, which name the accounts references are checked against, could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--domain`/`--user` select nothing that is in the store.
    #[error(transparent)]
    Scope(#[from] ScopeError),
}

/// The accounts references may name: users and groups (a folder may be shared with a group),
/// by domain; a domain mapped from a directory service cannot be checked offline.
#[derive(Debug, Default)]
struct Accounts {
    known: HashSet<NameKey>,
    /// Domain (lower case) → mapped from a directory service.
    domains: HashMap<String, bool>,
}

impl Accounts {
    fn new(config: &Config) -> Accounts {
        let mut a = Accounts::default();
        for u in config.users() {
            a.known.insert(name_key(u.name(), u.domain()));
        }
        for g in config.groups() {
            a.known.insert(name_key(g.name(), g.domain()));
        }
        for d in config.domains() {
            a.domains.insert(d.name().to_ascii_lowercase(), d.mapped());
        }
        a
    }

    /// Why `address` names no account; `None` when it does, or cannot be told (a mapped
    /// domain's, or not an address).
    fn unknown(&self, address: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(address).ok()?;
        let (name, domain) = text.rsplit_once('@')?;
        if name.is_empty() || domain.is_empty() {
            return None;
        }
        match self.domains.get(&domain.to_ascii_lowercase()) {
            None => Some(format!("{text}: no domain {domain} in mailserver.cfg")),
            Some(true) => None,
            Some(false) => (!self.known.contains(&name_key(name, domain)))
                .then(|| format!("{text}: no such user or group in users.cfg")),
        }
    }
}

/// This process's effective user and group, to tell from a file's mode whether it may read it
/// (`/proc/self` belongs to them on Linux). `None` elsewhere: every message is then opened.
#[derive(Debug, Clone, Copy)]
struct Me {
    uid: u32,
    gid: u32,
}

fn me() -> Option<Me> {
    std::fs::metadata("/proc/self").ok().map(|m| Me {
        uid: m.uid(),
        gid: m.gid(),
    })
}

/// Whether the mode surely lets this process read the file. `false` only means "open it and
/// see": supplementary groups and ACLs are not looked at here.
fn surely_readable(meta: &Metadata, me: Option<Me>) -> bool {
    let Some(me) = me else { return false };
    let mode = meta.mode();
    if me.uid == 0 {
        true
    } else if meta.uid() == me.uid {
        mode & 0o400 != 0
    } else if meta.gid() == me.gid {
        mode & 0o040 != 0
    } else {
        mode & 0o004 != 0
    }
}

/// What one directory gave.
#[derive(Debug, Default)]
struct Checked {
    findings: Vec<Finding>,
    folders: u64,
    messages: u64,
}

/// Writes findings about one directory of one place.
struct At<'a> {
    place: &'a Place,
    folder: String,
    out: Checked,
}

impl At<'_> {
    fn add(&mut self, kind: Kind, path: &Path, detail: String) {
        self.out.findings.push(Finding {
            kind,
            domain: self.place.domain.clone(),
            user: self.place.user.clone(),
            folder: self.folder.clone(),
            path: path.display().to_string(),
            detail,
        });
    }

    fn unreadable(&mut self, path: &Path, e: &std::io::Error) {
        self.add(Kind::Unreadable, path, format!("cannot read it: {e}"));
    }

    /// Reads a folder-level file (a regular one only, at most 256 MiB); an error is a finding.
    fn read(&mut self, path: &Path) -> Option<Vec<u8>> {
        match crate::store::read_regular(path, 256 << 20) {
            Ok(b) => Some(b),
            Err(e) => {
                self.unreadable(path, &e);
                None
            }
        }
    }
}

/// Checks the store (the selected part of it), in parallel.
pub fn check(
    model: &Model<'_>,
    selection: &Selection,
    progress: &dyn Progress,
) -> Result<Report, CheckError> {
    let install = model.install;
    let accounts = Accounts::new(&model.config);
    let places = scope::places(&install.mail_dir(), selection)?;
    progress.start("listing folders", Some(places.len() as u64), Unit::Items);
    let listed: Vec<_> = places
        .par_iter()
        .map(|p| {
            let listed = scope::directories(&p.dir);
            progress.advance(1);
            listed
        })
        .collect();
    progress.finish();
    let mut report = Report {
        places: places.len(),
        ..Report::default()
    };
    let mut jobs: Vec<(&Place, &Directory)> = Vec::new();
    for (place, (dirs, errors)) in places.iter().zip(&listed) {
        for (path, e) in errors {
            let mut at = At {
                place,
                folder: folder_name(path.strip_prefix(&place.dir).unwrap_or(path)),
                out: Checked::default(),
            };
            at.unreadable(path, e);
            report.findings.extend(at.out.findings);
        }
        jobs.extend(dirs.iter().map(|d| (place, d)));
    }
    let me = me();
    progress.start("checking folders", Some(jobs.len() as u64), Unit::Items);
    let checked: Vec<Checked> = jobs
        .par_iter()
        .map(|(place, dir)| {
            let c = check_directory(&accounts, me, place, dir);
            progress.advance(1);
            c
        })
        .collect();
    progress.finish();
    for c in checked {
        report.findings.extend(c.findings);
        report.folders += c.folders;
        report.messages += c.messages;
    }
    report.findings.sort_by(|a, b| {
        (
            a.domain.to_ascii_lowercase(),
            &a.user,
            &a.folder,
            a.kind,
            &a.path,
        )
            .cmp(&(
                b.domain.to_ascii_lowercase(),
                &b.user,
                &b.folder,
                b.kind,
                &b.path,
            ))
    });
    Ok(report)
}

fn folder_name(rel: &Path) -> String {
    rel.to_string_lossy().into_owned()
}

fn check_directory(accounts: &Accounts, me: Option<Me>, place: &Place, dir: &Directory) -> Checked {
    let mut at = At {
        place,
        folder: folder_name(&dir.rel),
        out: Checked::default(),
    };
    share_references(&mut at, accounts, dir);
    if !dir.holds.is_folder() {
        return at.out;
    }
    at.out.folders += 1;
    let index = folder_files(&mut at, accounts, place, dir);
    compare_messages(
        &mut at,
        me,
        &dir.path.join(MESSAGES_DIR),
        dir.holds.messages,
        index,
    );
    at.out
}

/// The accounts named by a directory's `acl.fld`, `sub.fld` and `folder.map` that do not exist.
fn share_references(at: &mut At, accounts: &Accounts, dir: &Directory) {
    let holds = dir.holds;
    if holds.acl_fld {
        let path = dir.path.join(ACL_FLD);
        if let Some(bytes) = at.read(&path) {
            acl_references(at, accounts, &path, bytes);
        }
    }
    if holds.sub_fld {
        let path = dir.path.join(SUB_FLD);
        if let Some(bytes) = at.read(&path) {
            let sub = SubFld::parse(bytes);
            let mut seen = HashSet::new();
            for owner in sub.owners() {
                if seen.insert(owner.to_ascii_lowercase())
                    && let Some(why) = accounts.unknown(owner)
                {
                    let detail = format!("a subscription to a folder of {why}");
                    at.add(Kind::SubscriptionUnknownAccount, &path, detail);
                }
            }
        }
    }
    if holds.folder_map {
        let path = dir.path.join(FOLDER_MAP);
        let Some(bytes) = at.read(&path) else { return };
        let map = match FolderMap::parse(&path, bytes) {
            Err(e) => return at.add(Kind::MalformedFile, &path, e.to_string()),
            Ok(map) => map,
        };
        let mut seen = HashSet::new();
        for e in map.entries() {
            if !e.owner.is_empty()
                && seen.insert(e.owner.to_ascii_lowercase())
                && let Some(why) = accounts.unknown(e.owner.as_bytes())
            {
                let detail = format!("maps folder {:?} of {why}", e.path);
                at.add(Kind::FolderMapUnknownAccount, &path, detail);
            }
        }
    }
}

/// A folder's own files: its `status.fld` (there, and naming accounts that exist) and its
/// `index.fld`, read for comparing with `#msgs`.
fn folder_files(at: &mut At, accounts: &Accounts, place: &Place, dir: &Directory) -> Option<Index> {
    let holds = dir.holds;
    let status = dir.path.join(STATUS_FLD);
    if holds.status {
        if let Some(bytes) = at.read(&status) {
            acl_references(at, accounts, &status, bytes);
        }
    } else {
        let standard = place.kind == PlaceKind::Mailbox
            && STANDARD_FOLDERS.iter().any(|f| dir.rel == Path::new(f));
        let detail = if standard {
            "no status.fld: the server writes a default one for this standard folder"
        } else {
            "no status.fld: the server hides a folder without one, and its messages with it"
        };
        at.add(Kind::MissingStatus, &status, detail.into());
    }
    let index_path = dir.path.join(INDEX.file);
    if holds.index {
        return at
            .read(&index_path)
            .map(|bytes| read_index(at, &index_path, &bytes));
    }
    // A folder with no messages either (a new folder, or one made by moving a mailbox under
    // another) has nothing to index: the server writes its index when it needs one.
    if holds.messages {
        let detail = format!(
            "no {}: the server rebuilds it from {MESSAGES_DIR}",
            INDEX.file
        );
        at.add(Kind::MissingIndex, &index_path, detail);
    }
    None
}

/// The ACL entries of a `status.fld` or an `acl.fld` naming accounts that do not exist.
fn acl_references(at: &mut At, accounts: &Accounts, path: &Path, bytes: Vec<u8>) {
    let parsed = StatusFld::parse(bytes);
    let mut seen = HashSet::new();
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    for entry in parsed.acl() {
        if seen.insert(entry.address.to_ascii_lowercase())
            && let Some(why) = accounts.unknown(entry.address)
        {
            let detail = format!(
                "{file} grants {:?} to {why}",
                String::from_utf8_lossy(entry.rights)
            );
            at.add(Kind::AclUnknownAccount, path, detail);
        }
    }
}

/// One folder's index: each message number with its record and line, and whether its file was
/// seen in `#msgs`.
type Index = HashMap<u64, (Record, usize, bool)>;

fn read_index(at: &mut At, path: &Path, bytes: &[u8]) -> Index {
    let mut index = Index::new();
    let lines = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for (i, line) in lines.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        match index_fld::parse_line(line) {
            Ok(None) => {}
            Err(e) => at.add(
                Kind::BadIndexLine,
                path,
                format!("{} line {n}: {e}", INDEX.file),
            ),
            Ok(Some(record)) => {
                if let Some((_, first, _)) = index.get(&record.uid) {
                    let detail = format!(
                        "{} lines {first} and {n} both name {}",
                        INDEX.file,
                        index_fld::message_file_name(record.uid)
                    );
                    at.add(Kind::DuplicateRecord, path, detail);
                } else {
                    index.insert(record.uid, (record, n, false));
                }
            }
        }
    }
    index
}

/// `#msgs` against the index (when there is one to compare with): every message is `stat`ed,
/// and opened only when its mode leaves a doubt that this process can read it.
fn compare_messages(
    at: &mut At,
    me: Option<Me>,
    msgs: &Path,
    exists: bool,
    mut index: Option<Index>,
) {
    if exists {
        let entries = match std::fs::read_dir(msgs) {
            Err(e) => return at.unreadable(msgs, &e),
            Ok(entries) => entries,
        };
        for entry in entries {
            match entry {
                Ok(entry) => check_message(at, me, msgs, &entry, index.as_mut()),
                Err(e) => at.unreadable(msgs, &e),
            }
        }
    }
    let Some(index) = index else { return };
    let mut missing: Vec<(usize, u64)> = index
        .iter()
        .filter(|(_, (_, _, seen))| !seen)
        .map(|(uid, (_, line, _))| (*line, *uid))
        .collect();
    missing.sort_unstable();
    for (line, uid) in missing {
        let path = msgs.join(index_fld::message_file_name(uid));
        let detail = format!("{} line {line} names it; there is no such file", INDEX.file);
        at.add(Kind::RecordWithoutFile, &path, detail);
    }
}

/// One entry of `#msgs`: counted when it is a message, checked readable, and against its
/// record (marked seen).
fn check_message(
    at: &mut At,
    me: Option<Me>,
    msgs: &Path,
    entry: &std::fs::DirEntry,
    index: Option<&mut Index>,
) {
    let name = entry.file_name();
    let Some(uid) = index_fld::message_number(&name) else {
        return; // not a message: the server's, or nothing of ours
    };
    let path = msgs.join(&name);
    let meta = match entry.metadata() {
        Ok(m) => m,
        Err(e) => return at.unreadable(&path, &e),
    };
    if meta.is_dir() {
        return;
    }
    at.out.messages += 1;
    if !surely_readable(&meta, me)
        && let Err(e) = std::fs::File::open(&path)
    {
        at.unreadable(&path, &e);
    }
    let Some(index) = index else { return };
    match index.get_mut(&uid) {
        None => at.add(
            Kind::FileWithoutRecord,
            &path,
            format!("{} bytes; {} has no record of it", meta.len(), INDEX.file),
        ),
        Some((record, line, seen)) => {
            *seen = true;
            if let Some(size) = record.size
                && size != meta.len()
            {
                let detail = format!(
                    "{} line {line} says {size} bytes; the file has {}",
                    INDEX.file,
                    meta.len()
                );
                at.add(Kind::SizeMismatch, &path, detail);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_only_index_kinds_are_reindexed() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).expect("serialises");
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert!(Kind::SizeMismatch.reindex_fixes() && Kind::MissingIndex.reindex_fixes());
        assert!(!Kind::MissingStatus.reindex_fixes() && !Kind::AclUnknownAccount.reindex_fixes());
    }
}
