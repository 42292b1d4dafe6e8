//! `folder.map`: a mailbox's subscriptions to folders other users share with it
//! (KERIO-FORMAT.md §3: [T] that it is simple XML, [A] its layout):
//!
//! ```xml
//! <map>
//!   <folder owner="asmith@example.com" path="Calendar" name="Anna's calendar"/>
//! </map>
//! ```
//!
//! Edits splice the attribute values they change and keep every other byte.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::config::escape_attr;

use crate::config::schema::FOLDER_MAP as NAMES;

/// Why a `folder.map` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FolderMapError {
    /// It is not well-formed XML.
    #[error("{path}:{line}:{column}: malformed folder.map: {message}")]
    Xml {
        /// The file.
        path: PathBuf,
        /// Where the XML parser stopped: line.
        line: usize,
        /// Where the XML parser stopped: column.
        column: usize,
        /// The XML parser's reason.
        message: String,
    },
    /// It holds bytes that are not UTF-8.
    #[error("{path}: not valid UTF-8")]
    Encoding {
        /// The file.
        path: PathBuf,
    },
}

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The address of the user sharing the folder.
    pub owner: String,
    /// The folder's path in the owner's mailbox.
    pub path: String,
    /// The folder's name.
    pub name: String,
    element: Range<usize>,
    owner_value: Option<Range<usize>>,
}

/// A parsed `folder.map`.
#[derive(Debug, Clone)]
pub struct FolderMap {
    text: String,
    entries: Vec<Entry>,
}

impl FolderMap {
    /// Parses the bytes of a folder.map; `path` is for errors.
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<FolderMap, FolderMapError> {
        let text = String::from_utf8(bytes).map_err(|_| FolderMapError::Encoding {
            path: path.to_owned(),
        })?;
        let entries = {
            let doc = roxmltree::Document::parse(&text).map_err(|e| FolderMapError::Xml {
                path: path.to_owned(),
                line: e.pos().row as usize,
                column: e.pos().col as usize,
                message: e.to_string(),
            })?;
            doc.descendants()
                .filter(|n| n.has_tag_name(NAMES.element))
                .map(|n| Entry {
                    owner: n.attribute(NAMES.owner).unwrap_or_default().to_owned(),
                    path: n.attribute(NAMES.path).unwrap_or_default().to_owned(),
                    name: n.attribute(NAMES.name).unwrap_or_default().to_owned(),
                    element: n.range(),
                    owner_value: n
                        .attributes()
                        .find(|a| a.name() == NAMES.owner)
                        .map(|a| a.range_value()),
                })
                .collect()
        };
        Ok(FolderMap { text, entries })
    }

