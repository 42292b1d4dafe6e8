//! Where a Kerio Connect install lives: its root, its two config files, and its store.
//!
//! The root comes from `--server` (or `KC_SERVER`, resolved by the command line), else the OS's
//! default (KERIO-FORMAT.md §1). The store is `--store` when given, else the `StoreDir` of the
//! `Directories` table of mailserver.cfg (absolute, or relative to the root), else `<root>/store`.
//! The store is often elsewhere: on another disk, or a Docker volume behind a symlink.
//!
//! The change protocol and the backups name every path in one space of *logical* paths: config
//! files relative to the root, and the store under its prefix ([`Install::store_prefix`]): its
//! path below the root when it is inside, else `store`. [`Install::resolve`] maps them back.

use std::path::{Component, Path, PathBuf};

use crate::config::schema::{DIRECTORIES, LOG_ROOT, MAILSERVER_CFG, USERS_CFG};
use crate::config::{ConfigError, Document, view};

/// The toolkit's journal of changes, in the install root (see `change`).
pub const JOURNAL_DIR: &str = "kc-journal";
/// Where backups go unless `--backup-dir` says otherwise, in the install root.
pub const BACKUP_DIR: &str = "kc-backups";
/// The logical prefix of a store outside the root (in plans, journals and archives).
pub const OUTSIDE_STORE_PREFIX: &str = "store";

/// What can go wrong finding an install.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The root given is not a directory.
    #[error("{root}: no such directory (give the install root with --server or KC_SERVER)")]
    NoRoot {
        /// The root given.
        root: PathBuf,
    },
    /// The root lacks a config file.
    #[error("{root} is not a Kerio Connect install: it has no {file}")]
    NotAnInstall {
        /// The root given.
        root: PathBuf,
        /// The config file missing.
        file: &'static str,
    },
    /// The store path is not a store directory.
    #[error("{store}: the store directory {why} ({origin}); give the right one with --store")]
    BadStore {
        /// The store path.
        store: PathBuf,
        /// What is wrong with it: `does not exist`, `is not a directory`, …
        why: &'static str,
        /// Where the path came from.
        origin: StoreSource,
    },
    /// The root or the store could not be resolved to its real path.
    #[error("{path}: cannot resolve the install's paths")]
    Resolve {
        /// The root or the store, as given.
        path: PathBuf,
        /// Why it could not be resolved.
        #[source]
        source: std::io::Error,
    },
    /// mailserver.cfg could not be read for the store's path.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Where the store path came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreSource {
    /// Given with `--store`.
    Flag,
    /// `Directories/StoreDir` of mailserver.cfg.
    StoreDir,
    /// `<root>/store`, as mailserver.cfg sets none.
    Default,
}

impl std::fmt::Display for StoreSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreSource::Flag => "given with --store",
            StoreSource::StoreDir => "Directories/StoreDir of mailserver.cfg",
            StoreSource::Default => "the default <root>/store: mailserver.cfg sets no StoreDir",
        })
    }
}

/// A located install.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Install {
    /// The install's root directory (`/opt/kerio/mailserver`), as given.
    pub root: PathBuf,
    /// `<root>/mailserver.cfg`.
    pub mailserver_cfg: PathBuf,
    /// `<root>/users.cfg`.
    pub users_cfg: PathBuf,
    /// The store directory, as configured (joined to the root when relative).
    pub store: PathBuf,
    /// Where the store's path came from.
    pub store_source: StoreSource,
    /// The store's logical prefix: its path below the root, or `store` when it is outside.
    pub store_prefix: PathBuf,
    /// Whether the store is outside the root (through a symlink, or configured so).
    pub store_outside: bool,
    /// The log directory, logical (`LogGlobal/RelativePathsRoot` when it is inside the root or
    /// the store, else `<store>/logs`).
    pub logs: PathBuf,
    /// What the admin should hear once about how the install was read (stderr).
    pub notes: Vec<String>,
}

/// The install root a fresh server of this OS has (KERIO-FORMAT.md §1 [C]).
pub fn default_root() -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(r"C:\Program Files\Kerio\MailServer")
    } else if cfg!(target_os = "macos") {
        PathBuf::from("/usr/local/kerio/mailserver")
    } else {
        PathBuf::from("/opt/kerio/mailserver")
    }
}

/// A `D:\...` or `\\server\share` path, which means nothing on a Unix host.
fn is_windows_path(text: &str) -> bool {
    let b = text.as_bytes();
    (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':') || text.starts_with("\\\\")
}

