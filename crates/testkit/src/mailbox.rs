//! Writes the store: mailboxes with their folders and messages, `#public`, logs, queue; and the
//! stale `<root>/store` of the store-outside shape.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use kc_core::config::escape_attr;
use kc_core::config::schema::{PUBLIC_ACL, SUBSCRIPTIONS};
use kc_core::store::{ACL_FLD, FOLDER_MAP, MESSAGES_DIR, PUBLIC_DIR, STATUS_FLD, SUB_FLD};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

use crate::calendar;
use crate::text::{self, SUBJECTS};
use crate::{Options, Plan, Side, User, hex, rng_for};

/// The folders every mailbox has (KERIO-FORMAT.md §3), with the share of messages each gets.
const FOLDERS: &[(&str, u32)] = &[
    ("INBOX", 44),
    ("INBOX/Projects", 8),
    ("INBOX/Projects/2025", 5),
    ("Sent Items", 20),
    ("Deleted Items", 7),
    ("Drafts", 2),
    ("Junk E-mail", 3),
    ("Calendar", 6),
    ("Contacts", 5),
    ("Tasks", 0),
    ("Notes", 0),
];

/// What kind of item a folder holds.
fn item_class(folder: &str) -> &'static str {
    match folder {
        "Calendar" => "IPM.Appointment",
        "Contacts" => "IPM.Contact",
        "Tasks" => "IPM.Task",
        "Notes" => "IPM.StickyNote",
        _ => "IPM.Note",
    }
}

/// One message to write.
struct Message {
    date: u64,
    text: String,
    /// Its `index.fld` class, when not the folder's.
    class: Option<&'static str>,
}

impl From<calendar::Item> for Message {
    fn from(item: calendar::Item) -> Message {
        Message {
            date: item.date,
            text: item.text,
            class: Some(item.class),
        }
    }
}

/// Writes one folder: its messages (mtime = the message's date), `index.fld` and `status.fld`
/// consistent with them, the ACL entries of its shares. Adds its messages and their bytes to
/// `total`.
fn write_folder(
    dir: &Path,
    class: &str,
    mut messages: Vec<Message>,
    acl: &[(String, &str)],
    rng: &mut ChaCha8Rng,
    total: &mut (u64, u64),
) -> anyhow::Result<()> {
    let msgs = dir.join(MESSAGES_DIR);
    fs_err::create_dir_all(&msgs)?;
    messages.sort_by_key(|m| m.date);
    let mut index = String::new();
    let mut bytes = 0u64;
    for (i, m) in messages.iter().enumerate() {
        let uid = i as u32 + 1;
        let path = msgs.join(format!("{uid:08x}.eml"));
        let mut file = fs_err::File::create(&path)?;
        std::io::Write::write_all(&mut file, m.text.as_bytes())?;
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(m.date))?;
        let flags = if rng.random_bool(0.7) {
            "F80000001"
        } else {
            "F80000000"
        };
        let _ = writeln!(
            index,
            "U{uid:08x} {flags} S{} D{:08x} M{:08x} I{:04x} C{}",
            m.text.len(),
            m.date,
            m.date,
            uid,
            m.class.unwrap_or(class)
        );
        bytes += m.text.len() as u64;
    }
    fs_err::write(dir.join("index.fld"), index)?;
    let mut guid = [0u8; 8];
    rng.fill(&mut guid[..]);
    let mut status = format!(
        "T2 G{}-{:04x} V{:08x} U{:08x} C{:08x} M6 D0 R0 N0 S{bytes}",
        hex(&guid),
        rng.random::<u16>(),
        rng.random::<u32>(),
        messages.len() + 1,
        messages.len()
    );
    for (who, rights) in acl {
        let _ = write!(status, " A{who} {rights}");
    }
    status.push('\n');
    fs_err::write(dir.join(STATUS_FLD), status)?;
    fs_err::write(dir.join("search.fld"), "")?;
    total.0 += messages.len() as u64;
    total.1 += bytes;
    Ok(())
}

