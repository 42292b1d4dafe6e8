//! `kc-store reindex`: the vendor's way of rebuilding a folder's index, as one undoable change.
//!
//! With the server stopped, each selected folder's `index.fld` is renamed `index.bad` (the
//! vendor's procedure for 7.2.4 and older [C]; later versions rebuild a missing index at start
//! too [C]) and its `search.fld` `search.bad`, so the server rebuilds both from `#msgs`. The moves
//! are one [`Step::MoveFiles`]: the pre-change backup holds every moved file, and
//! `kc-backup undo` puts each back from it.
//!
//! Nothing is overwritten: when a folder already has an `index.bad` (an earlier reindex), it is
//! kept, and the index goes to the first free `index.bad.1`, `index.bad.2`, …; the plan says so.
//! A folder with neither file (already moved aside, never indexed) has nothing to move and is
//! named in the plan's warnings.
//!
//! The folders come from `--domain`/`--user`/`--folder`, or from a `kc-store check --json`
//! report ([`read_check`]): exactly the folders of its findings that a rebuilt index answers.

use std::path::{Path, PathBuf};

use crate::account::Layout;
use crate::change::{FileMove, Plan, Step};
use crate::config::schema::INDEX;
use crate::install::{Install, is_plain_relative};
use crate::store::scope::{self, Place, ScopeError, Selection};
use crate::store::{MESSAGES_DIR, is_folder_inside};
use crate::store_check::{Finding, TOOL};

/// Why a reindex could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    /// `--domain`/`--user` select nothing that is in the store.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// The `--from-check` report could not be read.
    #[error("{path}: cannot read it")]
    Read {
        /// The report.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// A line of the `--from-check` report is not a finding of a folder in this store.
    #[error("{path}:{line}: {message}")]
    CheckLine {
        /// The report.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// `--folder` names no one folder of the selected mailbox.
    #[error("--folder {folder}: {why}")]
    Folder {
        /// The folder as given.
        folder: String,
        /// Why it is refused.
        why: String,
    },
    /// A directory of a selected mailbox could not be listed.
    #[error("{path}: cannot list it (its folders cannot be known); nothing was changed")]
    Unlisted {
        /// The directory.
        path: PathBuf,
        /// Why it could not be listed.
        #[source]
        source: std::io::Error,
    },
}

/// A folder, where the store has it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Folder {
    /// `<domain>/<user>/<folder>` (`#public/<folder>` for the server's own), for messages.
    pub name: String,
    /// The folder's directory.
    pub dir: PathBuf,
}

/// The folders a `kc-store check --json` report names, read back.
#[derive(Debug, Clone, Default)]
pub struct CheckTargets {
    /// The folders whose findings a rebuilt index answers, each once.
    pub folders: Vec<Folder>,
    /// Findings a rebuilt index does not answer (a missing status.fld, an ACL naming a gone
    /// account): left out.
    pub skipped: usize,
}

fn display_name(place: &Place, rel: &Path) -> String {
    let mut name = if place.domain.is_empty() {
        place.user.clone()
    } else {
        format!("{}/{}", place.domain, place.user)
    };
    if !rel.as_os_str().is_empty() {
        name.push('/');
        name.push_str(&rel.to_string_lossy());
    }
    name
}

