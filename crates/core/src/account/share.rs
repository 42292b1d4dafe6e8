//! The store files that name addresses (ACLs in `status.fld` and `#public/acl.fld`, owners in
//! `folder.map`, subscriptions in `sub.fld`), walked in parallel for the writers to rename,
//! remove or list what names an account.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{AccountError, Layout};
use crate::install::Install;
use crate::store::{self, ACL_FLD, FOLDER_MAP, STATUS_FLD, SUB_FLD};

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
