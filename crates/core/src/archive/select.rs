//! What part of an install a backup or a restore covers: masks as the vendor's `kmsrecover`
//! (`cfg`, `mail`, `license`, `sslcert`, `settings`, `logs`, `queue`, `all`), narrowed by domain,
//! user and folder.
//!
//! Paths are archive paths (relative to the install root, `/`-separated bytes). Domain and user
//! names compare case-insensitively, as the server compares them.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

/// A part of the install, as `kmsrecover -m` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mask {
    /// Everything below.
    All,
    /// mailserver.cfg and users.cfg.
    Cfg,
    /// The store's `mail/`.
    Mail,
    /// The licence files (`license/`).
    License,
    /// The SSL certificates (`sslcert/`).
    Sslcert,
    /// The root's `settings/` directory.
    Settings,
    /// The store's `logs/`.
    Logs,
    /// The store's `queue/`.
    Queue,
}

impl FromStr for Mask {
    type Err = String;
    fn from_str(s: &str) -> Result<Mask, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "all" => Mask::All,
            "cfg" => Mask::Cfg,
            "mail" => Mask::Mail,
            "license" => Mask::License,
            "sslcert" => Mask::Sslcert,
            "settings" => Mask::Settings,
            "logs" => Mask::Logs,
            "queue" => Mask::Queue,
            other => {
                return Err(format!(
                    "unknown mask `{other}` (one of all, cfg, mail, license, sslcert, settings, logs, queue)"
                ));
            }
        })
    }
}

impl Mask {
    /// A comma list such as `cfg,mail`.
    pub fn parse_list(list: &str) -> Result<Vec<Mask>, String> {
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Mask::from_str)
            .collect()
    }

    /// The archive paths the mask covers; `None` for everything.
    fn prefixes(self, store: &str) -> Option<Vec<String>> {
        Some(match self {
            Mask::All => return None,
            Mask::Cfg => vec!["mailserver.cfg".into(), "users.cfg".into()],
            Mask::Mail => vec![format!("{store}/mail")],
            Mask::License => vec!["license".into()],
            Mask::Sslcert => vec!["sslcert".into()],
            Mask::Settings => vec!["settings".into()],
            Mask::Logs => vec![format!("{store}/logs")],
            Mask::Queue => vec![format!("{store}/queue")],
        })
    }
}

/// One path component to match, case-insensitively or not.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    bytes: Vec<u8>,
    fold_case: bool,
}

/// The archive paths a backup or restore covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `None`: everything.
    prefixes: Option<Vec<Vec<Part>>>,
    /// [`Selection::paths`]'s prefixes again, in hash sets: a change may touch tens of thousands
    /// of paths (a reindex of a whole store), and a walk asks about every entry it meets, so
    /// each question is a few lookups rather than a scan of the list.
    exact: Option<Arc<Exact>>,
}

/// Exact paths (components joined by `/`), and every directory above one of them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Exact {
    paths: HashSet<Vec<u8>>,
    above: HashSet<Vec<u8>>,
}

impl Exact {
    /// Whether `path` or a directory above it is selected.
    fn covers(&self, path: &[u8]) -> bool {
        let path = join_components(path);
        self.paths.contains(&path[..0])
            || path
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'/')
                .any(|(i, _)| self.paths.contains(&path[..i]))
            || self.paths.contains(&path)
    }

    /// Whether a walk must enter `dir`: it is covered, or a selected path lies below it.
    fn enters(&self, dir: &[u8]) -> bool {
        self.above.contains(&join_components(dir)) || self.covers(dir)
    }
}

fn join_components(path: &[u8]) -> Vec<u8> {
    components(path).collect::<Vec<_>>().join(&b'/')
}

impl Selection {
    /// The whole archive.
    pub fn everything() -> Selection {
        Selection {
            prefixes: None,
            exact: None,
        }
    }

