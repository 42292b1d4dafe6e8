//! Accounts across both config files and the store: names and addresses, where a mailbox lives,
//! and the store files that name an address (ACLs in `status.fld` and `#public/acl.fld`, owners
//! in `folder.map`, subscriptions in `sub.fld`), which the writers rename, remove or list.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::change::Step;
use crate::config::view::User;
use crate::config::{Config, ItemId, list_tokens};
use crate::install::Install;
use crate::store::{self, ACL_FLD, FOLDER_MAP, STATUS_FLD, SUB_FLD, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{text:?} is not an address: {why}")]
    BadAddress { text: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Share(String),
    #[error("{0}: already exists; nothing was moved")]
    FolderExists(PathBuf),
}

/// Checks a username against the rules of KERIO-FORMAT.md §2: `[A-Za-z0-9._-]`, not starting or
/// ending with `.`, no `..`, at most 64 characters. Returns why it is refused.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > 64 {
        return Err(format!("{} characters, more than 64", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed (letters, digits, '.', '_' and '-' only)"
        ));
    }
    if name.starts_with('.') || name.ends_with('.') {
        return Err("a name may not start or end with '.'".into());
    }
    if name.contains("..") {
        return Err("a name may not hold '..'".into());
    }
    Ok(())
}

/// `name@domain`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub name: String,
    pub domain: String,
}

impl Address {
    /// Parses `name@domain`; with `default_domain`, a bare `name` is taken in that domain.
    pub fn parse(text: &str, default_domain: Option<&str>) -> Result<Address, AccountError> {
        let bad = |why: &str| AccountError::BadAddress {
            text: text.to_owned(),
            why: why.to_owned(),
        };
        let text = text.trim();
        let (name, domain) = match (text.rsplit_once('@'), default_domain) {
            (Some((n, d)), _) => (n, d),
            (None, Some(d)) => (text, d),
            (None, None) => return Err(bad("give it as user@domain")),
        };
        check_name(name).map_err(|why| bad(&why))?;
        if domain.is_empty()
            || domain.starts_with('.')
            || domain.contains("..")
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        {
            return Err(bad("the domain is not a domain name"));
        }
        Ok(Address {
            name: name.to_owned(),
            domain: domain.to_owned(),
        })
    }

    pub fn is(&self, other: &Address) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && self.domain.eq_ignore_ascii_case(&other.domain)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.domain)
    }
}

/// A `(name, domain)` in lower case: how names are compared, as the server does.
pub type NameKey = (String, String);

pub fn name_key(name: &str, domain: &str) -> NameKey {
    (name.to_ascii_lowercase(), domain.to_ascii_lowercase())
}

/// What holds each name of each domain: accounts, their extra addresses, aliases, groups (and
/// their addresses), mailing lists. Built once from the configs, so that checking a name costs a
/// lookup, not a scan of users.cfg, however many names a run checks.
#[derive(Debug, Clone, Default)]
pub struct Names {
    users: HashMap<NameKey, ItemId>,
    /// The users' extra addresses (`EmailAddresses`), with their owners.
    addresses: HashMap<NameKey, Vec<ItemId>>,
    /// Aliases, groups, mailing lists, and names taken during a run: what holds them.
    others: HashMap<NameKey, String>,
}

impl Names {
    pub fn new(config: &Config) -> Names {
        let mut names = Names::default();
        let mut other = |n: &str, d: &str, what: String| {
            names.others.entry(name_key(n, d)).or_insert(what);
        };
        for a in config.aliases() {
            other(a.name(), a.domain(), "an alias".into());
        }
        for g in config.groups() {
            other(g.name(), g.domain(), "a group".into());
            for t in list_tokens(g.email_addresses()) {
                other(t, g.domain(), format!("an address of group {}", g.name()));
            }
        }
        for l in config.mailing_lists() {
            other(l.name(), l.domain(), "a mailing list".into());
        }
        for u in config.users() {
            names
                .users
                .entry(name_key(u.name(), u.domain()))
                .or_insert(u.id());
            names.add_addresses(u.id(), u.email_addresses(), u.domain());
        }
        names
    }

