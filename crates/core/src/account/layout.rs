//! Where the store's parts and each account's mailbox directory are.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{AccountError, Address};
use crate::install::Install;
use crate::store;

/// Where the store's parts are, relative to the install root (the paths of change steps).
#[derive(Debug, Clone)]
pub struct Layout {
    /// The store directory, relative to the root (`store` when it lies outside).
    pub store: PathBuf,
    /// The log directory (holding `config.log`, `warning.log`), relative to the root.
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

    /// `<store>/mail`, which holds one directory per domain.
    pub fn mail(&self) -> PathBuf {
        self.store.join("mail")
    }

    /// `<store>/mail/<dir>`: the directory of a domain, `dir` being its name as on disk.
    pub fn domain(&self, dir: impl AsRef<Path>) -> PathBuf {
        self.mail().join(dir)
    }

    /// The server's `config.log`, to which the tools append the config records they change
    /// (see [`crate::audit`]).
    pub fn config_log(&self) -> PathBuf {
        self.logs.join(crate::audit::CONFIG_LOG)
    }

    /// The server's `warning.log`, to which the tools append their lines too (see
    /// [`crate::audit`]).
    pub fn warning_log(&self) -> PathBuf {
        self.logs.join(crate::audit::WARNING_LOG)
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
