//! Reading a `--map` file of renames: one `old,new` record a line, quoted as any spreadsheet
//! writes it; blank lines and `#` comment lines skipped; a first record `old,new` is a header.

use std::path::Path;

use super::{Rename, RenameError};
use crate::account::Address;
use crate::csv_lines::RecordLines;
use crate::problem::Problem;

/// The renames of the good lines and a problem per bad one (`FILE:LINE`, and the field).
pub fn read_map(path: &Path) -> Result<(Vec<Rename>, Vec<Problem>), RenameError> {
    let bytes = std::fs::read(path).map_err(|source| RenameError::Read {
        path: path.to_owned(),
        source,
    })?;
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
    let bytes = &*crate::csv_lines::lone_cr_as_lf(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .comment(Some(b'#'))
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut lines = RecordLines::new(bytes, Some(b'#'));
    let (mut renames, mut problems) = (Vec::new(), Vec::new());
    let mut first = true;
    let mut record = csv::StringRecord::new();
    loop {
        let origin = match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let start = record.position().map_or(0, csv::Position::byte);
                format!("{}:{}", path.display(), lines.line_at(start))
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.line_at(p.byte()));
                let why = match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => "not UTF-8 (save the file as UTF-8)".to_owned(),
                    _ => e.to_string(),
                };
                problems.push(Problem::at(format!("{}:{line}", path.display()), "", why));
                continue;
            }
        };
        let fields: Vec<&str> = record.iter().collect();
        let header = std::mem::take(&mut first);
        match fields.as_slice() {
            // A comment after leading blanks, which the reader takes for a record.
            [f, ..] if f.starts_with('#') => first = header,
            [o, n] if header && o.eq_ignore_ascii_case("old") && n.eq_ignore_ascii_case("new") => {}
            [old, new] => match parse_pair(old, new) {
                Ok((old, new)) => renames.push(Rename { old, new, origin }),
                Err((field, e)) => problems.push(Problem::at(origin, field, e)),
            },
            [""] => first = header,
            other => problems.push(Problem::at(
                origin,
                "",
                format!("expected two fields \"old,new\", found {}", other.len()),
            )),
        }
    }
    if renames.is_empty() && problems.is_empty() {
        return Err(RenameError::EmptyMap(path.to_owned()));
    }
    Ok((renames, problems))
}

/// The two addresses of a rename: `NEW` may be a bare name, in the old one's domain. On error,
/// which one and why.
pub fn parse_pair(old: &str, new: &str) -> Result<(Address, Address), (&'static str, String)> {
    let old = Address::parse(old, None).map_err(|e| ("OLD", e.to_string()))?;
    let new = Address::parse(new, Some(&old.domain)).map_err(|e| ("NEW", e.to_string()))?;
    Ok((old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_files_name_their_bad_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.csv");
        std::fs::write(
            &path,
            "\u{feff}old,new\r\n# a comment\r\njdoe@example.com,john\r\n\r\nbad name@example.com,x\n  # indented\na@b.c,d,e\n\"x@b.c\",\"y\"\n",
        )
        .expect("write");
        let (good, problems) = read_map(&path).expect("reads");
        let p = path.display();
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                format!(
                    "{p}:5: OLD: \"bad name@example.com\" is not an address: ' ' is not allowed (letters, digits, '.', '_' and '-' only)"
                ),
                format!("{p}:7: expected two fields \"old,new\", found 3"),
            ]
        );
        assert_eq!(
            good.iter()
                .map(|r| format!("{} {} {}", r.old, r.new, r.origin))
                .collect::<Vec<_>>(),
            [
                format!("jdoe@example.com john@example.com {p}:3"),
                format!("x@b.c y@b.c {p}:8"),
            ]
        );
        std::fs::write(
            &path,
            "jdoe@example.com, john \nx@example.org,y@example.com\n",
        )
        .expect("write");
        let (ok, problems) = read_map(&path).expect("reads");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            ok.iter()
                .map(|r| format!("{} {} {}", r.old, r.new, r.origin))
                .collect::<Vec<_>>(),
            [
                format!("jdoe@example.com john@example.com {p}:1"),
                format!("x@example.org y@example.com {p}:2")
            ]
        );
        // Lone CRs (old Mac line ends): a comment ends at its line, lines count as shown.
        std::fs::write(
            &path,
            "# renames\rjdoe@example.com,john\r# c\rx@example.org,bad name\ra@b.c,d\r",
        )
        .expect("write");
        let (ok, problems) = read_map(&path).expect("reads");
        assert_eq!(
            ok.iter().map(|r| r.origin.clone()).collect::<Vec<_>>(),
            [format!("{p}:2"), format!("{p}:5")]
        );
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .to_string()
                .starts_with(&format!("{p}:4: NEW: "))
        );
        std::fs::write(&path, "# only a comment\n\n").expect("write");
        let err = read_map(&path).expect_err("nothing in it");
        assert_eq!(err.to_string(), format!("{p}: no renames in it"));
    }
}