/// Whose mail is drawn, and when: `n` messages dated within `span_days` before `until`.
struct Draw<'a> {
    options: &'a Options,
    owner: &'a str,
    colleagues: &'a [String],
    until: u64,
    span_days: u64,
}

/// Draws `n` messages for a folder.
fn draw_messages(rng: &mut ChaCha8Rng, draw: &Draw, folder: &str, n: usize) -> Vec<Message> {
    let Draw {
        options,
        owner,
        colleagues,
        until: now,
        span_days,
    } = *draw;
    // Median 8 KiB; sigma 1.4 puts about one message in 4,000 above 1 MiB.
    let sizes = LogNormal::new((8192f64).ln(), 1.4).expect("valid parameters");
    (0..n)
        .map(|_| {
            let date = now - 86_400 - rng.random_range(0..span_days * 86_400);
            let size = (sizes.sample(rng) as usize).clamp(600, options.max_message_size.max(600));
            let other = colleagues
                .get(rng.random_range(0..colleagues.len().max(1)))
                .cloned()
                .unwrap_or_else(|| "partner@example.biz".to_owned());
            let (from, to) = if folder == "Sent Items" || folder == "Drafts" {
                (owner.to_owned(), other)
            } else {
                (other, owner.to_owned())
            };
            Message {
                date,
                text: message(
                    rng,
                    folder,
                    (&from, &to),
                    date,
                    size,
                    options.text_attachments,
                ),
                class: None,
            }
        })
        .collect()
}

