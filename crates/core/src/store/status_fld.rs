//! `status.fld`: a folder's status line, whose trailing `A<user>@<domain> <rights>` pairs are its
//! ACL (KERIO-FORMAT.md §3 [T]). This is how a folder is shared with another user.
//!
//! The same codec reads a `#public/acl.fld`, assumed to hold the same `A<user>@<domain> <rights>`
//! pairs one a line ([`crate::config::schema::PUBLIC_ACL`]): pairs are found among
//! whitespace-separated tokens, whatever separates them.
//!
//! The codec works on bytes and keeps every byte it does not change: other tokens, the spacing
//! between them, the line ending.

use std::ops::Range;

/// The `status.fld` of a new, empty folder, as the server writes one: type 2 (mail), a GUID and
/// UIDVALIDITY derived from `seed` (so a plan is a pure function of its input), next UID 1, no
/// messages, no ACL. [A]: the tokens are read from real files [T]; what the server makes of a
/// folder it did not create itself is assumed.
pub fn new_folder(seed: &str) -> Vec<u8> {
    let h = crate::hash::sha256_hex(seed.as_bytes());
    format!(
        "T2 G{}-{} V{} U00000001 C00000000 M6 D0 R0 N0 S0\n",
        &h[..16],
        &h[16..20],
        &h[20..28]
    )
    .into_bytes()
}

/// A parsed `status.fld`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusFld {
    bytes: Vec<u8>,
    /// Each ACL entry: the address (after the `A`) and the rights token.
    acl: Vec<(Range<usize>, Range<usize>)>,
}

/// One ACL entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry<'a> {
    /// `user@domain`.
    pub address: &'a [u8],
    /// The rights token that follows the address, as written.
    pub rights: &'a [u8],
}

fn tokens(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, b) in bytes.iter().enumerate() {
        let space = b.is_ascii_whitespace();
        match (start, space) {
            (None, false) => start = Some(i),
            (Some(s), true) => {
                out.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..bytes.len());
    }
    out
}

impl StatusFld {
    /// Finds the ACL entries of a `status.fld` (or `acl.fld`); never fails, as the other tokens
    /// are kept as they are.
    pub fn parse(bytes: Vec<u8>) -> StatusFld {
        let toks = tokens(&bytes);
        let mut acl = Vec::new();
        let mut i = 0;
        while i + 1 < toks.len() {
            let t = &bytes[toks[i].clone()];
            if t.len() > 1 && t[0] == b'A' && t.contains(&b'@') {
                acl.push((toks[i].start + 1..toks[i].end, toks[i + 1].clone()));
                i += 2;
            } else {
                i += 1;
            }
        }
        StatusFld { bytes, acl }
    }

