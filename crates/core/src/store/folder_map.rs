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

use quick_xml::events::{BytesStart, Event};

use crate::config::{escape_attr, line_column, whole_lines};

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
    /// The whole element, start tag to end tag.
    element: Range<usize>,
    /// Its start tag, and its end tag when it has one (not `<folder …/>`).
    start_tag: Range<usize>,
    end_tag: Option<Range<usize>>,
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
        let entries = read_entries(path, &text)?;
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
            .flat_map(|e| {
                // Another owner's subscription nested in it stays: only its tags go.
                let keeps_others = self.entries.iter().any(|f| {
                    !f.owner.eq_ignore_ascii_case(address)
                        && f.element.start > e.element.start
                        && f.element.end <= e.element.end
                });
                match (&e.end_tag, keeps_others) {
                    (Some(end_tag), true) => vec![
                        (whole_lines(bytes, e.start_tag.clone()), ""),
                        (whole_lines(bytes, end_tag.clone()), ""),
                    ],
                    _ => vec![(whole_lines(bytes, e.element.clone()), "")],
                }
            })
            .collect();
        // A subscription nested in one that goes goes with it: one edit, not two overlapping.
        let mut edits = edits;
        edits.sort_by_key(|(r, _)| r.start);
        let mut end = 0;
        edits.retain(|(r, _)| {
            let outside = r.start >= end;
            end = end.max(r.end);
            outside
        });
        let n = (self.entries.iter())
            .filter(|e| e.owner.eq_ignore_ascii_case(address))
            .count();
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

/// The `<folder>` elements of a well-formed document (one root; every element closed, end tags
/// matching; attributes once each), with the byte ranges of each element and owner value.
fn read_entries(path: &Path, text: &str) -> Result<Vec<Entry>, FolderMapError> {
    let error = |at: usize, message: String| {
        let (line, column) = line_column(text.as_bytes(), at);
        FolderMapError::Xml {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    };
    // Positions count from after a byte order mark, which the reader skips.
    let base = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut reader = quick_xml::Reader::from_str(&text[base..]);
    // Each open element, with the entry it is when it is a `<folder>`: its range ends at its end
    // tag, so that removing it removes the whole element.
    let mut open: Vec<Option<usize>> = Vec::new();
    let mut roots = 0usize;
    let mut entries: Vec<Entry> = Vec::new();
    loop {
        let start = base + reader.buffer_position() as usize;
        let event = (reader.read_event())
            .map_err(|e| error(base + reader.error_position() as usize, e.to_string()))?;
        let end = base + reader.buffer_position() as usize;
        let element = match &event {
            Event::Start(e) | Event::Empty(e) => e,
            Event::End(_) => {
                if let Some(Some(i)) = open.pop() {
                    entries[i].element.end = end;
                    entries[i].end_tag = Some(start..end);
                }
                continue;
            }
            Event::Text(t) if open.is_empty() && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(error(start, "text outside the root element".into()));
            }
            Event::Eof if !open.is_empty() => {
                return Err(error(end, "an element is not closed".into()));
            }
            Event::Eof if roots == 0 => return Err(error(end, "no root element".into())),
            Event::Eof => break,
            _ => continue,
        };
        if open.is_empty() {
            roots += 1;
            if roots > 1 {
                return Err(error(start, "a second root element".into()));
            }
        }
        let mut is_entry = None;
        if element.name().as_ref() == NAMES.element.as_bytes() {
            let entry = entry(text, element, start..end).map_err(|e| error(start, e))?;
            is_entry = Some(entries.len());
            entries.push(entry);
        }
        if matches!(event, Event::Start(_)) {
            open.push(is_entry);
        }
    }
    Ok(entries)
}