    /// Exactly these archive paths (each with everything below it), compared exactly.
    pub fn paths(paths: &[Vec<u8>]) -> Selection {
        let parts = paths
            .iter()
            .map(|p| {
                components(p)
                    .map(|c| Part {
                        bytes: c.to_vec(),
                        fold_case: false,
                    })
                    .collect()
            })
            .collect();
        let mut exact = Exact::default();
        for p in paths {
            let joined = join_components(p);
            exact.above.insert(Vec::new());
            for (i, b) in joined.iter().enumerate() {
                if *b == b'/' {
                    exact.above.insert(joined[..i].to_vec());
                }
            }
            exact.paths.insert(joined);
        }
        Selection {
            prefixes: Some(parts),
            exact: Some(Arc::new(exact)),
        }
    }

    /// The union of the masks, narrowed to a domain, a user of it, a folder of that user.
    /// `user` and `folder` require the level above; the caller checks that.
    pub fn new(
        masks: &[Mask],
        store_prefix: &str,
        domain: Option<&str>,
        user: Option<&str>,
        folder: Option<&str>,
    ) -> Selection {
        let exact = |s: &str| {
            s.split('/')
                .filter(|c| !c.is_empty())
                .map(|c| Part {
                    bytes: c.as_bytes().to_vec(),
                    fold_case: false,
                })
                .collect::<Vec<_>>()
        };
        let mut prefixes: Option<Vec<Vec<Part>>> = Some(Vec::new());
        for mask in masks {
            match (mask.prefixes(store_prefix), prefixes.as_mut()) {
                (None, _) => prefixes = None,
                (Some(list), Some(all)) => all.extend(list.iter().map(|p| exact(p))),
                (Some(_), None) => {}
            }
        }
        if masks.is_empty() {
            prefixes = None;
        }
        if let Some(domain) = domain {
            // Narrowing to mail: keep it only where the masks cover mail.
            let mail = exact(&format!("{store_prefix}/mail"));
            let covered = match &prefixes {
                None => true,
                Some(list) => list.iter().any(|p| is_prefix(p, &join(&mail))),
            };
            let mut prefix = mail;
            for (name, fold_case) in [(Some(domain), true), (user, true)] {
                if let Some(name) = name {
                    prefix.push(Part {
                        bytes: name.as_bytes().to_vec(),
                        fold_case,
                    });
                }
            }
            if let Some(folder) = folder {
                prefix.extend(exact(folder));
            }
            prefixes = Some(if covered { vec![prefix] } else { Vec::new() });
        }
        Selection {
            prefixes,
            exact: None,
        }
    }

    /// Whether an archive path is covered (it is, or lies under, a selected prefix).
    pub fn matches(&self, path: &[u8]) -> bool {
        if let Some(exact) = &self.exact {
            return exact.covers(path);
        }
        match &self.prefixes {
            None => true,
            Some(list) => list.iter().any(|p| is_prefix(p, path)),
        }
    }

    /// Whether a walk must enter this directory: it is covered, or a selected prefix lies
    /// below it.
    pub fn enters(&self, dir: &[u8]) -> bool {
        if let Some(exact) = &self.exact {
            return exact.enters(dir);
        }
        match &self.prefixes {
            None => true,
            Some(list) => {
                let parts: Vec<&[u8]> = components(dir).collect();
                list.iter()
                    .any(|p| p.iter().zip(&parts).all(|(want, have)| part_eq(want, have)))
            }
        }
    }
}

fn join(parts: &[Part]) -> Vec<u8> {
    parts
        .iter()
        .map(|p| p.bytes.clone())
        .collect::<Vec<_>>()
        .join(&b'/')
}

fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

fn part_eq(want: &Part, have: &[u8]) -> bool {
    if want.fold_case {
        want.bytes.eq_ignore_ascii_case(have)
    } else {
        want.bytes == have
    }
}

fn is_prefix(prefix: &[Part], path: &[u8]) -> bool {
    let mut parts = components(path);
    prefix
        .iter()
        .all(|want| parts.next().is_some_and(|have| part_eq(want, have)))
}

