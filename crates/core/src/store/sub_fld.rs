//! `sub.fld`: a mailbox's folder subscriptions, one a line, where a subscription to a folder
//! another user shares names that user's address (KERIO-FORMAT.md §3; the layout is assumed, see
//! [`crate::config::schema::SUBSCRIPTIONS`]).
//!
//! The codec relies on as little of the layout as it can: an address is a whole token of address
//! characters (letters, digits, `.`, `_`, `-`, `@`) holding an `@`, compared case-insensitively,
//! and a subscription is a line. It works on bytes, so a folder name that is not UTF-8 survives,
//! and keeps every byte it does not change (other lines, line endings, a missing last newline).

use std::ops::Range;

/// A byte that can be part of an address (as `kc_core::rename` finds them in the configs).
fn address_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@')
}

/// The address tokens of `bytes`: maximal runs of address bytes that hold an `@`.
fn address_tokens(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !address_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && address_byte(bytes[i]) {
            i += 1;
        }
        if bytes[start..i].contains(&b'@') {
            out.push(start..i);
        }
    }
    out
}

/// A parsed `sub.fld`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubFld {
    bytes: Vec<u8>,
}

impl SubFld {
    /// Takes a `sub.fld`'s bytes; any bytes are one (addresses are found as they are asked for).
    pub fn parse(bytes: Vec<u8>) -> SubFld {
        SubFld { bytes }
    }

    /// Every address the file names, in order, as written.
    pub fn addresses(&self) -> impl Iterator<Item = &[u8]> {
        address_tokens(&self.bytes)
            .into_iter()
            .map(|r| &self.bytes[r])
    }

    /// The owners of the other users' folders the mailbox is subscribed to, as written: the
    /// address leading each line that starts with the shared prefix (`~<user>@<domain>/<path>`,
    /// the assumed layout of [`crate::config::schema::SUBSCRIPTIONS`]). Narrower than
    /// [`SubFld::addresses`]: a folder of the mailbox's own named like an address is not one.
    pub fn owners(&self) -> impl Iterator<Item = &[u8]> {
        let prefix = crate::config::schema::SUBSCRIPTIONS
            .shared_prefix
            .as_bytes();
        self.bytes.split(|&b| b == b'\n').filter_map(move |line| {
            let rest = line.strip_prefix(prefix)?;
            let end = rest
                .iter()
                .position(|&b| !address_byte(b))
                .unwrap_or(rest.len());
            let token = &rest[..end];
            token.contains(&b'@').then_some(token)
        })
    }

    /// Whether the file names `address` (case-insensitively, as a whole token).
    pub fn names(&self, address: &str) -> bool {
        self.addresses()
            .any(|a| a.eq_ignore_ascii_case(address.as_bytes()))
    }

    /// Replaces every address `new_of` gives a new one for, in one pass (many renames at once).
    /// Returns how many tokens changed.
    pub fn rename_with<'n>(&mut self, new_of: impl Fn(&str) -> Option<&'n str>) -> usize {
        let hits: Vec<(Range<usize>, &'n [u8])> = address_tokens(&self.bytes)
            .into_iter()
            .filter_map(|r| {
                let address = std::str::from_utf8(&self.bytes[r.clone()]).ok()?;
                new_of(address).map(|new| (r, new.as_bytes()))
            })
            .collect();
        for (range, with) in hits.iter().rev() {
            self.bytes.splice(range.clone(), with.iter().copied());
        }
        hits.len()
    }

    /// Removes every line (with its line ending) that names `address`: a subscription to a
    /// folder of an account that is gone. Returns how many lines went.
    pub fn remove(&mut self, address: &str) -> usize {
        let mut out = Vec::with_capacity(self.bytes.len());
        let mut removed = 0;
        for line in self.bytes.split_inclusive(|&b| b == b'\n') {
            let names = address_tokens(line)
                .into_iter()
                .any(|r| line[r].eq_ignore_ascii_case(address.as_bytes()));
            if names {
                removed += 1;
            } else {
                out.extend_from_slice(line);
            }
        }
        self.bytes = out;
        removed
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

    const FILE: &[u8] = b"INBOX\r\n~jdoe@example.com/Calendar\r\n#public/Announcements\r\n~xjdoe@example.com/Contacts\r\n~JDoe@Example.com/INBOX/Projects\r\nCaf\xe9\r\n~asmith@example.com/Calendar";

    #[test]
    fn addresses_are_whole_tokens() {
        let s = SubFld::parse(FILE.to_vec());
        let all: Vec<&[u8]> = s.addresses().collect();
        assert_eq!(
            all,
            [
                &b"jdoe@example.com"[..],
                b"xjdoe@example.com",
                b"JDoe@Example.com",
                b"asmith@example.com"
            ]
        );
        assert!(s.names("JDOE@example.com"));
        assert!(!s.names("doe@example.com"));
        assert_eq!(s.as_bytes(), FILE);
    }

    #[test]
    fn owners_are_the_addresses_of_shared_subscriptions_only() {
        let s = SubFld::parse(
            b"INBOX/orders@shop.example\r\n~jdoe@example.com/Calendar\r\n~asmith@example.com"
                .to_vec(),
        );
        let owners: Vec<&[u8]> = s.owners().collect();
        assert_eq!(owners, [&b"jdoe@example.com"[..], b"asmith@example.com"]);
    }

    #[test]
    fn rename_changes_only_the_address_bytes_and_comes_back() {
        let mut s = SubFld::parse(FILE.to_vec());
        let n = s.rename_with(|a| {
            a.eq_ignore_ascii_case("jdoe@example.com")
                .then_some("john@example.org")
        });
        assert_eq!(n, 2);
        let want: &[u8] = b"INBOX\r\n~john@example.org/Calendar\r\n#public/Announcements\r\n~xjdoe@example.com/Contacts\r\n~john@example.org/INBOX/Projects\r\nCaf\xe9\r\n~asmith@example.com/Calendar";
        assert_eq!(s.as_bytes(), want);
        let n = s.rename_with(|a| (a == "john@example.org").then_some("jdoe@example.com"));
        assert_eq!(n, 2);
        // Back, but in the spelling of the rename: the server compares case-insensitively.
        let back: &[u8] = b"INBOX\r\n~jdoe@example.com/Calendar\r\n#public/Announcements\r\n~xjdoe@example.com/Contacts\r\n~jdoe@example.com/INBOX/Projects\r\nCaf\xe9\r\n~asmith@example.com/Calendar";
        assert_eq!(s.into_bytes(), back);
    }

    #[test]
    fn remove_takes_whole_lines_and_keeps_the_rest() {
        let mut s = SubFld::parse(FILE.to_vec());
        assert_eq!(s.remove("jdoe@example.com"), 2);
        assert_eq!(
            s.as_bytes(),
            b"INBOX\r\n#public/Announcements\r\n~xjdoe@example.com/Contacts\r\nCaf\xe9\r\n~asmith@example.com/Calendar"
        );
        // The last line, without a newline.
        assert_eq!(s.remove("ASMITH@example.com"), 1);
        assert_eq!(
            s.as_bytes(),
            b"INBOX\r\n#public/Announcements\r\n~xjdoe@example.com/Contacts\r\nCaf\xe9\r\n"
        );
        assert_eq!(s.remove("nobody@example.com"), 0);
    }
}
