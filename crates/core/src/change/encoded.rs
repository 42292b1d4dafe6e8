//! Paths in journals as JSON-safe text: a store may hold names that are not UTF-8 (mail
//! migrated from old systems), which serde_json cannot write as a `PathBuf`. They are written in
//! the archive's encoding (`%XX` for each byte that is not UTF-8, `%25` for `%`), so a journal
//! can name any path the change touched.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serializer};

use crate::archive::{decode_path, encode_path};

fn text(path: &Path) -> String {
    encode_path(path.as_os_str().as_bytes())
}

fn back(text: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(decode_path(text)))
}

pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&text(path))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    Ok(back(&String::deserialize(d)?))
}

/// The same for a list of paths.
pub mod list {
    use super::*;

    pub fn serialize<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(paths.iter().map(|p| text(p)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        Ok(Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| back(t))
            .collect())
    }
}

/// The same for an optional path.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match path {
            Some(p) => s.serialize_some(&text(p)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(|t| back(&t)))
    }
}