    /// The subscriptions, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether a subscription is to a folder owned by `address` (case-insensitively).
    pub fn names(&self, address: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.owner.eq_ignore_ascii_case(address))
    }

    /// The file with every `owner` equal to `old` (case-insensitively) set to `new`, and how many
    /// entries changed.
    pub fn renamed(&self, old: &str, new: &str) -> (Vec<u8>, usize) {
        self.renamed_with(|owner| owner.eq_ignore_ascii_case(old).then_some(new))
    }

    /// The file with every `owner` that `new_of` gives a new address for set to it, in one pass
    /// (many renames at once), and how many entries changed.
    pub fn renamed_with<'n>(&self, new_of: impl Fn(&str) -> Option<&'n str>) -> (Vec<u8>, usize) {
        let escaped: Vec<(Range<usize>, String)> = self
            .entries
            .iter()
            .filter_map(|e| Some((e.owner_value.clone()?, escape_attr(new_of(&e.owner)?))))
            .collect();
        let edits: Vec<(Range<usize>, &str)> = escaped
            .iter()
            .map(|(r, new)| (r.clone(), new.as_str()))
            .collect();
        let n = edits.len();
        (self.spliced(edits), n)
    }

    /// The file without the subscriptions to folders owned by `address`, each with its line when
    /// it stands alone on one, and how many were removed.
    pub fn without_owner(&self, address: &str) -> (Vec<u8>, usize) {
        let bytes = self.text.as_bytes();
        let edits: Vec<(Range<usize>, &str)> = self
            .entries
            .iter()
            .filter(|e| e.owner.eq_ignore_ascii_case(address))
            .map(|e| {
                let mut start = e.element.start;
                while start > 0 && matches!(bytes[start - 1], b' ' | b'\t') {
                    start -= 1;
                }
                let mut end = e.element.end;
                let at_line_start = start == 0 || bytes[start - 1] == b'\n';
                if at_line_start && bytes[end..].starts_with(b"\r\n") {
                    end += 2;
                } else if at_line_start && bytes[end..].starts_with(b"\n") {
                    end += 1;
                } else {
                    start = e.element.start;
                }
                (start..end, "")
            })
            .collect();
        let n = edits.len();
        (self.spliced(edits), n)
    }

    fn spliced(&self, mut edits: Vec<(Range<usize>, &str)>) -> Vec<u8> {
        edits.sort_by_key(|(r, _)| r.start);
        let mut out = String::with_capacity(self.text.len());
        let mut at = 0;
        for (range, with) in edits {
            out.push_str(&self.text[at..range.start]);
            out.push_str(with);
            at = range.end;
        }
        out.push_str(&self.text[at..]);
        out.into_bytes()
    }

    /// The file's bytes, with the edits made so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<map>\r\n  <folder owner=\"asmith@example.com\" path=\"Calendar\" name=\"Anna&apos;s calendar\"/>\r\n  <folder name=\"x\" owner='bwhite@example.com' path=\"INBOX/Sub\"/>\r\n</map>\r\n";

    fn map() -> FolderMap {
        FolderMap::parse(Path::new("folder.map"), MAP.as_bytes().to_vec()).expect("parses")
    }

    #[test]
    fn reads_entries() {
        let m = map();
        let e = &m.entries()[0];
        assert_eq!(
            (e.owner.as_str(), e.path.as_str(), e.name.as_str()),
            ("asmith@example.com", "Calendar", "Anna's calendar")
        );
        assert_eq!(m.entries()[1].owner, "bwhite@example.com");
        assert!(m.names("ASmith@Example.com"));
        assert_eq!(m.as_bytes(), MAP.as_bytes());
    }

    #[test]
    fn rename_splices_only_the_owner_values() {
        let (bytes, n) = map().renamed("BWHITE@example.com", "b.white@example.org");
        assert_eq!(n, 1);
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            MAP.replace("'bwhite@example.com'", "'b.white@example.org'")
        );
        let (bytes, n) = map().renamed("nobody@example.com", "x@y");
        assert_eq!((bytes, n), (MAP.as_bytes().to_vec(), 0));
    }

    #[test]
    fn renamed_with_renames_many_in_one_pass_and_escapes() {
        let (bytes, n) = map().renamed_with(|owner| match owner {
            "asmith@example.com" => Some("a&b@example.com"),
            "bwhite@example.com" => Some("asmith@example.com"),
            _ => None,
        });
        assert_eq!(n, 2);
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            MAP.replace("\"asmith@example.com\"", "\"a&amp;b@example.com\"")
                .replace("'bwhite@example.com'", "'asmith@example.com'")
        );
    }

    #[test]
    fn without_owner_removes_the_whole_line() {
        let (bytes, n) = map().without_owner("asmith@example.com");
        assert_eq!(n, 1);
        let expected = MAP.replace("  <folder owner=\"asmith@example.com\" path=\"Calendar\" name=\"Anna&apos;s calendar\"/>\r\n", "");
        assert_eq!(String::from_utf8(bytes).expect("utf-8"), expected);
    }

    #[test]
    fn malformed_map_names_the_position() {
        let err = FolderMap::parse(
            Path::new("/s/folder.map"),
            b"<map>\n<folder owner=\"a\">\n</map>".to_vec(),
        )
        .expect_err("malformed");
        assert!(
            err.to_string()
                .starts_with("/s/folder.map:3:1: malformed folder.map"),
            "{err}"
        );
    }
}