/// One `<folder>` element at `range` of `text`.
fn entry(text: &str, element: &BytesStart, range: Range<usize>) -> Result<Entry, String> {
    let mut entry = Entry {
        owner: String::new(),
        path: String::new(),
        name: String::new(),
        element: range.clone(),
        start_tag: range,
        end_tag: None,
        owner_value: None,
    };
    for attr in element.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let value = attr
            .unescape_value()
            .map_err(|e| e.to_string())?
            .into_owned();
        match attr.key.as_ref() {
            k if k == NAMES.owner.as_bytes() => {
                // The reader borrows from `text`: where the raw value is in it.
                let at = attr.value.as_ptr() as usize - text.as_ptr() as usize;
                entry.owner_value = Some(at..at + attr.value.len());
                entry.owner = value;
            }
            k if k == NAMES.path.as_bytes() => entry.path = value,
            k if k == NAMES.name.as_bytes() => entry.name = value,
            _ => {}
        }
    }
    Ok(entry)
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

    #[test]
    fn only_a_well_formed_map_is_read() {
        let parse = |text: &str| {
            FolderMap::parse(Path::new("f.map"), text.as_bytes().to_vec()).map(|m| m.entries)
        };
        for (text, says) in [
            (
                "<map>\n<folder owner=\"a\"/>\n",
                "f.map:3:1: malformed folder.map: an element is not closed",
            ),
            (
                "<map/>\n<map/>",
                "f.map:2:1: malformed folder.map: a second root element",
            ),
            (
                "<map/>x",
                "f.map:1:7: malformed folder.map: text outside the root element",
            ),
            ("  \n", "f.map:2:1: malformed folder.map: no root element"),
            (
                "<map><folder owner=\"a\" owner=\"b\"/></map>",
                "f.map:1:6: malformed folder.map: ",
            ),
            (
                "<map><folder owner=\"a&bogus;\"/></map>",
                "f.map:1:6: malformed folder.map: ",
            ),
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.starts_with(says), "{text:?}: {err}");
        }
        // A byte order mark is kept, and positions count it.
        let text = "\u{feff}<map>\r\n  <folder owner=\"a@b.c\"/>\r\n</map>\r\n";
        let map = FolderMap::parse(Path::new("f.map"), text.as_bytes().to_vec()).expect("parses");
        let (bytes, n) = map.renamed("A@B.C", "x@b.c");
        assert_eq!(n, 1);
        assert_eq!(bytes, text.replace("a@b.c", "x@b.c").into_bytes());
        let (bytes, _) = map.without_owner("a@b.c");
        assert_eq!(bytes, "\u{feff}<map>\r\n</map>\r\n".as_bytes());
    }

    #[test]
    fn a_subscription_with_an_end_tag_goes_whole() {
        let text = "<map>\n  <folder owner=\"a@b.c\" path=\"x\"></folder>\n  <folder owner=\"d@b.c\" path=\"y\">\n    <folder owner=\"a@b.c\" path=\"z\"/>\n  </folder>\n</map>\n";
        let map = FolderMap::parse(Path::new("f.map"), text.as_bytes().to_vec()).expect("parses");
        let (bytes, n) = map.without_owner("a@b.c");
        assert_eq!(n, 2);
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            "<map>\n  <folder owner=\"d@b.c\" path=\"y\">\n  </folder>\n</map>\n"
        );
        // The outer one removed keeps another owner's nested in it: only its tags go.
        let (bytes, n) = map.without_owner("d@b.c");
        assert_eq!(n, 1);
        let out = String::from_utf8(bytes).expect("utf-8");
        assert_eq!(
            out,
            "<map>\n  <folder owner=\"a@b.c\" path=\"x\"></folder>\n    <folder owner=\"a@b.c\" path=\"z\"/>\n</map>\n"
        );
        FolderMap::parse(Path::new("f.map"), out.as_bytes().to_vec()).expect("well formed");
        // One of its own owner nested in it goes with it, in one edit.
        let text = "<map>\n  <folder owner=\"d@b.c\" path=\"y\">\n    <folder owner=\"d@b.c\" path=\"z\"/>\n  </folder>\n</map>\n";
        let map = FolderMap::parse(Path::new("f.map"), text.as_bytes().to_vec()).expect("parses");
        let (bytes, n) = map.without_owner("d@b.c");
        let out = String::from_utf8(bytes).expect("utf-8");
        assert_eq!((out.as_str(), n), ("<map>\n</map>\n", 2));
        FolderMap::parse(Path::new("f.map"), out.into_bytes()).expect("still well formed");
    }
}