    /// The ACL entries, in file order.
    pub fn acl(&self) -> impl Iterator<Item = AclEntry<'_>> {
        self.acl.iter().map(|(a, r)| AclEntry {
            address: &self.bytes[a.clone()],
            rights: &self.bytes[r.clone()],
        })
    }

    /// Whether an ACL entry names `address` (case-insensitively).
    pub fn names(&self, address: &str) -> bool {
        self.acl()
            .any(|e| e.address.eq_ignore_ascii_case(address.as_bytes()))
    }

    /// Replaces the address of every ACL entry naming `old` (case-insensitively) by `new`.
    /// Returns how many entries changed.
    pub fn rename(&mut self, old: &str, new: &str) -> usize {
        self.rename_with(|a| a.eq_ignore_ascii_case(old).then_some(new))
    }

    /// Replaces the address of every ACL entry `new_of` gives a new one for, in one pass
    /// (many renames at once). Returns how many entries changed.
    pub fn rename_with<'n>(&mut self, new_of: impl Fn(&str) -> Option<&'n str>) -> usize {
        let hits: Vec<(Range<usize>, &'n [u8])> = self
            .acl
            .iter()
            .filter_map(|(a, _)| {
                let address = std::str::from_utf8(&self.bytes[a.clone()]).ok()?;
                new_of(address).map(|new| (a.clone(), new.as_bytes()))
            })
            .collect();
        let n = hits.len();
        self.splice(hits.into_iter());
        n
    }

    /// Removes every ACL entry naming `address`, with the space before it; an entry alone on its
    /// line (as in `acl.fld`) goes with its line ending.
    pub fn remove(&mut self, address: &str) -> usize {
        let bytes = &self.bytes;
        let hits: Vec<Range<usize>> = self
            .acl
            .iter()
            .filter(|(a, _)| bytes[a.clone()].eq_ignore_ascii_case(address.as_bytes()))
            .map(|(a, r)| {
                // From the separator before the `A` to the end of the rights token.
                let mut start = a.start - 1;
                while start > 0 && bytes[start - 1] == b' ' {
                    start -= 1;
                }
                let mut end = r.end;
                let line_start = start == 0 || bytes[start - 1] == b'\n';
                let rest = &bytes[end..];
                if line_start && rest.starts_with(b"\r\n") {
                    end += 2;
                } else if line_start && rest.starts_with(b"\n") {
                    end += 1;
                }
                start..end
            })
            .collect();
        self.splice(hits.iter().map(|r| (r.clone(), &b""[..])));
        hits.len()
    }

    fn splice<'a>(&mut self, edits: impl DoubleEndedIterator<Item = (Range<usize>, &'a [u8])>) {
        let mut bytes = std::mem::take(&mut self.bytes);
        for (range, with) in edits.rev() {
            bytes.splice(range, with.iter().copied());
        }
        *self = StatusFld::parse(bytes);
    }

    /// The file's bytes, with the edits made so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The file's bytes, with the edits made, to write.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &[u8] = b"T2 G64590354-0001 V430adb2c U0000000c C00000001 M6 D0 R0 N0 S7514 Ajdoe@example.com lrsw Aasmith@example.com lr\r\n";

    #[test]
    fn reads_the_acl_pairs_and_nothing_else() {
        let s = StatusFld::parse(LINE.to_vec());
        let acl: Vec<_> = s
            .acl()
            .map(|e| (e.address.to_vec(), e.rights.to_vec()))
            .collect();
        assert_eq!(
            acl,
            [
                (b"jdoe@example.com".to_vec(), b"lrsw".to_vec()),
                (b"asmith@example.com".to_vec(), b"lr".to_vec())
            ]
        );
        assert!(s.names("JDoe@Example.com"));
        assert_eq!(s.as_bytes(), LINE);
    }

    #[test]
    fn rename_changes_only_the_address_bytes() {
        let mut s = StatusFld::parse(LINE.to_vec());
        assert_eq!(s.rename("JDOE@example.com", "john.doe@example.org"), 1);
        let expected = String::from_utf8_lossy(LINE)
            .replace("Ajdoe@example.com", "Ajohn.doe@example.org")
            .into_bytes();
        assert_eq!(s.as_bytes(), expected);
        assert_eq!(s.rename("nobody@example.com", "x@y"), 0);
        assert_eq!(s.rename("john.doe@example.org", "jdoe@example.com"), 1);
        assert_eq!(s.into_bytes(), LINE);
    }

    #[test]
    fn rename_with_renames_many_in_one_pass() {
        let mut s = StatusFld::parse(LINE.to_vec());
        let n = s.rename_with(|a| match a.to_ascii_lowercase().as_str() {
            "jdoe@example.com" => Some("asmith@example.com"),
            "asmith@example.com" => Some("anna@example.com"),
            _ => None,
        });
        assert_eq!(n, 2);
        let expected = String::from_utf8_lossy(LINE)
            .replace("Aasmith@example.com", "Aanna@example.com")
            .replace("Ajdoe@example.com", "Aasmith@example.com")
            .into_bytes();
        assert_eq!(s.into_bytes(), expected);
    }

    #[test]
    fn remove_takes_the_pair_and_its_separator() {
        let mut s = StatusFld::parse(LINE.to_vec());
        assert_eq!(s.remove("jdoe@example.com"), 1);
        let expected = String::from_utf8_lossy(LINE)
            .replace(" Ajdoe@example.com lrsw", "")
            .into_bytes();
        assert_eq!(s.as_bytes(), expected);
        assert_eq!(s.acl().count(), 1);
    }

    #[test]
    fn an_acl_fld_loses_whole_lines_and_renames_in_place() {
        let file =
            b"Ajdoe@example.com lrswipkxte\r\nAasmith@example.com lr\r\nAJDoe@example.org lr\r\n";
        let mut s = StatusFld::parse(file.to_vec());
        assert_eq!(s.acl().count(), 3);
        assert_eq!(s.rename("jdoe@example.org", "john@example.org"), 1);
        assert_eq!(
            s.as_bytes(),
            b"Ajdoe@example.com lrswipkxte\r\nAasmith@example.com lr\r\nAjohn@example.org lr\r\n"
        );
        assert_eq!(s.remove("JDOE@example.com"), 1);
        assert_eq!(
            s.as_bytes(),
            b"Aasmith@example.com lr\r\nAjohn@example.org lr\r\n"
        );
        assert_eq!(s.remove("john@example.org"), 1);
        assert_eq!(s.as_bytes(), b"Aasmith@example.com lr\r\n");
        assert_eq!(s.remove("asmith@example.com"), 1);
        assert_eq!(s.as_bytes(), b"");
    }

    #[test]
    fn a_file_without_acl_has_none() {
        let s = StatusFld::parse(b"T2 G1 V2 S0\n".to_vec());
        assert_eq!(s.acl().count(), 0);
        let s = StatusFld::parse(Vec::new());
        assert_eq!(s.acl().count(), 0);
    }
}