    /// By what `name@domain` is taken, if it is. The names of account `except` (one being
    /// renamed) are not in its own way: `jdoe` may become its `john.doe`.
    pub fn taken(
        &self,
        config: &Config,
        name: &str,
        domain: &str,
        except: Option<ItemId>,
    ) -> Option<String> {
        let k = name_key(name, domain);
        if self.users.get(&k).is_some_and(|id| Some(*id) != except) {
            return Some("a user".into());
        }
        if let Some(owner) = self
            .addresses
            .get(&k)
            .and_then(|o| o.iter().find(|id| Some(**id) != except))
        {
            let u = User(config.users.item(*owner));
            return Some(format!("an address of user {}", u.address()));
        }
        self.others.get(&k).cloned()
    }

    /// Marks a name taken by something the configs do not hold yet (a row being imported).
    pub fn take(&mut self, name: &str, domain: &str, what: String) {
        self.others.insert(name_key(name, domain), what);
    }

    /// Account `id` is renamed from `old` to `new`, each `(name, domain, EmailAddresses)`.
    pub fn rename_user(&mut self, id: ItemId, old: (&str, &str, &str), new: (&str, &str, &str)) {
        self.users.remove(&name_key(old.0, old.1));
        self.users.insert(name_key(new.0, new.1), id);
        for t in list_tokens(old.2) {
            if let Some(owners) = self.addresses.get_mut(&name_key(t, old.1)) {
                owners.retain(|o| *o != id);
            }
        }
        self.add_addresses(id, new.2, new.1);
    }

    /// The account of `name@domain`, if there is one.
    pub fn user(&self, name: &str, domain: &str) -> Option<ItemId> {
        self.users.get(&name_key(name, domain)).copied()
    }

    fn add_addresses(&mut self, id: ItemId, list: &str, domain: &str) {
        for t in list_tokens(list) {
            self.addresses
                .entry(name_key(t, domain))
                .or_default()
                .push(id);
        }
    }
}

/// Where the store's parts are, relative to the install root (the paths of change steps).
#[derive(Debug, Clone)]
pub struct Layout {
    pub store: PathBuf,
    pub logs: PathBuf,
}

impl Layout {
    /// The store's logical prefix (see [`Install::store_prefix`]); its logs where the install
    /// says. Never fails: a store outside the root is named `store` in plans and backups.
    pub fn new(install: &Install) -> Layout {
        Layout {
            store: install.store_prefix.clone(),
            logs: install.logs.clone(),
        }
    }

    pub fn mail(&self) -> PathBuf {
        self.store.join("mail")
    }

    pub fn domain(&self, dir: impl AsRef<Path>) -> PathBuf {
        self.mail().join(dir)
    }

    pub fn config_log(&self) -> PathBuf {
        self.logs.join("config.log")
    }

    pub fn warning_log(&self) -> PathBuf {
        self.logs.join("warning.log")
    }
}

/// The directory of `name` in `parent`, compared case-insensitively as the server does.
fn find_dir(parent: &Path, name: &str) -> Result<Option<OsString>, AccountError> {
    let entries = match std::fs::read_dir(parent) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AccountError::Io {
                path: parent.to_owned(),
                source,
            });
        }
    };
    let mut found: Vec<OsString> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| AccountError::Io {
            path: parent.to_owned(),
            source,
        })?;
        if store::name_matches(&entry.file_name(), name)
            && entry.file_type().is_ok_and(|t| t.is_dir())
        {
            found.push(entry.file_name());
        }
    }
    // An exact match wins over a case variant.
    found.sort_by_key(|n| n.to_str() != Some(name));
    Ok(found.into_iter().next())
}

/// The mailbox directory of an account, absolute, as it is spelled on disk (domain and name are
/// matched case-insensitively, as the server does); `None` when it has none.
pub fn mailbox_dir(install: &Install, address: &Address) -> Result<Option<PathBuf>, AccountError> {
    let mail = install.mail_dir();
    let Some(domain) = find_dir(&mail, &address.domain)? else {
        return Ok(None);
    };
    let domain = mail.join(domain);
    Ok(find_dir(&domain, &address.name)?.map(|n| domain.join(n)))
}