/// Reads a `kc-store check --json` report: one finding a line (blank lines allowed). Every line
/// must be a finding, naming a folder that is in this store; the first that is not stops it,
/// with `FILE:LINE`. Returns the folders of the findings that [`crate::store_check::Kind::reindex_fixes`].
pub fn read_check(install: &Install, path: &Path) -> Result<CheckTargets, ReindexError> {
    let text = std::fs::read(path).map_err(|source| ReindexError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mail = install.mail_dir();
    let mut out = CheckTargets::default();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let bad = |message: String| ReindexError::CheckLine {
            path: path.to_owned(),
            line: i + 1,
            message,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let finding: Finding = serde_json::from_slice(line)
            .map_err(|e| bad(format!("not a finding of `kc-store check --json`: {e}")))?;
        if !finding.kind.reindex_fixes() {
            out.skipped += 1;
            continue;
        }
        let one = |s: &str| !s.is_empty() && is_plain_relative(Path::new(s)) && !s.contains('/');
        let folder = Path::new(&finding.folder);
        if !one(&finding.user)
            || !(finding.domain.is_empty()
                || one(&finding.domain) && !finding.domain.starts_with('#'))
            || !is_plain_relative(folder)
            || folder.iter().any(is_folder_inside)
        {
            return Err(bad(format!(
                "{:?} / {:?} / {:?} is not a folder of a mailbox",
                finding.domain, finding.user, finding.folder
            )));
        }
        let place = if finding.domain.is_empty() {
            mail.join(&finding.user)
        } else {
            mail.join(&finding.domain).join(&finding.user)
        };
        let dir = place.join(folder);
        if !dir.is_dir() {
            return Err(bad(format!(
                "{}: no such folder in this store (was the check run on another one?)",
                dir.display()
            )));
        }
        let name = [finding.domain.as_str(), &finding.user, &finding.folder]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        out.folders.push(Folder { name, dir });
    }
    out.folders.sort();
    out.folders.dedup();
    Ok(out)
}

/// The folders a selection covers: every directory holding an index or a search index, or the
/// one `--folder` names (relative to the one mailbox selected).
pub fn select(
    install: &Install,
    selection: &Selection,
    folder: Option<&Path>,
) -> Result<Vec<Folder>, ReindexError> {
    let places = scope::places(&install.mail_dir(), selection)?;
    if let Some(folder) = folder {
        let text = folder.display().to_string();
        let bad = |why: String| ReindexError::Folder {
            folder: text.clone(),
            why,
        };
        if !is_plain_relative(folder) || folder.iter().any(is_folder_inside) {
            return Err(bad(
                "not a folder path (give it relative to the mailbox, as INBOX/Projects)".into(),
            ));
        }
        let place = match places.as_slice() {
            [one] => one,
            [] => return Err(bad("--user selects no mailbox".into())),
            many => {
                return Err(bad(format!(
                    "--user selects {} mailboxes ({}); give --domain too",
                    many.len(),
                    many.iter()
                        .map(|p| display_name(p, Path::new("")))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        let dir = place.dir.join(folder);
        if !dir.is_dir() {
            return Err(bad(format!("{}: no such folder", dir.display())));
        }
        return Ok(vec![Folder {
            name: display_name(place, folder),
            dir,
        }]);
    }
    let mut out = Vec::new();
    for place in &places {
        let (dirs, errors) = scope::directories(&place.dir);
        if let Some((path, source)) = errors.into_iter().next() {
            return Err(ReindexError::Unlisted { path, source });
        }
        out.extend(
            dirs.into_iter()
                .filter(|d| d.holds.index || d.holds.search)
                .map(|d| Folder {
                    name: display_name(place, &d.rel),
                    dir: d.path,
                }),
        );
    }
    Ok(out)
}

/// The first name among `base`, `base.1`, `base.2`, … that nothing in `dir` has.
fn free_name(dir: &Path, base: &str) -> String {
    let taken = |n: &str| dir.join(n).symlink_metadata().is_ok();
    if !taken(base) {
        return base.to_owned();
    }
    (1..)
        .map(|k| format!("{base}.{k}"))
        .find(|n| !taken(n))
        .expect("some number is free")
}

/// The index [`aside_moves`] moved aside last in `dir`: the highest of `index.bad` (the first,
/// see [`free_name`]), `index.bad.1`, `index.bad.2`, …; `None` when there is none.
pub(crate) fn newest_aside(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let base = INDEX.aside;
    let mut newest: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let rank = match name.to_str().and_then(|n| n.strip_prefix(base)) {
            Some("") => 0,
            Some(rest) => match rest.strip_prefix('.').and_then(|k| k.parse::<u64>().ok()) {
                Some(k) => k + 1,
                None => continue,
            },
            None => continue,
        };
        if newest.as_ref().is_none_or(|(r, _)| rank > *r) {
            newest = Some((rank, entry.path()));
        }
    }
    Ok(newest.map(|(_, p)| p))
}

/// The moves that put the `index.fld` and `search.fld` of the folder `dir` (`name` in messages)
/// aside, each to the first free name, with `file -> name` for the audit line. What is not a
/// regular file is left, and said in `warnings`, as is an aside name already taken.
pub(crate) fn aside_moves(
    install: &Install,
    dir: &Path,
    name: &str,
    warnings: &mut Vec<String>,
) -> Vec<(String, FileMove)> {
    let logical = |p: &Path| install.logical(p).unwrap_or_else(|| p.to_path_buf());
    let mut out = Vec::new();
    for (file, aside) in [
        (INDEX.file, INDEX.aside),
        (INDEX.search, INDEX.search_aside),
    ] {
        let from = dir.join(file);
        match from.symlink_metadata() {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                warnings.push(format!(
                    "{}: not a regular file; left as it is",
                    from.display()
                ));
                continue;
            }
            Err(_) => continue,
        }
        let to = free_name(dir, aside);
        if to != aside {
            warnings.push(format!(
                "{name}: {aside} is there already (an earlier reindex?) and is kept; {file} goes to {to}"
            ));
        }
        out.push((
            format!("{file} -> {to}"),
            FileMove {
                from: logical(&from),
                to: logical(&dir.join(&to)),
            },
        ));
    }
    out
}

/// Plans moving each folder's `index.fld` and `search.fld` aside. Reads only the folders'
/// directory entries.
pub fn plan(install: &Install, folders: &[Folder]) -> Plan {
    let mut moves = Vec::new();
    let mut warnings = Vec::new();
    let mut lines = Vec::new();
    let mut nothing = Vec::new();
    for folder in folders {
        let mut moved = Vec::new();
        for (what, m) in aside_moves(install, &folder.dir, &folder.name, &mut warnings) {
            moved.push(what);
            moves.push(m);
        }
        if moved.is_empty() {
            nothing.push(folder.name.clone());
        } else {
            lines.push(crate::audit::line(
                TOOL,
                &format!(
                    "Reindex folder '{}': {} (the server rebuilds them from {MESSAGES_DIR})",
                    folder.name,
                    moved.join(", ")
                ),
            ));
        }
    }
    if !nothing.is_empty() {
        warnings.push(format!(
            "nothing to move in {} folder{} (no {} or {}: already moved aside?): {}",
            nothing.len(),
            if nothing.len() == 1 { "" } else { "s" },
            INDEX.file,
            INDEX.search,
            nothing.join(", ")
        ));
    }
    let reindexed = lines.len();
    let files = moves.len();
    let mut steps = Vec::new();
    if !moves.is_empty() {
        steps.push(Step::MoveFiles { moves });
        steps.push(Step::AppendLines {
            path: Layout::new(install).config_log(),
            lines,
        });
    }
    Plan {
        tool: TOOL.into(),
        description: format!(
            "reindex {reindexed} folder{}: {files} file{} moved aside for the server to rebuild",
            if reindexed == 1 { "" } else { "s" },
            if files == 1 { "" } else { "s" }
        ),
        steps,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_names_never_overwrite() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(free_name(tmp.path(), "index.bad"), "index.bad");
        std::fs::write(tmp.path().join("index.bad"), "").expect("write");
        std::fs::write(tmp.path().join("index.bad.1"), "").expect("write");
        assert_eq!(free_name(tmp.path(), "index.bad"), "index.bad.2");
    }

    #[test]
    fn the_newest_aside_is_the_last_free_name_given() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(newest_aside(tmp.path()).expect("reads"), None);
        for _ in 0..3 {
            let name = free_name(tmp.path(), "index.bad");
            std::fs::write(tmp.path().join(&name), "").expect("write");
            let newest = newest_aside(tmp.path()).expect("reads").expect("one");
            assert_eq!(newest, tmp.path().join(name));
        }
        std::fs::write(tmp.path().join("index.bad.x"), "").expect("write");
        let newest = newest_aside(tmp.path()).expect("reads").expect("one");
        assert_eq!(newest, tmp.path().join("index.bad.2"));
    }
}
