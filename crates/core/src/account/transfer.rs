//! Moving a removed account's mailbox under another account, as the server does.

use std::path::{Path, PathBuf};

use super::{AccountError, Address, Layout, mailbox_path};
use crate::change::Step;
use crate::install::Install;
use crate::store::{self, STATUS_FLD};

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
