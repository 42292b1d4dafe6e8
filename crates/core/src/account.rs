//! Accounts across both config files and the store: names and addresses, where a mailbox lives,
//! and the store files that name an address (ACLs in `status.fld` and `#public/acl.fld`, owners
//! in `folder.map`, subscriptions in `sub.fld`), which the writers rename, remove or list.

use std::path::PathBuf;

use crate::store::StoreError;

mod address;
mod layout;
mod names;
mod share;
mod transfer;

pub use address::{Address, NameKey, check_name, name_key};
pub use layout::{Layout, mailbox_dir, mailbox_path};
pub use names::Names;
pub use share::{EditedFile, Listed, ShareFile, edit_share_files, edit_share_files_listing};
pub use transfer::{transfer_steps, transfer_target};

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
