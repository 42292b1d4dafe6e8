//! Where a Kerio Connect install lives: its root, its two config files, and its store.
//!
//! The root comes from `--server` (or `KC_SERVER`, resolved by the command line), else the OS's
//! default (KERIO-FORMAT.md §1). The store is `--store` when given, else the `StoreDir` of
//! mailserver.cfg (relative to the root when relative), else `<root>/store`.

use std::path::{Path, PathBuf};

use crate::config::schema::{MAILSERVER_CFG, USERS_CFG};
use crate::config::{ConfigError, Document, view};

/// The toolkit's journal of changes, in the install root (see `change`).
pub const JOURNAL_DIR: &str = "kc-journal";
/// Where backups go unless `--backup-dir` says otherwise, in the install root.
pub const BACKUP_DIR: &str = "kc-backups";

/// What can go wrong finding an install.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{root}: no such directory (give the install root with --server or KC_SERVER)")]
    NoRoot { root: PathBuf },
    #[error("{root} is not a Kerio Connect install: it has no {file}")]
    NotAnInstall { root: PathBuf, file: &'static str },
    #[error("{store}: the store directory does not exist ({why})")]
    NoStore { store: PathBuf, why: &'static str },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Where the store path came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreSource {
    Flag,
    StoreDir,
    Default,
}

/// A located install.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Install {
    pub root: PathBuf,
    pub mailserver_cfg: PathBuf,
    pub users_cfg: PathBuf,
    pub store: PathBuf,
    pub store_source: StoreSource,
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

impl Install {
    /// Finds the install at `root` (the OS default when `None`), reading `StoreDir` from its
    /// mailserver.cfg unless `store` overrides it.
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
        let (store, store_source) = match store {
            Some(store) => (store.to_path_buf(), StoreSource::Flag),
            None => {
                let doc = Document::load(&mailserver_cfg)?;
                match view::store_dir(&doc) {
                    Some(dir) => (root.join(dir), StoreSource::StoreDir),
                    None => (root.join("store"), StoreSource::Default),
                }
            }
        };
        if !store.is_dir() {
            let why = match store_source {
                StoreSource::Flag => "given with --store",
                StoreSource::StoreDir => "StoreDir of mailserver.cfg; override it with --store",
                StoreSource::Default => "the default <root>/store; give it with --store",
            };
            return Err(InstallError::NoStore { store, why });
        }
        Ok(Install {
            root,
            mailserver_cfg,
            users_cfg,
            store,
            store_source,
        })
    }

    /// `store/mail`: one directory per domain.
    pub fn mail_dir(&self) -> PathBuf {
        self.store.join("mail")
    }

    /// `store/logs`.
    pub fn logs_dir(&self) -> PathBuf {
        self.store.join("logs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(store_dir: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = store_dir.map_or(String::new(), |d| {
            format!("<table name=\"Store\"><variable name=\"StoreDir\">{d}</variable></table>")
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
            "/nonexistent/kc-store: the store directory does not exist (StoreDir of mailserver.cfg; override it with --store)"
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
