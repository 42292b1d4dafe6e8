//! Line numbers of CSV records as the admin's editor shows them. The csv crate says where the
//! reading of a record began: before the blank lines and comment lines it skipped, and, after a
//! CRLF, at its LF (so its own line count is one short).

/// The text with each line break that is a lone CR (old Mac files) made an LF, as editors show
/// them: the csv reader ends a comment line only at an LF, so a `#` line would eat the rest.
pub(crate) fn lone_cr_as_lf(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let lone = |i: usize| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n');
    if !(0..bytes.len()).any(lone) {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out = bytes.to_vec();
    for (i, b) in out.iter_mut().enumerate() {
        if lone(i) {
            *b = b'\n';
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Counts lines of one CSV text as its records are read, in order.
pub(crate) struct RecordLines<'a> {
    bytes: &'a [u8],
    comment: Option<u8>,
    /// Up to which byte lines are counted, and the line there.
    counted: (usize, usize),
}

impl<'a> RecordLines<'a> {
    /// For `bytes`, read with `comment` as the csv reader's comment byte.
    pub(crate) fn new(bytes: &'a [u8], comment: Option<u8>) -> RecordLines<'a> {
        RecordLines {
            bytes,
            comment,
            counted: (0, 1),
        }
    }

    /// The line of the record whose reading began at `byte` (a record's or an error's
    /// position): past line breaks and comment lines. Offsets only grow, so lines are counted
    /// from the previous call on.
    pub(crate) fn line_at(&mut self, byte: u64) -> usize {
        let bytes = self.bytes;
        let mut at = usize::try_from(byte).map_or(bytes.len(), |b| b.min(bytes.len()));
        loop {
            while bytes.get(at).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
                at += 1;
            }
            match self.comment {
                Some(c) if bytes.get(at) == Some(&c) => {
                    at = bytes[at..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(bytes.len(), |i| at + i);
                }
                _ => break,
            }
        }
        let (from, line) = self.counted;
        let from = from.min(at);
        let line = line + bytes[from..at].iter().filter(|&&b| b == b'\n').count();
        self.counted = (at, line);
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_those_of_the_records_past_blank_and_comment_lines() {
        let text = "a,b\r\n\r\n# note\n#\n  c,d\ne,\"f\ng\"\nh,i";
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .comment(Some(b'#'))
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut lines = RecordLines::new(text.as_bytes(), Some(b'#'));
        let mut seen = Vec::new();
        for record in reader.records() {
            let record = record.expect("reads");
            let start = record.position().map_or(0, csv::Position::byte);
            seen.push((lines.line_at(start), record.get(0).unwrap_or("").to_owned()));
        }
        let want = [(1, "a"), (5, "  c"), (6, "e"), (8, "h")];
        assert_eq!(
            seen,
            want.map(|(l, f)| (l, f.to_owned())),
            "the line an editor shows for each record"
        );
    }
}
