//! Calendar items for the `calendars` option: events and invitations whose `ORGANIZER` and
//! `ATTENDEE` name the mailbox's owner and colleagues (other mailboxes), written the ways real
//! clients write them: plain 8-bit with folded lines, quoted-printable with soft line breaks
//! inside the addresses, base64 inside a `multipart/alternative` beside a text part that names
//! the same addresses (which a rename must not touch), and one damaged item per install (a
//! multipart without its closing boundary), which a rename must leave alone and name.
//!
//! Lines are folded at 73 octets, as some writers do, so that a rewrite's refolding at 75 shows.
//! Every choice is drawn from the caller's RNG: the same seed writes the same bytes.

use std::fmt::Write as _;

use base64::Engine as _;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::text;

/// The subject of the damaged item, by which tests find it.
pub const DAMAGED_SUBJECT: &str = "Quarterly planning (damaged copy)";

/// One calendar item: its date (the message's mtime), its bytes, its `index.fld` class.
#[derive(Debug)]
pub(crate) struct Item {
    pub date: u64,
    pub text: String,
    pub class: &'static str,
}

/// A content line folded at 73 octets (all fixture text is ASCII), CRLF after each piece.
fn folded(line: &str) -> String {
    let mut out = String::new();
    let bytes = line.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let room = if at == 0 { 73 } else { 72 };
        let end = (at + room).min(bytes.len());
        if at > 0 {
            out.push(' ');
        }
        out.push_str(&line[at..end]);
        out.push_str("\r\n");
        at = end;
    }
    out
}

fn name_of(address: &str) -> &str {
    address.split('@').next().unwrap_or(address)
}

/// The iCalendar text of an event, each line given to `line` (which folds it, or not).
fn vcalendar(
    rng: &mut ChaCha8Rng,
    organizer: &str,
    attendees: &[&str],
    summary: &str,
    start: u64,
    line: impl Fn(&str) -> String,
) -> String {
    let mut c = String::new();
    for l in [
        "BEGIN:VCALENDAR".to_owned(),
        "PRODID:-//Kerio Technologies//Kerio Connect//EN".to_owned(),
        "VERSION:2.0".to_owned(),
        "METHOD:REQUEST".to_owned(),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{:016x}@kerio.example", rng.random::<u64>()),
        format!("DTSTART:{}", text::ical_date(start)),
        format!("DTEND:{}", text::ical_date(start + 3600)),
        format!("SUMMARY:{summary}"),
        format!("ORGANIZER;CN=\"{}\":mailto:{organizer}", name_of(organizer)),
    ] {
        c.push_str(&line(&l));
    }
    for (k, a) in attendees.iter().enumerate() {
        let partstat = ["ACCEPTED", "NEEDS-ACTION", "TENTATIVE"][k % 3];
        c.push_str(&line(&format!(
            "ATTENDEE;CN=\"{}\";ROLE=REQ-PARTICIPANT;PARTSTAT={partstat};RSVP=TRUE:mailto:{a}",
            name_of(a)
        )));
    }
    let mut description = String::from("DESCRIPTION:Agenda: ");
    for _ in 0..rng.random_range(12..30) {
        description.push_str(
            ["review", "budget", "plan", "status", "risks", "next"][rng.random_range(0..6)],
        );
        description.push(' ');
    }
    description.push_str("(a=b; see mailto:");
    description.push_str(organizer);
    description.push(')');
    for l in [
        description,
        "END:VEVENT".to_owned(),
        "END:VCALENDAR".to_owned(),
    ] {
        c.push_str(&line(&l));
    }
    c
}

fn headers(rng: &mut ChaCha8Rng, from: &str, to: &[&str], date: u64, subject: &str) -> String {
    format!(
        "Return-Path: <{from}>\r\nMessage-ID: <{:016x}@{}>\r\nDate: {}\r\nFrom: {from}\r\nTo: {}\r\nMIME-Version: 1.0\r\nSubject: {subject}\r\n",
        rng.random::<u64>(),
        from.split('@').nth(1).unwrap_or("example.com"),
        text::rfc5322_date(date),
        to.join(", ")
    )
}

fn base64_wrapped(bytes: &[u8], width: usize) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::new();
    for chunk in encoded.as_bytes().chunks(width) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}