/// The store mailserver.cfg names (`Directories/StoreDir`, relative to the root), or the
/// default `<root>/store`.
fn configured_store(root: &Path, doc: &Document) -> Result<(PathBuf, StoreSource), InstallError> {
    match view::store_dir(doc) {
        Some(dir) if is_windows_path(dir) && !cfg!(windows) => Err(InstallError::BadStore {
            store: PathBuf::from(dir),
            why: "is a Windows path, and this host is not Windows",
            origin: StoreSource::StoreDir,
        }),
        Some(dir) => Ok((root.join(dir), StoreSource::StoreDir)),
        None => Ok((root.join("store"), StoreSource::Default)),
    }
}

/// Checks the store is a directory that can be one (not `/`, not holding the root), and gives
/// its logical prefix and whether it is outside the root.
fn check_store(
    root: &Path,
    store: &Path,
    source: StoreSource,
) -> Result<(PathBuf, bool), InstallError> {
    let bad = |why| InstallError::BadStore {
        store: store.to_owned(),
        why,
        origin: source,
    };
    if !store.exists() {
        return Err(bad("does not exist"));
    }
    if !store.is_dir() {
        return Err(bad("is not a directory"));
    }
    let real_root = canonical(root)?;
    let real_store = canonical(store)?;
    if real_store.parent().is_none() {
        return Err(bad("is the filesystem's root /"));
    }
    if real_root.starts_with(&real_store) {
        return Err(bad("holds the install root itself"));
    }
    Ok(match real_store.strip_prefix(&real_root) {
        Ok(rel) => (rel.to_path_buf(), false),
        Err(_) => (PathBuf::from(OUTSIDE_STORE_PREFIX), true),
    })
}

fn canonical(path: &Path) -> Result<PathBuf, InstallError> {
    fs_err::canonicalize(path).map_err(|e| InstallError::Resolve {
        path: path.to_owned(),
        source: e,
    })
}

impl Install {
    /// Finds the install at `root` (the OS default when `None`), reading `Directories/StoreDir`
    /// from its mailserver.cfg unless `store` overrides it.
    pub fn locate(root: Option<&Path>, store: Option<&Path>) -> Result<Install, InstallError> {
        let root = root.map_or_else(default_root, Path::to_path_buf);
        if !root.is_dir() {
            return Err(InstallError::NoRoot { root });
        }
        let mailserver_cfg = root.join(MAILSERVER_CFG);
        let users_cfg = root.join(USERS_CFG);
        for (path, file) in [(&mailserver_cfg, MAILSERVER_CFG), (&users_cfg, USERS_CFG)] {
            if !path.is_file() {
                return Err(InstallError::NotAnInstall { root, file });
            }
        }
        let doc = Document::load(&mailserver_cfg)?;
        let (store, store_source) = match store {
            Some(store) => (store.to_path_buf(), StoreSource::Flag),
            None => configured_store(&root, &doc)?,
        };
        let (store_prefix, store_outside) = check_store(&root, &store, store_source)?;
        let mut install = Install {
            root,
            mailserver_cfg,
            users_cfg,
            store,
            store_source,
            store_prefix,
            store_outside,
            logs: PathBuf::new(),
            notes: Vec::new(),
        };
        install.note_stale_store();
        install.find_logs(&doc);
        let _ = DIRECTORIES; // ArchiveDir and BackupDir are read by the archive's exclusions.
        Ok(install)
    }

    /// A `store` directory in the root that is not the store in use is left alone: said once.
    fn note_stale_store(&mut self) {
        let stale = self.root.join("store");
        let real_store = canonical(&self.store).ok();
        if self.store_source != StoreSource::Default
            && stale.is_dir()
            && canonical(&stale).is_ok_and(|s| Some(s) != real_store)
        {
            self.notes.push(format!(
                "using the store {} ({}); {} is another directory and is left alone",
                self.store.display(),
                self.store_source,
                stale.display()
            ));
        }
    }

    /// The log directory: `LogGlobal/RelativePathsRoot` when it is inside the root or the
    /// store, else `<store>/logs` (with a note).
    fn find_logs(&mut self, doc: &Document) {
        self.logs = self.store_prefix.join("logs");
        let Some(dir) = view::location(doc, LOG_ROOT) else {
            return;
        };
        let full = self.root.join(dir);
        match full.canonicalize().ok().and_then(|r| self.logical(&r)) {
            Some(logical) => self.logs = logical,
            None => self.notes.push(format!(
                "the log directory {dir} ({}/{}) is outside the install and its store; \
                 audit lines go to {}",
                LOG_ROOT.0,
                LOG_ROOT.1,
                self.resolve(&self.logs).display()
            )),
        }
    }

