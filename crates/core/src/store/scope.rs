//! Which parts of the store a run covers, and the directories in them.
//!
//! A run covers *places*: mailboxes (`mail/<domain>/<user>`), a domain's server folders
//! (`mail/<domain>/#public`, `#archive`, …) and the server's own (`mail/#public`). `--domain` and
//! `--user` narrow them, compared case-insensitively as the server compares names; a name that
//! matches nothing is an error naming what the store does have, never an empty report.
//!
//! [`directories`] lists a place's directories once each, with the folder-level files each
//! holds, without entering `#msgs` or `#assoc`: the cost follows the number of folders.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::{ACL_FLD, FOLDER_MAP, MESSAGES_DIR, STATUS_FLD, SUB_FLD, StoreError};
use crate::config::schema::INDEX;

/// What to cover; `None` is everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// A domain directory's name.
    pub domain: Option<String>,
    /// A mailbox (or `#public`, `#archive`, …) name, or `name@domain`.
    pub user: Option<String>,
}

/// What a place is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlaceKind {
    /// A user's mailbox: `mail/<domain>/<user>`.
    Mailbox,
    /// A `#`-directory of a domain: its public folders, its archive.
    DomainServerFolder,
    /// A `#`-directory directly under `mail`: the server's public folders, for every domain.
    ServerFolder,
}

/// A mailbox or a server folder tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The domain directory's name; empty for the server's own `mail/#public`.
    pub domain: String,
    /// The mailbox directory's name, or the `#`-name.
    pub user: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Whether it is a mailbox or a server folder tree, and whose.
    pub kind: PlaceKind,
}

/// Why a selection covers nothing that is there.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// The store has no `mail` directory.
    #[error(
        "{mail}: no such directory: the store has no mail (is the store right? --store, or StoreDir of mailserver.cfg)"
    )]
    NoMail {
        /// `<store>/mail`.
        mail: PathBuf,
    },
    /// `--domain` names no domain directory.
    #[error("no domain {domain} in {mail} ({hint})")]
    NoDomain {
        /// The domain as given.
        domain: String,
        /// `<store>/mail`.
        mail: PathBuf,
        /// The closest name, or the names there are.
        hint: String,
    },
    /// `--user` names no mailbox (of the domain, if one is given).
    #[error("no mailbox {user} in {within} ({hint})")]
    NoUser {
        /// The user as given.
        user: String,
        /// Where it was looked for: a domain directory, or every one.
        within: String,
        /// The closest name, or the names there are.
        hint: String,
    },
    /// `--user` is not a mailbox name, or is in another domain than `--domain`.
    #[error("--user {user} {why}")]
    BadUser {
        /// The user as given.
        user: String,
        /// What is wrong with it.
        why: String,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to say after a name that is not there: the closest one when it looks like a typo of it
/// (`did you mean …?`), else up to ten of the names there are.
fn hint(wanted: &str, names: &[String]) -> String {
    if let Some(close) = crate::suggest::closest(wanted, names.iter().map(String::as_str)) {
        return format!("did you mean {close}?");
    }
    if names.is_empty() {
        return "it has none".into();
    }
    let mut out = names
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 10 {
        out.push_str(&format!(", … {} in all", names.len()));
    }
    format!("it has: {out}")
}

fn lossy(name: &OsStr) -> String {
    name.to_string_lossy().into_owned()
}

/// The places `selection` covers under `mail`, sorted (domain, then name; the server's own
/// folders first).
pub fn places(mail: &Path, selection: &Selection) -> Result<Vec<Place>, ScopeError> {
    if !mail.is_dir() {
        return Err(ScopeError::NoMail {
            mail: mail.to_owned(),
        });
    }
    let (user, domain) = user_and_domain(selection)?;
    let wanted = |name: &OsStr| user.as_deref().is_none_or(|u| super::name_matches(name, u));
    let mut out = Vec::new();
    if domain.is_none() {
        for dir in super::server_dirs(mail)? {
            let name = dir.file_name().unwrap_or_default().to_owned();
            if wanted(&name) {
                out.push(Place {
                    domain: String::new(),
                    user: lossy(&name),
                    dir,
                    kind: PlaceKind::ServerFolder,
                });
            }
        }
    }
    let all_domains = super::domains(mail)?;
    let domains = chosen_domains(mail, &all_domains, domain.as_deref())?;
    let mut seen_in_domains = Vec::new();
    for d in &domains {
        for (name, dir) in super::subdirs(&d.path)? {
            seen_in_domains.push(lossy(&name));
            if !wanted(&name) {
                continue;
            }
            let kind = if super::is_server_folder(&name) {
                PlaceKind::DomainServerFolder
            } else {
                PlaceKind::Mailbox
            };
            out.push(Place {
                domain: lossy(&d.name),
                user: lossy(&name),
                dir,
                kind,
            });
        }
    }
    if let Some(u) = &user
        && out.is_empty()
    {
        let within = match (&domain, domains.as_slice()) {
            (Some(_), [d]) => d.path.display().to_string(),
            _ => format!("any domain of {}", mail.display()),
        };
        seen_in_domains.sort();
        seen_in_domains.dedup();
        return Err(ScopeError::NoUser {
            user: u.clone(),
            within,
            hint: hint(u, &seen_in_domains),
        });
    }
    Ok(out)
}

/// The mailbox name and the domain a selection asks for: `--user name@domain` gives both (and
/// must agree with `--domain`).
fn user_and_domain(selection: &Selection) -> Result<(Option<String>, Option<String>), ScopeError> {
    let (user, domain) = match selection.user.as_deref().map(|u| u.rsplit_once('@')) {
        Some(Some((name, dom))) => {
            if let Some(d) = &selection.domain
                && !d.eq_ignore_ascii_case(dom)
            {
                return Err(ScopeError::BadUser {
                    user: format!("{name}@{dom}"),
                    why: format!("is in {dom}, and --domain says {d}"),
                });
            }
            (Some(name.to_owned()), Some(dom.to_owned()))
        }
        Some(None) => (selection.user.clone(), selection.domain.clone()),
        None => (None, selection.domain.clone()),
    };
    if let Some(u) = &user
        && (u.is_empty() || u.contains('/'))
    {
        return Err(ScopeError::BadUser {
            user: u.clone(),
            why: "is not a mailbox name".into(),
        });
    }
    Ok((user, domain))
}

/// The domain directories a selection covers: all, or the one `domain` names (any case); a
/// name that is not there is an error with a hint.
fn chosen_domains<'d>(
    mail: &Path,
    all: &'d [super::DomainDir],
    domain: Option<&str>,
) -> Result<Vec<&'d super::DomainDir>, ScopeError> {
    let Some(d) = domain else {
        return Ok(all.iter().collect());
    };
    let found: Vec<_> = all
        .iter()
        .filter(|x| super::name_matches(&x.name, d))
        .collect();
    if found.is_empty() {
        let names: Vec<String> = all.iter().map(|x| lossy(&x.name)).collect();
        return Err(ScopeError::NoDomain {
            domain: d.to_owned(),
            mail: mail.to_owned(),
            hint: hint(d, &names),
        });
    }
    Ok(found)
}