/// [`mailbox_dir`], relative to the install root (the form of change steps).
pub fn mailbox_path(
    install: &Install,
    layout: &Layout,
    address: &Address,
) -> Result<Option<PathBuf>, AccountError> {
    Ok(mailbox_dir(install, address)?.map(|dir| {
        let inside = dir.strip_prefix(&install.store).unwrap_or(&dir);
        layout.store.join(inside)
    }))
}

/// The kind of a store file that names addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareFile {
    /// A folder's `status.fld`: its ACL.
    Status,
    /// A mailbox's `folder.map`: its subscriptions to other users' folders.
    Map,
    /// A `#public` directory's `acl.fld`: the public folders' ACL, in status.fld's tokens.
    PublicAcl,
    /// A mailbox's `sub.fld`: its folder subscriptions, naming the owners of shared ones.
    Subscriptions,
}

impl ShareFile {
    /// The kind of a file, by its name.
    fn of(path: &Path) -> Option<ShareFile> {
        let name = path.file_name()?;
        [
            (STATUS_FLD, ShareFile::Status),
            (FOLDER_MAP, ShareFile::Map),
            (ACL_FLD, ShareFile::PublicAcl),
            (SUB_FLD, ShareFile::Subscriptions),
        ]
        .into_iter()
        .find(|(n, _)| name == *n)
        .map(|(_, kind)| kind)
    }
}

/// An edited share file: path relative to the root, new bytes, what the file held when read.
pub type EditedFile = (PathBuf, Vec<u8>, crate::change::Expect);
/// Directories (mailboxes, server folders), each with the files listed under it.
pub type Listed = Vec<(PathBuf, Vec<PathBuf>)>;

/// Runs `edit` over every file naming addresses (`status.fld`, `folder.map`, `acl.fld`,
/// `sub.fld`) of every mailbox and server folder of every domain, and of the server's own
/// `mail/#public`, in parallel; only folder-level files are read, never messages. Returns the
/// files `edit` changed (path relative to the root, new bytes), sorted by path.
pub fn edit_share_files<F>(
    install: &Install,
    layout: &Layout,
    edit: F,
) -> Result<Vec<EditedFile>, AccountError>
where
    F: Fn(ShareFile, &Path, Vec<u8>) -> Result<Option<Vec<u8>>, AccountError> + Sync,
{
    Ok(edit_share_files_listing(install, layout, &[], edit)?.0)
}

/// [`edit_share_files`], which also lists, in the same walk, the folder-level files called one
/// of `also` under each mailbox and server folder: `(that directory, its files)` (real paths),
/// for a caller that reads them next without walking the store again.
pub fn edit_share_files_listing<F>(
    install: &Install,
    layout: &Layout,
    also: &[&str],
    edit: F,
) -> Result<(Vec<EditedFile>, Listed), AccountError>
where
    F: Fn(ShareFile, &Path, Vec<u8>) -> Result<Option<Vec<u8>>, AccountError> + Sync,
{
    let mail = install.resolve(&layout.mail());
    // The server's public folders (`mail/#public`) are walked whole, like a domain's.
    let mut tops = store::server_dirs(&mail)?;
    for domain in store::domains(&mail)? {
        for entry in std::fs::read_dir(&domain.path).map_err(|source| AccountError::Io {
            path: domain.path.clone(),
            source,
        })? {
            let entry = entry.map_err(|source| AccountError::Io {
                path: domain.path.clone(),
                source,
            })?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                tops.push(entry.path());
            }
        }
    }
    let mut names = vec![STATUS_FLD, FOLDER_MAP, ACL_FLD, SUB_FLD];
    names.extend_from_slice(also);
    type PerTop = (Vec<EditedFile>, (PathBuf, Vec<PathBuf>));
    let per_top: Vec<PerTop> = tops
        .par_iter()
        .map(|top| {
            let mut out = Vec::new();
            let mut listed = Vec::new();
            for file in store::folder_level_files(top, &names)? {
                let Some(kind) = ShareFile::of(&file) else {
                    listed.push(file);
                    continue;
                };
                let bytes = std::fs::read(&file).map_err(|source| AccountError::Io {
                    path: file.clone(),
                    source,
                })?;
                let read = crate::change::Expect::read(&bytes);
                if let Some(new) = edit(kind, &file, bytes)? {
                    let rel = install.logical(&file).unwrap_or_else(|| file.clone());
                    out.push((rel, new, read));
                }
            }
            Ok((out, (top.clone(), listed)))
        })
        .collect::<Result<_, AccountError>>()?;
    let (edited, listed): (Vec<Vec<EditedFile>>, Vec<_>) = per_top.into_iter().unzip();
    let mut all: Vec<_> = edited.into_iter().flatten().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((all, listed))
}

