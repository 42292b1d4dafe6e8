//! Words, names and message bodies for synthetic mail.

use std::fmt::Write as _;

use base64::Engine;
use rand::Rng;
use rand::seq::IndexedRandom;

pub const FIRST_NAMES: &[&str] = &[
    "John",
    "Anna",
    "Brian",
    "Maria",
    "Peter",
    "Eva",
    "Tomas",
    "Lucy",
    "Martin",
    "Jana",
    "David",
    "Sarah",
    "Michael",
    "Olga",
    "George",
    "Helen",
    "Frank",
    "Irene",
    "Karl",
    "Nina",
    "Oscar",
    "Paula",
    "Robert",
    "Susan",
    "Victor",
    "Wendy",
    "Alexandra",
    "Edward",
    "Zoe",
    "Hugo",
];

pub const LAST_NAMES: &[&str] = &[
    "Doe", "Smith", "White", "Novak", "Bird", "Wood", "Brown", "Taylor", "Clark", "Lewis",
    "Walker", "Young", "King", "Wright", "Green", "Baker", "Adams", "Nelson", "Hill", "Carter",
    "Mitchell", "Turner", "Parker", "Evans", "Edwards", "Collins", "Stewart", "Morris", "Rogers",
    "Reed",
];

const WORDS: &[&str] = &[
    "the",
    "meeting",
    "report",
    "budget",
    "please",
    "review",
    "attached",
    "invoice",
    "project",
    "schedule",
    "customer",
    "order",
    "delivery",
    "thanks",
    "regards",
    "update",
    "quarter",
    "team",
    "server",
    "mailbox",
    "migration",
    "weekend",
    "contract",
    "draft",
    "approve",
    "call",
    "monday",
    "friday",
    "office",
    "plan",
    "and",
    "to",
    "of",
    "for",
    "with",
    "on",
    "we",
    "you",
    "will",
    "is",
    "a",
    "in",
    "this",
    "that",
    "our",
    "next",
    "week",
    "about",
    "new",
    "status",
    "issue",
    "fixed",
];

pub const SUBJECTS: &[&str] = &[
    "Quarterly report",
    "Re: Budget review",
    "Invoice",
    "Meeting notes",
    "Fwd: Delivery schedule",
    "Project update",
    "Re: Contract draft",
    "Lunch on Friday?",
    "Server migration plan",
    "Re: Re: Customer order",
    "Holiday schedule",
    "Weekly status",
];

/// Appends words until `out` holds `len` bytes more, wrapped at about 72 columns.
pub fn words(rng: &mut impl Rng, len: usize, out: &mut String) {
    let end = out.len() + len;
    let mut column = 0;
    while out.len() < end {
        let w = WORDS.choose(rng).expect("WORDS is not empty");
        if column + w.len() > 72 {
            out.push_str("\r\n");
            column = 0;
        } else if column > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(w);
        column += w.len();
    }
    out.truncate(end);
    out.push_str("\r\n");
}

/// Appends `len` bytes of random data as base64 in 76-column lines.
pub fn base64_lines(rng: &mut impl Rng, len: usize, out: &mut String) {
    let mut raw = vec![0u8; len];
    rng.fill(&mut raw[..]);
    base64_wrap(&raw, out);
}

/// Appends a text document of `len` bytes as base64 in 76-column lines: a CSV export of
/// invoices, or prose, as mailers attach them (compressible under the base64, unlike the
/// random bytes of [`base64_lines`]). Returns the file name extension, `csv` or `txt`.
pub fn base64_text_lines(rng: &mut impl Rng, len: usize, out: &mut String) -> &'static str {
    let mut doc = String::with_capacity(len + 128);
    let ext = if rng.random_bool(0.5) {
        doc.push_str("date,customer,invoice,amount,status\r\n");
        while doc.len() < len {
            let _ = write!(
                doc,
                "2025-{:02}-{:02},{} {},INV-{:06},{}.{:02},{}\r\n",
                rng.random_range(1..=12),
                rng.random_range(1..=28),
                FIRST_NAMES.choose(rng).expect("FIRST_NAMES is not empty"),
                LAST_NAMES.choose(rng).expect("LAST_NAMES is not empty"),
                rng.random_range(0..1_000_000),
                rng.random_range(1..100_000),
                rng.random_range(0..100),
                ["paid", "open", "overdue"][rng.random_range(0..3)],
            );
        }
        "csv"
    } else {
        words(rng, len, &mut doc);
        "txt"
    };
    doc.truncate(len);
    base64_wrap(doc.as_bytes(), out);
    ext
}

fn base64_wrap(raw: &[u8], out: &mut String) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
}

fn utc(epoch: u64) -> jiff::Zoned {
    jiff::Timestamp::from_second(epoch as i64)
        .expect("fixture dates are within jiff's range")
        .to_zoned(jiff::tz::TimeZone::UTC)
}

/// An RFC 5322 date for an epoch second (UTC).
pub fn rfc5322_date(epoch: u64) -> String {
    utc(epoch)
        .strftime("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// Kerio's log time stamp, `DD/Mon/YYYY HH:MM:SS` (UTC here; the server writes local time).
pub fn log_date(epoch: u64) -> String {
    utc(epoch).strftime("%d/%b/%Y %H:%M:%S").to_string()
}

/// iCalendar's basic UTC form, `YYYYMMDDTHHMMSSZ`.
pub fn ical_date(epoch: u64) -> String {
    utc(epoch).strftime("%Y%m%dT%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_342_500),
            "Sun, 22 Nov 2026 10:15:00 +0000"
        );
        assert_eq!(log_date(1_795_342_500), "22/Nov/2026 10:15:00");
        assert_eq!(ical_date(951_782_400), "20000229T000000Z");
    }
}