/// The folder-level files and directories one directory holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holds {
    /// `index.fld`.
    pub index: bool,
    /// `status.fld`.
    pub status: bool,
    /// `search.fld`.
    pub search: bool,
    /// A `#msgs` directory.
    pub messages: bool,
    /// `sub.fld`.
    pub sub_fld: bool,
    /// `folder.map`.
    pub folder_map: bool,
    /// `acl.fld`.
    pub acl_fld: bool,
}

impl Holds {
    /// A folder: a directory with messages, an index or a status (a directory with none of
    /// them only holds other folders, as `#archive` does).
    pub fn is_folder(&self) -> bool {
        self.messages || self.index || self.status
    }
}

/// A directory of a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// Relative to the place; empty for the place itself.
    pub rel: PathBuf,
    /// The directory.
    pub path: PathBuf,
    /// Which folder-level files it holds.
    pub holds: Holds,
}

/// Every directory of a place (itself first, then depth first, by name), with what each holds;
/// `#msgs` and `#assoc` are not entered. A directory that cannot be listed is returned with its
/// error, and the walk goes on.
pub fn directories(place: &Path) -> (Vec<Directory>, Vec<(PathBuf, std::io::Error)>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let path = place.join(&rel);
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) => {
                errors.push((path, e));
                continue;
            }
        };
        let mut holds = Holds::default();
        let mut subdirs = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    errors.push((path.clone(), e));
                    continue;
                }
            };
            let name = entry.file_name();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                if name == MESSAGES_DIR {
                    holds.messages = true;
                } else if !super::is_folder_inside(&name) {
                    subdirs.push(name);
                }
                continue;
            }
            match name.to_str() {
                Some(n) if n == INDEX.file => holds.index = true,
                Some(n) if n == STATUS_FLD => holds.status = true,
                Some(n) if n == INDEX.search => holds.search = true,
                Some(n) if n == SUB_FLD => holds.sub_fld = true,
                Some(n) if n == FOLDER_MAP => holds.folder_map = true,
                Some(n) if n == ACL_FLD => holds.acl_fld = true,
                _ => {}
            }
        }
        // Reverse order on the stack: the walk comes out sorted by name.
        subdirs.sort();
        todo.extend(subdirs.into_iter().rev().map(|n| rel.join(n)));
        out.push(Directory { rel, path, holds });
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkdir(p: &Path) {
        std::fs::create_dir_all(p).expect("mkdir");
    }

    #[test]
    fn places_follow_the_selection_and_typos_say_what_there_is() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mail = tmp.path().join("mail");
        for d in [
            "#public/Announcements",
            "example.com/jdoe/INBOX",
            "example.com/#public/News",
            "example.org/JDoe/INBOX",
        ] {
            mkdir(&mail.join(d));
        }
        let all = places(&mail, &Selection::default()).expect("all");
        let names: Vec<(String, String, PlaceKind)> = all
            .iter()
            .map(|p| (p.domain.clone(), p.user.clone(), p.kind))
            .collect();
        assert_eq!(
            names,
            [
                ("".into(), "#public".into(), PlaceKind::ServerFolder),
                (
                    "example.com".into(),
                    "#public".into(),
                    PlaceKind::DomainServerFolder
                ),
                ("example.com".into(), "jdoe".into(), PlaceKind::Mailbox),
                ("example.org".into(), "JDoe".into(), PlaceKind::Mailbox),
            ]
        );
        let sel = |d: Option<&str>, u: Option<&str>| Selection {
            domain: d.map(str::to_owned),
            user: u.map(str::to_owned),
        };
        let jdoe = places(&mail, &sel(None, Some("jdoe"))).expect("jdoe");
        assert_eq!(jdoe.len(), 2);
        let one = places(&mail, &sel(None, Some("jdoe@Example.ORG"))).expect("one");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].dir, mail.join("example.org/JDoe"));
        let err = places(&mail, &sel(Some("exmaple.com"), None)).expect_err("typo");
        assert_eq!(
            err.to_string(),
            format!(
                "no domain exmaple.com in {} (did you mean example.com?)",
                mail.display()
            )
        );
        let err = places(&mail, &sel(Some("elsewhere.test"), None)).expect_err("no such");
        assert!(
            err.to_string()
                .ends_with("(it has: example.com, example.org)"),
            "{err}"
        );
        let err = places(&mail, &sel(Some("example.com"), Some("jdeo"))).expect_err("typo");
        assert!(
            err.to_string().starts_with("no mailbox jdeo in ")
                && err.to_string().ends_with("(did you mean jdoe?)"),
            "{err}"
        );
        let err = places(&mail, &sel(Some("example.com"), Some("someone"))).expect_err("none");
        assert!(
            err.to_string().ends_with("(it has: #public, jdoe)"),
            "{err}"
        );
        let err = places(&mail, &sel(Some("example.com"), Some("jdoe@example.org")))
            .expect_err("two domains");
        assert_eq!(
            err.to_string(),
            "--user jdoe@example.org is in example.org, and --domain says example.com"
        );
        assert!(matches!(
            places(&tmp.path().join("nothing"), &Selection::default()),
            Err(ScopeError::NoMail { .. })
        ));
    }

    #[test]
    fn directories_lists_folders_without_entering_messages() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mb = tmp.path();
        mkdir(&mb.join("INBOX/#msgs/inner"));
        mkdir(&mb.join("INBOX/Sub/#assoc"));
        std::fs::write(mb.join("INBOX/index.fld"), "").expect("write");
        std::fs::write(mb.join("INBOX/Sub/status.fld"), "").expect("write");
        std::fs::write(mb.join("sub.fld"), "").expect("write");
        let (dirs, errors) = directories(mb);
        assert!(errors.is_empty());
        let rels: Vec<(&Path, bool)> = dirs
            .iter()
            .map(|d| (d.rel.as_path(), d.holds.is_folder()))
            .collect();
        assert_eq!(
            rels,
            [
                (Path::new(""), false),
                (Path::new("INBOX"), true),
                (Path::new("INBOX/Sub"), true)
            ]
        );
        assert!(dirs[0].holds.sub_fld && dirs[1].holds.messages && dirs[1].holds.index);
    }
}
