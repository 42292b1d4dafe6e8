//! `index.fld`: a folder's message index, one record a line (KERIO-FORMAT.md §3 [T]), and how a
//! record names its message file in `#msgs`. The field letters and the file's name are in the
//! schema table ([`crate::config::schema::INDEX`]), with how sure we are of each.
//!
//! Only what the tools use is read: the `U` field (which file) and the `S` field (its size),
//! which `kc-store check` compares, and the `C` field (the item's class), by which a rename
//! finds calendar items. Other fields, and fields this codec does not know, are ignored.

use std::ffi::OsStr;

use crate::config::schema::INDEX;

/// One record of `index.fld`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The message's number: its file is [`message_file_name`] of it.
    pub uid: u64,
    /// The message's size in bytes, when the record has an `S` field.
    pub size: Option<u64>,
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// No `U` field.
    NoUid,
    /// A `U` field that is not hexadecimal digits.
    BadUid(String),
    /// An `S` field that is not decimal digits.
    BadSize(String),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (u, s) = (INDEX.uid_prefix as char, INDEX.size_prefix as char);
        match self {
            LineError::NoUid => write!(f, "no {u} field (the message's number)"),
            LineError::BadUid(t) => write!(f, "the {u} field {t:?} is not a hexadecimal number"),
            LineError::BadSize(t) => write!(f, "the {s} field {t:?} is not a decimal size"),
        }
    }
}

/// Parses one line (without its line ending); `Ok(None)` for a blank line.
pub fn parse_line(line: &[u8]) -> Result<Option<Record>, LineError> {
    let mut uid = None;
    let mut size = None;
    let mut any = false;
    for field in line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
    {
        any = true;
        let (&letter, value) = field.split_first().expect("fields are not empty");
        let text = || String::from_utf8_lossy(field).into_owned();
        if letter == INDEX.uid_prefix && uid.is_none() {
            uid = Some(hex(value).ok_or_else(|| LineError::BadUid(text()))?);
        } else if letter == INDEX.size_prefix && size.is_none() {
            size = Some(decimal(value).ok_or_else(|| LineError::BadSize(text()))?);
        } else if letter == INDEX.class_prefix {
            // The class is the last field and may hold anything; nothing after it is a field.
            break;
        }
    }
    match (any, uid) {
        (false, _) => Ok(None),
        (true, None) => Err(LineError::NoUid),
        (true, Some(uid)) => Ok(Some(Record { uid, size })),
    }
}

/// The class of a record's line: its `C` field to the end of the line (the class is the last
/// field and may hold anything), without the trailing blank space; `None` without one.
pub fn class(line: &[u8]) -> Option<&[u8]> {
    let mut at = 0;
    while at < line.len() {
        let start = at + line[at..].iter().position(|b| !b.is_ascii_whitespace())?;
        if line[start] == INDEX.class_prefix {
            return Some(line[start + 1..].trim_ascii_end());
        }
        at = start
            + line[start..]
                .iter()
                .position(u8::is_ascii_whitespace)
                .unwrap_or(line.len() - start);
    }
    None
}

/// Whether a class is a calendar item's ([`crate::config::schema::INDEX`]'s
/// `calendar_classes`, or a subclass of one), in any case.
pub fn is_calendar_class(class: &[u8]) -> bool {
    INDEX.calendar_classes.iter().any(|c| {
        let c = c.as_bytes();
        class.len() >= c.len()
            && class[..c.len()].eq_ignore_ascii_case(c)
            && (class.len() == c.len() || class[c.len()] == b'.')
    })
}

fn hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The file in `#msgs` a record names: 8 lower-case hex digits (more when the number needs
/// them) and the message extension, as the server writes them.
pub fn message_file_name(uid: u64) -> String {
    format!("{uid:08x}.{}", INDEX.message_extension)
}

/// The number of a file in `#msgs` named like a message (`0000001a.eml`, any case), else `None`.
pub fn message_number(name: &OsStr) -> Option<u64> {
    let name = name.to_str()?;
    let stem = name
        .strip_suffix(INDEX.message_extension)?
        .strip_suffix('.')?;
    hex(stem.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_names_its_file_and_size() {
        let r = parse_line(b"U0000001a F80000001 S1133 D43032abf M4305f1b7 I0001 CIPM.Note")
            .expect("parses")
            .expect("a record");
        assert_eq!(
            r,
            Record {
                uid: 0x1a,
                size: Some(1133)
            }
        );
        assert_eq!(message_file_name(r.uid), "0000001a.eml");
        assert_eq!(message_number(OsStr::new("0000001A.eml")), Some(0x1a));
        assert_eq!(message_number(OsStr::new("0000001a.eml")), Some(0x1a));
        assert_eq!(message_number(OsStr::new("notes.txt")), None);
        assert_eq!(message_number(OsStr::new(".eml")), None);
        assert_eq!(message_number(OsStr::new("+1.eml")), None);
    }

    #[test]
    fn classes_of_calendar_items() {
        let class = |l: &[u8]| class(l).map(|c| String::from_utf8_lossy(c).into_owned());
        assert_eq!(
            class(b"U1 F0 S2 CIPM.Schedule.Meeting.Request \r").as_deref(),
            Some("IPM.Schedule.Meeting.Request")
        );
        assert_eq!(class(b"U1 S2").as_deref(), None);
        assert_eq!(class(b"  CIPM.Note x").as_deref(), Some("IPM.Note x"));
        for yes in [
            "IPM.Appointment",
            "ipm.appointment",
            "IPM.Appointment.Occurrence",
            "IPM.Schedule.Meeting.Request",
            "IPM.Schedule.Meeting.Resp.Pos",
        ] {
            assert!(is_calendar_class(yes.as_bytes()), "{yes}");
        }
        for no in [
            "IPM.Note",
            "IPM.AppointmentX",
            "IPM.Schedule",
            "IPM.Task",
            "",
        ] {
            assert!(!is_calendar_class(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn blank_lines_and_bad_fields() {
        assert_eq!(parse_line(b"  \r"), Ok(None));
        assert_eq!(parse_line(b"F1 S2"), Err(LineError::NoUid));
        assert_eq!(
            parse_line(b"Uxyz S2"),
            Err(LineError::BadUid("Uxyz".into()))
        );
        assert_eq!(parse_line(b"U1 S-2"), Err(LineError::BadSize("S-2".into())));
        // No size field: a record all the same.
        assert_eq!(
            parse_line(b"U2 F0\r"),
            Ok(Some(Record { uid: 2, size: None }))
        );
        // The class may hold anything, letters that lead fields included.
        assert_eq!(
            parse_line(b"U3 S4 CIPM.Note Sx Ux"),
            Ok(Some(Record {
                uid: 3,
                size: Some(4)
            }))
        );
    }
}