/// Where mailboxes moved to account `to` go: its mailbox directory (relative to the root), and
/// the step that creates it when the account has none yet (it never logged in).
pub fn transfer_target(
    install: &Install,
    layout: &Layout,
    to: &Address,
) -> Result<(PathBuf, Option<Step>), AccountError> {
    Ok(match mailbox_path(install, layout, to)? {
        Some(dir) => (dir, None),
        None => {
            let dir = layout.domain(&to.domain).join(&to.name);
            (dir.clone(), Some(Step::CreateDir { path: dir }))
        }
    })
}

/// The steps that move a mailbox under another account as folder
/// `Deleted mailbox — <address>`, as the server does when it deletes a user "moving the mailbox
/// to another user": the folder's `status.fld` (a non-standard folder without one is hidden) is
/// written first, then the directory is moved. Refuses when the folder exists already.
pub fn transfer_steps(
    install: &Install,
    mailbox: &Path,
    address: &Address,
    target_mailbox: &Path,
) -> Result<Vec<Step>, AccountError> {
    let folder = target_mailbox.join(format!("{}{address}", store::DELETED_MAILBOX_PREFIX));
    if install.resolve(&folder).exists() {
        return Err(AccountError::FolderExists(folder));
    }
    let status = mailbox.join(STATUS_FLD);
    Ok(vec![
        Step::write_file(
            status,
            store::status_fld::new_folder(&format!("{address} {}", target_mailbox.display())),
            crate::change::Expect::Any,
        ),
        Step::Rename {
            from: mailbox.to_path_buf(),
            to: folder,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        for good in ["jdoe", "john.doe", "a-b_c", "A1", &"x".repeat(64)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "the name is empty"),
            (
                "j doe",
                "' ' is not allowed (letters, digits, '.', '_' and '-' only)",
            ),
            (
                "a/b",
                "'/' is not allowed (letters, digits, '.', '_' and '-' only)",
            ),
            (
                "jöe",
                "'ö' is not allowed (letters, digits, '.', '_' and '-' only)",
            ),
            (".jdoe", "a name may not start or end with '.'"),
            ("jdoe.", "a name may not start or end with '.'"),
            ("j..doe", "a name may not hold '..'"),
            (&"x".repeat(65), "65 characters, more than 64"),
        ] {
            assert_eq!(check_name(bad), Err(why.to_owned()), "{bad}");
        }
    }

    #[test]
    fn addresses_parse_with_or_without_a_domain() {
        let a = Address::parse("jdoe@example.com", None).expect("parses");
        assert_eq!(
            (a.name.as_str(), a.domain.as_str()),
            ("jdoe", "example.com")
        );
        let b = Address::parse("JDoe", Some("Example.COM")).expect("bare");
        assert!(a.is(&b) && b.to_string() == "JDoe@Example.COM");
        let err = Address::parse("jdoe", None).expect_err("no domain");
        assert_eq!(
            err.to_string(),
            "\"jdoe\" is not an address: give it as user@domain"
        );
        let err = Address::parse("../x@example.com", None).expect_err("bad");
        assert!(err.to_string().contains("'/' is not allowed"), "{err}");
        assert!(Address::parse("x@../etc", None).is_err());
    }
}