    /// `store/mail`: one directory per domain.
    pub fn mail_dir(&self) -> PathBuf {
        self.store.join("mail")
    }

    /// The log directory, as it is on disk.
    pub fn logs_dir(&self) -> PathBuf {
        self.resolve(&self.logs)
    }

    /// The real path of a logical one (see the module's doc). Logical paths are relative and
    /// never hold `..`: the callers make them from names checked for that.
    pub fn resolve(&self, logical: &Path) -> PathBuf {
        if self.store_outside
            && let Ok(rest) = logical.strip_prefix(&self.store_prefix)
        {
            return self.store.join(rest);
        }
        self.root.join(logical)
    }

    /// The logical path of a real one under the store or the root (as given, or resolved).
    pub fn logical(&self, real: &Path) -> Option<PathBuf> {
        let plain = |p: &Path| -> Option<PathBuf> {
            if let Ok(rest) = p.strip_prefix(&self.store) {
                return Some(self.store_prefix.join(rest));
            }
            let rel = p.strip_prefix(&self.root).ok()?;
            (!(self.store_outside && rel.starts_with(OUTSIDE_STORE_PREFIX)))
                .then(|| rel.to_path_buf())
        };
        if let Some(found) = plain(real) {
            return Some(found);
        }
        let (root, store) = (
            self.root.canonicalize().ok()?,
            self.store.canonicalize().ok()?,
        );
        if let Ok(rest) = real.strip_prefix(&store) {
            return Some(self.store_prefix.join(rest));
        }
        let rel = real.strip_prefix(&root).ok()?;
        (!(self.store_outside && rel.starts_with(OUTSIDE_STORE_PREFIX))).then(|| rel.to_path_buf())
    }

    /// The logical path of the store's `mail/`.
    pub fn mail_prefix(&self) -> PathBuf {
        self.store_prefix.join("mail")
    }
}

/// Whether a logical path is well formed: relative, and only plain names.
pub fn is_plain_relative(path: &Path) -> bool {
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(store_dir: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = store_dir.map_or(String::new(), |d| {
            format!(
                "<table name=\"Directories\"><variable name=\"StoreDir\">{d}</variable></table>"
            )
        });
        std::fs::write(
            dir.path().join("mailserver.cfg"),
            format!("<config>{table}</config>"),
        )
        .expect("write");
        std::fs::write(dir.path().join("users.cfg"), "<config/>").expect("write");
        dir
    }

    #[test]
    fn store_defaults_to_root_store() {
        let dir = install(None);
        std::fs::create_dir(dir.path().join("store")).expect("mkdir");
        let found = Install::locate(Some(dir.path()), None).expect("found");
        assert_eq!(found.store, dir.path().join("store"));
        assert_eq!(found.store_source, StoreSource::Default);
        assert_eq!(found.mail_dir(), dir.path().join("store/mail"));
    }

    #[test]
    fn store_dir_relative_or_absolute_and_flag_overrides() {
        let dir = install(Some("data/store"));
        std::fs::create_dir_all(dir.path().join("data/store")).expect("mkdir");
        let found = Install::locate(Some(dir.path()), None).expect("found");
        assert_eq!(found.store, dir.path().join("data/store"));
        assert_eq!(found.store_source, StoreSource::StoreDir);

        let elsewhere = tempfile::tempdir().expect("tempdir");
        let abs = install(Some(&elsewhere.path().display().to_string()));
        let found = Install::locate(Some(abs.path()), None).expect("found");
        assert_eq!(found.store, elsewhere.path());

        let found = Install::locate(Some(dir.path()), Some(elsewhere.path())).expect("found");
        assert_eq!(
            (found.store.as_path(), found.store_source),
            (elsewhere.path(), StoreSource::Flag)
        );
    }

    #[test]
    fn errors_name_what_is_missing() {
        let dir = install(Some("/nonexistent/kc-store"));
        let err = Install::locate(Some(dir.path()), None).expect_err("no store");
        assert_eq!(
            err.to_string(),
            "/nonexistent/kc-store: the store directory does not exist (Directories/StoreDir of mailserver.cfg); give the right one with --store"
        );
        std::fs::remove_file(dir.path().join("users.cfg")).expect("rm");
        let err = Install::locate(Some(dir.path()), None).expect_err("no users.cfg");
        assert!(
            err.to_string()
                .ends_with("is not a Kerio Connect install: it has no users.cfg"),
            "{err}"
        );
        let err =
            Install::locate(Some(Path::new("/nonexistent/kc-root")), None).expect_err("no root");
        assert!(
            err.to_string()
                .starts_with("/nonexistent/kc-root: no such directory"),
            "{err}"
        );
    }
}