/// The mailboxes a chain of backups holds, as `(domain, user)` in the archive's spelling (with a
/// domain's `#public` and other `#` folders among the users), from the chain's manifests (the
/// `.sha256` sidecars, [`super::Backup::manifest`], one per backup in order), so a selection can
/// be checked before anything is restored.
pub fn mailboxes(
    chain: &[super::Backup],
    manifests: &[Vec<(String, Vec<u8>)>],
) -> std::collections::BTreeSet<(String, String)> {
    let mut out = std::collections::BTreeSet::new();
    for (backup, manifest) in chain.iter().zip(manifests) {
        let mail = format!("{}/mail/", backup.meta.store_prefix.trim_end_matches('/'));
        for (_, path) in manifest {
            let Some(rest) = path.strip_prefix(mail.as_bytes()) else {
                continue;
            };
            let mut parts = rest.splitn(3, |&b| b == b'/');
            if let (Some(d), Some(u), Some(_)) = (parts.next(), parts.next(), parts.next())
                && !d.starts_with(b"#")
            {
                out.insert((
                    String::from_utf8_lossy(d).into_owned(),
                    String::from_utf8_lossy(u).into_owned(),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_parse_and_select() {
        assert_eq!(
            Mask::parse_list("cfg, Mail").expect("ok"),
            [Mask::Cfg, Mask::Mail]
        );
        assert!(Mask::parse_list("cfg,mails").is_err());
        let s = Selection::new(&[Mask::Cfg, Mask::Logs], "store", None, None, None);
        assert!(s.matches(b"users.cfg") && s.matches(b"store/logs/config.log"));
        assert!(!s.matches(b"users.cfg.bak") && !s.matches(b"store/mail/x"));
        assert!(s.enters(b"store") && !s.enters(b"license"));
        assert!(Selection::new(&[Mask::All], "store", None, None, None).matches(b"anything"));
    }

    #[test]
    fn exact_paths_select_themselves_and_what_is_below_and_enter_what_is_above() {
        let s = Selection::paths(&[
            b"store/mail/d/u/INBOX/index.fld".to_vec(),
            b"store/mail/d/u/INBOX/index.bad".to_vec(),
            b"users.cfg".to_vec(),
            b"store/logs/".to_vec(),
        ]);
        for yes in [
            &b"store/mail/d/u/INBOX/index.fld"[..],
            b"users.cfg",
            b"store/logs/config.log",
            b"store/logs",
            b"store//logs/x",
        ] {
            assert!(s.matches(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"store/mail/d/u/INBOX/index.fld2"[..],
            b"store/mail/d/u/INBOX",
            b"users.cfg.bak",
            b"store",
            b"",
        ] {
            assert!(!s.matches(no), "{}", String::from_utf8_lossy(no));
        }
        for dir in [
            &b""[..],
            b"store",
            b"store/mail/d/u/INBOX",
            b"store/logs/old",
        ] {
            assert!(s.enters(dir), "{}", String::from_utf8_lossy(dir));
        }
        for dir in [
            &b"store/mail/d/v"[..],
            b"license",
            b"store/mail/d/u/INBOX/#msgs",
        ] {
            assert!(!s.enters(dir), "{}", String::from_utf8_lossy(dir));
        }
        assert!(Selection::paths(&[Vec::new()]).matches(b"anything"));
    }

    #[test]
    fn domain_user_folder_narrow_mail_case_insensitively() {
        let s = Selection::new(
            &[Mask::All],
            "store",
            Some("Example.com"),
            Some("JDoe"),
            Some("INBOX/Sub"),
        );
        assert!(s.matches(b"store/mail/example.com/jdoe/INBOX/Sub/#msgs/00000001.eml"));
        assert!(!s.matches(b"store/mail/example.com/jdoe/INBOX/status.fld"));
        assert!(!s.matches(b"store/mail/example.com/jdoe2/INBOX/Sub/x"));
        assert!(s.enters(b"store/mail/example.com") && !s.enters(b"store/mail/other.org"));
        let user = Selection::new(&[], "data/store", Some("example.com"), Some("jdoe"), None);
        assert!(user.matches(b"data/store/mail/example.com/jdoe/folder.map"));
        assert!(!user.matches(b"data/store/mail/example.com/jdoe.old/folder.map"));
        // A domain under a mask without mail selects nothing.
        let none = Selection::new(&[Mask::Cfg], "store", Some("example.com"), None, None);
        assert!(!none.matches(b"store/mail/example.com/jdoe/x") && !none.matches(b"users.cfg"));
    }
}
