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

/// Why an account could not be read, found or edited.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A name or address given by the admin breaks the naming rules.
    #[error("{text:?} is not an address: {why}")]
    BadAddress {
        /// The text as given.
        text: String,
        /// Which rule it breaks.
        why: String,
    },
    /// A store file (`status.fld`, `folder.map`, …) could not be read or parsed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A directory of the store could not be listed or a file of it read.
    #[error("{path}")]
    Io {
        /// The directory or file, as opened.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A share file (ACL, `folder.map`, `sub.fld`) could not be edited, or a worker editing
    /// them in parallel panicked; the text says which.
    #[error("{0}")]
    Share(String),
    /// The folder a deleted user's mailbox would be moved to (`#Deleted mailbox …` in the
    /// target mailbox) is already there.
    #[error("{0}: already exists; nothing was moved")]
    FolderExists(PathBuf),
}