/// An RFC 5322 message (or a vCard / iCalendar item in those folders) of about `size` bytes.
/// `text_attachments` percent of its attachments (if it has one) are text documents.
fn message(
    rng: &mut ChaCha8Rng,
    folder: &str,
    (from, to): (&str, &str),
    date: u64,
    size: usize,
    text_attachments: u8,
) -> String {
    let mut m = String::with_capacity(size + 512);
    let id = rng.random::<u64>();
    let _ = write!(
        m,
        "Return-Path: <{from}>\r\nMessage-ID: <{id:016x}@{}>\r\nDate: {}\r\nFrom: {from}\r\nTo: {to}\r\nMIME-Version: 1.0\r\n",
        from.split('@').nth(1).unwrap_or("example.com"),
        text::rfc5322_date(date),
    );
    match folder {
        "Calendar" => {
            let _ = write!(
                m,
                "Subject: Meeting\r\nContent-Type: text/calendar; charset=utf-8\r\n\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:{id:016x}\r\nDTSTART:{}\r\nSUMMARY:Team meeting\r\nDESCRIPTION:",
                text::ical_date(date + 7 * 86_400)
            );
            text::words(rng, size.min(2000) / 2, &mut m);
            m.push_str("END:VEVENT\r\nEND:VCALENDAR\r\n");
        }
        "Contacts" => {
            m.push_str("Subject: Contact\r\nContent-Type: text/vcard; charset=utf-8\r\n\r\nBEGIN:VCARD\r\nVERSION:3.0\r\n");
            let _ = write!(m, "FN:{to}\r\nEMAIL:{from}\r\nNOTE:");
            text::words(rng, 200, &mut m);
            m.push_str("END:VCARD\r\n");
        }
        _ => {
            let subject = SUBJECTS[rng.random_range(0..SUBJECTS.len())];
            let _ = write!(m, "Subject: {subject}\r\n");
            if size > 24 * 1024 {
                // Mostly an attachment: random bytes, base64 (incompressible, as PDFs, images
                // and zipped office files are); with `text_attachments`, some are text
                // documents, which compress under their base64. No draw at 0: the default
                // output stays what it was.
                let boundary = format!("----=_Part_{id:x}");
                let _ = write!(
                    m,
                    "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                );
                text::words(rng, 1500, &mut m);
                let raw = (size.saturating_sub(m.len() + 64)) * 3 / 4;
                if text_attachments > 0 && rng.random_range(0..100u8) < text_attachments {
                    let mut encoded = String::with_capacity(raw * 4 / 3 + raw / 38 + 4);
                    let ext = text::base64_text_lines(rng, raw, &mut encoded);
                    let mime = if ext == "csv" {
                        "text/csv"
                    } else {
                        "text/plain"
                    };
                    let _ = write!(
                        m,
                        "--{boundary}\r\nContent-Type: {mime}; charset=utf-8; name=\"export-{id:x}.{ext}\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment\r\n\r\n{encoded}"
                    );
                } else {
                    let _ = write!(
                        m,
                        "--{boundary}\r\nContent-Type: application/pdf; name=\"report-{id:x}.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment\r\n\r\n"
                    );
                    text::base64_lines(rng, (size.saturating_sub(m.len() + 64)) * 3 / 4, &mut m);
                }
                let _ = write!(m, "--{boundary}--\r\n");
            } else {
                m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
                let body = size.saturating_sub(m.len());
                text::words(rng, body, &mut m);
            }
        }
    }
    m
}

/// Spreads `n` messages over the standard folders by their weights.
fn spread(rng: &mut ChaCha8Rng, n: usize) -> Vec<usize> {
    let total: u32 = FOLDERS.iter().map(|(_, w)| w).sum();
    let mut counts = vec![0; FOLDERS.len()];
    for _ in 0..n {
        let mut pick = rng.random_range(0..total);
        for (i, (_, w)) in FOLDERS.iter().enumerate() {
            if pick < *w {
                counts[i] += 1;
                break;
            }
            pick -= w;
        }
    }
    counts
}

fn colleagues_of(plan: &Plan, domain: &str, not: &str) -> Vec<String> {
    plan.users
        .iter()
        .filter(|u| u.domain == domain && u.name != not)
        .take(12)
        .map(User::address)
        .collect()
}

/// The calendar items of the `calendars` option for one folder of `user`'s mailbox, from an RNG
/// of their own (so the rest of the install is the same bytes with or without them): events in
/// Calendar (the install's one damaged item in its first local user's), an invitation in
/// INBOX.
fn calendar_items(
    plan: &Plan,
    user: &User,
    folder: &str,
    colleagues: &[String],
    options: &Options,
) -> Vec<Message> {
    let address = user.address();
    let mut rng = rng_for(options.seed, &format!("calendar:{address}:{folder}"));
    match folder {
        "Calendar" => {
            let damaged = plan
                .users
                .iter()
                .find(|u| u.dir.is_some() && !u.mapped)
                .is_some_and(|u| u.address() == address);
            calendar::calendar_folder(&mut rng, &address, colleagues, plan.now, damaged)
                .into_iter()
                .map(Message::from)
                .collect()
        }
        "INBOX" => {
            vec![calendar::inbox_invitation(&mut rng, &address, colleagues, plan.now).into()]
        }
        _ => Vec::new(),
    }
}

/// Writes a user's mailbox. Returns (messages, bytes).
pub(crate) fn write_user(
    store: &Path,
    plan: &Plan,
    user: &User,
    options: &Options,
) -> anyhow::Result<(u64, u64)> {
    let address = user.address();
    let mut rng = rng_for(options.seed, &address);
    let dir_name = user
        .dir
        .as_deref()
        .expect("only users with a mailbox are written");
    let mailbox = store.join("mail").join(&user.domain).join(dir_name);
    let m = options.messages_per_user;
    let n = if m == 0 {
        0
    } else {
        rng.random_range(m / 2..=m + m / 2)
    };
    let counts = spread(&mut rng, n);
    let colleagues = colleagues_of(plan, &user.domain, &user.name);
    let recent = Draw {
        options,
        owner: &address,
        colleagues: &colleagues,
        until: plan.now,
        span_days: 900,
    };
    let mut total = (0, 0);
    for ((folder, _), count) in FOLDERS.iter().zip(counts) {
        let acl: Vec<(String, &str)> = plan
            .shares_of(&address, Side::Owner)
            .filter(|s| s.folder == *folder)
            .map(|s| (s.sharee.clone(), s.rights))
            .collect();
        let mut messages = draw_messages(&mut rng, &recent, folder, count);
        if options.calendars {
            messages.extend(calendar_items(plan, user, folder, &colleagues, options));
        }
        write_folder(
            &mailbox.join(folder),
            item_class(folder),
            messages,
            &acl,
            &mut rng,
            &mut total,
        )?;
    }
    if let Some((owner, folder)) = &plan.deleted_folder
        && *owner == address
    {
        // The server's way of keeping a removed user's mail: a folder under another mailbox.
        let removed = folder.rsplit(' ').next().unwrap_or_default().to_owned();
        let old = Draw {
            owner: &removed,
            until: plan.now - 400 * 86_400,
            span_days: 300,
            ..recent
        };
        for sub in ["", "/INBOX"] {
            let messages = draw_messages(&mut rng, &old, "INBOX", 3);
            write_folder(
                &mailbox.join(format!("{folder}{sub}")),
                "IPM.Note",
                messages,
                &[],
                &mut rng,
                &mut total,
            )?;
        }
    }
    // Subscriptions to folders colleagues share with this user.
    let mut map = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<map>\n");
    for s in plan.shares_of(&address, Side::Sharee) {
        let owner_name = plan.full_names.get(&s.owner).unwrap_or(&s.owner);
        let _ = writeln!(
            map,
            "  <folder owner=\"{}\" path=\"{}\" name=\"{}\"/>",
            escape_attr(&s.owner),
            escape_attr(s.folder),
            escape_attr(&format!(
                "{owner_name}'s {}",
                s.folder.rsplit('/').next().unwrap_or(s.folder)
            ))
        );
    }
    map.push_str("</map>\n");
    fs_err::write(mailbox.join(FOLDER_MAP), map)?;
    write_mailbox_files(&mailbox, user, &subscriptions(plan, user, options))?;
    Ok(total)
}

/// The subscriptions beyond the mailbox's own folders, one a line, in the `global_public`
/// shape (else none, as before): the public folders, the folders shared with the user, and the
/// calendar of its first colleague (a subscription may outlive the share it was made for).
fn subscriptions(plan: &Plan, user: &User, options: &Options) -> String {
    if !options.shapes.global_public {
        return String::new();
    }
    let mut out = String::new();
    for folder in PUBLIC_FOLDERS {
        let _ = writeln!(out, "{}{folder}", SUBSCRIPTIONS.public_prefix);
    }
    let address = user.address();
    let mut shared: Vec<(String, &str)> = plan
        .shares_of(&address, Side::Sharee)
        .map(|s| (s.owner.clone(), s.folder))
        .collect();
    if let Some(colleague) = colleagues_of(plan, &user.domain, &user.name).first()
        && !shared
            .iter()
            .any(|(o, f)| o == colleague && *f == "Calendar")
    {
        shared.push((colleague.clone(), "Calendar"));
    }
    for (owner, folder) in shared {
        let _ = writeln!(out, "{}{owner}/{folder}", SUBSCRIPTIONS.shared_prefix);
    }
    out
}

/// The public folders, of each domain or (with `global_public`) of the server.
const PUBLIC_FOLDERS: [&str; 2] = ["Announcements", "Company Calendar"];

fn write_mailbox_files(mailbox: &Path, user: &User, subscriptions: &str) -> anyhow::Result<()> {
    fs_err::write(
        mailbox.join("settings.usr"),
        format!(
            "<settings>\n  <language>en</language>\n  <signature>{}</signature>\n</settings>\n",
            escape_attr(&user.full_name)
        ),
    )?;
    fs_err::write(mailbox.join("stats.usr"), "logins=12\n")?;
    fs_err::write(
        mailbox.join("filter.siv"),
        "require [\"fileinto\"];\nif header :contains \"X-Spam-Flag\" \"YES\" {\n  fileinto \"Junk E-mail\";\n}\n",
    )?;
    let folders: String = FOLDERS.iter().map(|(f, _)| format!("{f}\n")).collect();
    fs_err::write(mailbox.join(SUB_FLD), folders + subscriptions)?;
    Ok(())
}

/// Writes a mailbox left by an account removed a year ago. Returns (messages, bytes).
pub(crate) fn write_orphan(
    store: &Path,
    plan: &Plan,
    domain: &str,
    name: &str,
    options: &Options,
) -> anyhow::Result<(u64, u64)> {
    let address = format!("{name}@{domain}");
    let mut rng = rng_for(options.seed, &address);
    let mailbox = store.join("mail").join(domain).join(name);
    let colleagues = colleagues_of(plan, domain, name);
    let old = Draw {
        options,
        owner: &address,
        colleagues: &colleagues,
        until: plan.now - 365 * 86_400,
        span_days: 700,
    };
    let mut total = (0, 0);
    for folder in ["INBOX", "Sent Items", "Deleted Items"] {
        let n = rng.random_range(1..=options.messages_per_user.max(2));
        let messages = draw_messages(&mut rng, &old, folder, n);
        write_folder(
            &mailbox.join(folder),
            item_class(folder),
            messages,
            &[],
            &mut rng,
            &mut total,
        )?;
    }
    let user = User {
        name: name.to_owned(),
        domain: domain.to_owned(),
        full_name: name.to_owned(),
        description: String::new(),
        password: String::new(),
        enabled: false,
        rights: 0,
        forward: None,
        addresses: Vec::new(),
        groups: Vec::new(),
        quota: 0,
        mapped: false,
        dir: Some(name.to_owned()),
    };
    fs_err::write(
        mailbox.join(FOLDER_MAP),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<map>\n</map>\n",
    )?;
    write_mailbox_files(&mailbox, &user, &subscriptions(plan, &user, options))?;
    Ok(total)
}

/// The public folders in `public`, shared with `readers`.
fn write_public(
    public: &Path,
    readers: &[(String, &str)],
    draw: &Draw,
    rng: &mut ChaCha8Rng,
    total: &mut (u64, u64),
) -> anyhow::Result<()> {
    for folder in PUBLIC_FOLDERS {
        let n = rng.random_range(1..=4);
        let messages = draw_messages(rng, draw, "INBOX", n);
        let class = if folder == "Company Calendar" {
            "IPM.Appointment"
        } else {
            "IPM.Note"
        };
        write_folder(&public.join(folder), class, messages, readers, rng, total)?;
    }
    Ok(())
}

/// `#public` and `#archive` folders, logs, queue, tmp, and the server's own backup directory.
/// Returns the (messages, bytes) of the `#` folders.
pub(crate) fn write_server_dirs(
    store: &Path,
    plan: &Plan,
    options: &Options,
) -> anyhow::Result<(u64, u64)> {
    let mut total = (0, 0);
    // The readers of each domain's public folders: its first three users with a mailbox.
    let readers_of = |domain: &str| -> Vec<(String, &'static str)> {
        plan.users
            .iter()
            .filter(|u| u.domain == domain && u.dir.is_some())
            .take(3)
            .enumerate()
            .map(|(k, u)| (u.address(), if k == 0 { "lrswipkxte" } else { "lr" }))
            .collect()
    };
    let local = || plan.domains.iter().filter(|d| !d.mapped);
    if options.shapes.global_public {
        // The server's public folders, for every domain: every domain's readers in one ACL,
        // in the folders' status.fld and in acl.fld.
        let public = store.join("mail").join(PUBLIC_DIR);
        let readers: Vec<(String, &str)> = local().flat_map(|d| readers_of(&d.name)).collect();
        let admin = format!("postmaster@{}", plan.domains[0].name);
        let draw = Draw {
            options,
            owner: &admin,
            colleagues: &[],
            until: plan.now,
            span_days: 200,
        };
        let mut rng = rng_for(options.seed, PUBLIC_DIR);
        write_public(&public, &readers, &draw, &mut rng, &mut total)?;
        let acl: String = readers
            .iter()
            .map(|(who, rights)| format!("{}{who} {rights}\n", PUBLIC_ACL.entry_prefix))
            .collect();
        fs_err::write(public.join(ACL_FLD), acl)?;
    }
    for (i, d) in local().enumerate() {
        let mut rng = rng_for(options.seed, &format!("#public@{}", d.name));
        let admin = format!("postmaster@{}", d.name);
        let draw = Draw {
            options,
            owner: &admin,
            colleagues: &[],
            until: plan.now,
            span_days: 200,
        };
        if !options.shapes.global_public {
            let public = store.join("mail").join(&d.name).join(PUBLIC_DIR);
            write_public(&public, &readers_of(&d.name), &draw, &mut rng, &mut total)?;
        }
        if i == 0 {
            let archive = store.join("mail").join(&d.name).join("#archive/2025-Q4");
            let messages = draw_messages(&mut rng, &draw, "INBOX", 2);
            write_folder(&archive, "IPM.Note", messages, &[], &mut rng, &mut total)?;
        }
    }
    let logs = store.join("logs");
    fs_err::create_dir_all(&logs)?;
    let day = plan.now - 2 * 86_400;
    let admin = plan.users.first().map(User::address).unwrap_or_default();
    let mut config_log = String::new();
    let mut warning_log = String::new();
    for (k, u) in plan.users.iter().take(5).enumerate() {
        let _ = writeln!(
            config_log,
            "[{}] {admin} - Insert User: Name='{}', Domain='{}', Password='xxxxxx'",
            text::log_date(day + k as u64 * 60),
            u.name,
            u.domain
        );
    }
    for (d, n) in &plan.orphans {
        let _ = writeln!(
            warning_log,
            "[{}] {admin} - User {n}@{d} removed, mailbox kept",
            text::log_date(day - 300 * 86_400)
        );
    }
    fs_err::write(logs.join("config.log"), config_log)?;
    fs_err::write(logs.join("warning.log"), warning_log)?;
    fs_err::write(
        logs.join("mail.log"),
        format!(
            "[{}] Recv: Queue-ID: 1, From: <a@example.biz>\n",
            text::log_date(day)
        ),
    )?;
    fs_err::write(logs.join("security.log"), "")?;
    fs_err::write(logs.join("error.log"), "")?;
    let queue = store.join("queue");
    fs_err::create_dir_all(&queue)?;
    fs_err::write(
        queue.join("00000001.eml"),
        "From: a@example.biz\r\nTo: b@example.com\r\n\r\nstuck\r\n",
    )?;
    fs_err::create_dir_all(store.join("tmp"))?;
    // The server's own backups: never backed up again by kc-backup.
    let backup = store.join("backup");
    fs_err::create_dir_all(&backup)?;
    fs_err::write(
        backup.join("F20261115T020000Z.zip"),
        "PK\u{5}\u{6}\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    )?;
    Ok(total)
}

/// The stale `<root>/store` of the store-outside shape: what the store held before it was moved,
/// smaller and different (other seed, one message a folder): the mailboxes of two real accounts,
/// a mailbox and a domain only it has, its own public folders and logs. No tool may read it.
pub(crate) fn write_stale_store(
    stale: &Path,
    plan: &Plan,
    options: &Options,
) -> anyhow::Result<()> {
    let old = Options {
        seed: options.seed ^ 0x57a1e,
        messages_per_user: 1,
        ..options.clone()
    };
    for u in plan
        .users
        .iter()
        .filter(|u| u.dir.is_some() && !u.mapped)
        .take(2)
    {
        write_user(stale, plan, u, &old)?;
    }
    write_orphan(stale, plan, &plan.domains[0].name, "stale.only", &old)?;
    write_orphan(stale, plan, "stale-domain.example", "ghost", &old)?;
    write_server_dirs(stale, plan, &old)?;
    Ok(())
}