/// The calendar items of `owner`'s Calendar folder, with `colleagues` (other mailboxes) as
/// organizers and attendees; `damaged` adds the install's one damaged item.
pub(crate) fn calendar_folder(
    rng: &mut ChaCha8Rng,
    owner: &str,
    colleagues: &[String],
    now: u64,
    damaged: bool,
) -> Vec<Item> {
    let pick = |rng: &mut ChaCha8Rng| {
        colleagues
            .get(rng.random_range(0..colleagues.len().max(1)))
            .cloned()
            .unwrap_or_else(|| "partner@example.biz".to_owned())
    };
    let mut items = Vec::new();
    let date = |rng: &mut ChaCha8Rng| now - 86_400 - rng.random_range(0..200 * 86_400);

    // 8-bit, folded: the owner organizes, two colleagues attend.
    let (c1, c2) = (pick(rng), pick(rng));
    let d = date(rng);
    let cal = vcalendar(
        rng,
        owner,
        &[&c1, &c2],
        "Project review",
        d + 86_400 * 3,
        folded,
    );
    let mut m = headers(rng, owner, &[&c1, &c2], d, "Project review");
    m.push_str("Content-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n");
    m.push_str(&cal);
    items.push(Item {
        date: d,
        text: m,
        class: "IPM.Appointment",
    });

    // Quoted-printable, lines not folded (the encoding's soft breaks cut them): a colleague
    // organizes, the owner attends.
    let c3 = pick(rng);
    let d = date(rng);
    let cal = vcalendar(
        rng,
        &c3,
        &[owner, &c1],
        "Caf\u{e9} = kick-off",
        d + 86_400 * 5,
        |l| format!("{l}\r\n"),
    );
    let mut m = headers(rng, &c3, &[owner, &c1], d, "Kick-off");
    m.push_str("Content-Type: text/calendar; charset=utf-8; method=REQUEST\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
    m.push_str(&quoted_printable::encode_to_str(cal.as_bytes()));
    items.push(Item {
        date: d,
        text: m,
        class: "IPM.Appointment",
    });

    // Base64 (72 columns) beside a text part naming the same addresses.
    let d = date(rng);
    m = invitation(rng, &c2, &[owner, &c3], d, 72);
    items.push(Item {
        date: d,
        text: m,
        class: "IPM.Appointment",
    });

    if damaged {
        let d = date(rng);
        let boundary = format!("----=_Damaged_{:x}", rng.random::<u32>());
        let cal = vcalendar(rng, owner, &[&c1], "Quarterly planning", d + 86_400, folded);
        let mut m = headers(rng, owner, &[&c1], d, DAMAGED_SUBJECT);
        let _ = write!(
            m,
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/calendar; charset=utf-8\r\n\r\n{cal}"
        );
        // The closing boundary was lost.
        items.push(Item {
            date: d,
            text: m,
            class: "IPM.Appointment",
        });
    }
    items
}

/// An invitation from `organizer`: `multipart/alternative`, a text part and the calendar in
/// base64 lines of `width` columns.
pub(crate) fn invitation(
    rng: &mut ChaCha8Rng,
    organizer: &str,
    attendees: &[&str],
    date: u64,
    width: usize,
) -> String {
    let boundary = format!("----=_Invite_{:x}", rng.random::<u32>());
    let cal = vcalendar(
        rng,
        organizer,
        attendees,
        "Budget meeting",
        date + 86_400 * 2,
        folded,
    );
    let mut m = headers(
        rng,
        organizer,
        attendees,
        date,
        "Invitation: Budget meeting",
    );
    let _ = write!(
        m,
        "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\nThis is a multi-part message in MIME format.\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYou are invited by mailto:{organizer} with {}.\r\nORGANIZER:mailto:{organizer}\r\n\r\n--{boundary}\r\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--{boundary}--\r\n",
        attendees.join(", "),
        base64_wrapped(cal.as_bytes(), width)
    );
    m
}

/// The invitation in an attendee's INBOX (class `IPM.Schedule.Meeting.Request`), base64 in 76
/// columns.
pub(crate) fn inbox_invitation(
    rng: &mut ChaCha8Rng,
    owner: &str,
    colleagues: &[String],
    now: u64,
) -> Item {
    let organizer = colleagues
        .get(rng.random_range(0..colleagues.len().max(1)))
        .cloned()
        .unwrap_or_else(|| "partner@example.biz".to_owned());
    let date = now - 86_400 - rng.random_range(0..30 * 86_400);
    Item {
        date,
        text: invitation(rng, &organizer, &[owner], date, 76),
        class: "IPM.Schedule.Meeting.Request",
    }
}
