use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime};

use super::*;
use crate::progress::Silent;

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// A store with two domains, a mailbox with nested folders and a non-UTF-8 folder name, and
/// `#public`.
fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mail = dir.path().join("mail");
    let jdoe = mail.join("example.com/jdoe");
    write(&jdoe.join("INBOX/#msgs/00000001.eml"), &[b'x'; 100]);
    write(&jdoe.join("INBOX/#msgs/00000002.eml"), &[b'y'; 50]);
    write(&jdoe.join("INBOX/status.fld"), b"T2 S0\n");
    write(&jdoe.join("INBOX/Projects/Old/#msgs/00000001.eml"), b"z");
    write(&jdoe.join("INBOX/Projects/Old/status.fld"), b"T2 S0\n");
    write(&jdoe.join("INBOX/#assoc/1.bin"), b"assoc");
    let latin1 = jdoe.join(OsStr::from_bytes(b"Caf\xe9"));
    write(
        &latin1.join("status.fld"),
        b"T2 S0 Aasmith@example.com lr\n",
    );
    write(&jdoe.join("folder.map"), b"<map/>");
    write(&mail.join("example.com/#public/Shared/status.fld"), b"T2\n");
    write(&mail.join("#public/All/status.fld"), b"T2\n");
    write(&mail.join("#public/acl.fld"), b"Ajdoe@example.com lr\n");
    write(&mail.join("example.com/asmith/INBOX/index.fld"), b"");
    write(&mail.join("other.org/zed/INBOX/#msgs/00000001.eml"), b"hi");
    let newest = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    std::fs::File::options()
        .write(true)
        .open(jdoe.join("INBOX/#msgs/00000002.eml"))
        .expect("open")
        .set_modified(newest)
        .expect("mtime");
    std::fs::File::options()
        .write(true)
        .open(jdoe.join("INBOX/#msgs/00000001.eml"))
        .expect("open")
        .set_modified(newest - Duration::from_secs(60))
        .expect("mtime");
    std::fs::File::options()
        .write(true)
        .open(jdoe.join("INBOX/Projects/Old/#msgs/00000001.eml"))
        .expect("open")
        .set_modified(newest - Duration::from_secs(3600))
        .expect("mtime");
    dir
}

#[test]
fn mailboxes_skip_server_folders_and_keep_order() {
    let dir = store();
    let mail = dir.path().join("mail");
    let names: Vec<_> = domains(&mail)
        .expect("domains")
        .into_iter()
        .map(|d| d.name)
        .collect();
    // `mail/#public` is the server's public folders, never a domain.
    assert_eq!(names, ["example.com", "other.org"]);
    assert_eq!(
        server_dirs(&mail).expect("server dirs"),
        [mail.join("#public")]
    );
    let boxes: Vec<_> = all_mailboxes(&mail)
        .expect("mailboxes")
        .into_iter()
        .map(|m| {
            format!(
                "{}/{}",
                m.domain.to_string_lossy(),
                m.name.to_string_lossy()
            )
        })
        .collect();
    assert_eq!(
        boxes,
        ["example.com/asmith", "example.com/jdoe", "other.org/zed"]
    );
    assert!(
        domains(&dir.path().join("absent"))
            .expect("no dir is empty")
            .is_empty()
    );
}

#[test]
fn folders_are_nested_and_keep_non_utf8_names() {
    let dir = store();
    let jdoe = dir.path().join("mail/example.com/jdoe");
    let found = folders(&jdoe).expect("folders");
    let expected: Vec<PathBuf> = vec![
        PathBuf::from(OsStr::from_bytes(b"Caf\xe9")),
        PathBuf::from("INBOX"),
        PathBuf::from("INBOX/Projects"),
        PathBuf::from("INBOX/Projects/Old"),
    ];
    assert_eq!(found, expected);
}

#[test]
fn folder_level_files_do_not_enter_message_dirs() {
    let dir = store();
    let found =
        folder_level_files(&dir.path().join("mail"), &[STATUS_FLD, FOLDER_MAP]).expect("walk");
    let rel: Vec<_> = found
        .iter()
        .map(|p| p.strip_prefix(dir.path()).expect("under").to_path_buf())
        .collect();
    let expected: Vec<PathBuf> = vec![
        "mail/#public/All/status.fld".into(),
        "mail/example.com/#public/Shared/status.fld".into(),
        PathBuf::from(OsStr::from_bytes(
            b"mail/example.com/jdoe/Caf\xe9/status.fld",
        )),
        "mail/example.com/jdoe/INBOX/Projects/Old/status.fld".into(),
        "mail/example.com/jdoe/INBOX/status.fld".into(),
        "mail/example.com/jdoe/folder.map".into(),
    ];
    assert_eq!(rel, expected);
}

#[test]
fn stats_count_bytes_files_messages_and_newest() {
    let dir = store();
    let jdoe = dir.path().join("mail/example.com/jdoe");
    let stats = mailbox_stats(&jdoe).expect("stats");
    // 100 + 50 + 6 + 1 + 6 + 5 + 29 + 6 bytes in 8 files.
    assert_eq!(stats.files, 8);
    assert_eq!(stats.bytes, 100 + 50 + 6 + 1 + 6 + 5 + 29 + 6);
    assert_eq!(stats.messages, 3);
    // Neither an index nor a Date: header: no date, whatever the files' times say.
    assert_eq!(stats.newest, None);

    let asmith = dir.path().join("mail/example.com/asmith");
    let missing = dir.path().join("mail/example.com/nobody");
    let all = stats_of_all(&[&jdoe, &asmith, &missing], &Silent);
    assert_eq!(all[0].as_ref().expect("jdoe"), &stats);
    assert_eq!(all[1].as_ref().expect("asmith").messages, 0);
    let err = all[2].as_ref().expect_err("missing");
    assert!(err.to_string().contains("mail/example.com/nobody"), "{err}");
}

#[test]
fn the_newest_message_is_dated_by_the_index_else_by_its_header_never_by_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mb = dir.path().join("jdoe");
    let at = |secs: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    // INBOX has an index: its D fields date it (0x6606c5e7 = 2024-03-29T22:25:11Z), and its
    // message, whose header says 2030, is not opened.
    write(
        &mb.join("INBOX/index.fld"),
        b"U00000001 F80000001 S5 D6606c5e7 M6606c5e7 I0001 CIPM.Note\nU00000002 F80000001 S5 D6500aaaa M6606c5e8 I0002 CIPM.Note\n",
    );
    write(
        &mb.join("INBOX/#msgs/00000001.eml"),
        b"Date: Tue, 1 Jan 2030 00:00:00 +0000\r\n\r\nbody",
    );
    assert_eq!(mailbox_stats(&mb).expect("stats").newest, at(0x6606c5e7));
    // A folder without an index: the newest Date: header, folded or not, any zone.
    write(
        &mb.join("Archive/#msgs/00000001.eml"),
        b"Subject: x\r\nDate:\r\n Sat, 30 Mar 2024 10:00:00 +0200\r\n\r\nbody",
    );
    write(
        &mb.join("Archive/#msgs/00000002.eml"),
        b"From: a@b\nDate: Fri, 29 Mar 2024 00:00:00 +0000\n\nDate: Mon, 1 Jan 2035 00:00:00 +0000\n",
    );
    write(&mb.join("Archive/#msgs/00000003.eml"), b"no header at all");
    // 2024-03-30T08:00:00Z.
    assert_eq!(mailbox_stats(&mb).expect("stats").newest, at(1_711_785_600));
}

#[test]
fn dates_out_of_range_fifos_and_endless_files_are_not_believed_or_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mb = dir.path().join("jdoe");
    // An overflowing D, one in 2099, and a sender's Date: of 2099: none of them counts.
    write(
        &mb.join("INBOX/index.fld"),
        b"U00000001 S1 Dffffffffffffffff\nU00000002 S1 Df4865700\nU00000003 S1 D6606c5e7\n",
    );
    write(
        &mb.join("Sent/#msgs/00000001.eml"),
        b"Date: Thu, 1 Jan 2099 00:00:00 +0000\r\n\r\nx",
    );
    let at = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(0x6606c5e7));
    assert_eq!(mailbox_stats(&mb).expect("stats").newest, at);
    // A FIFO where an index is expected, and /dev/zero behind a link: read as nothing, at once.
    std::fs::create_dir_all(mb.join("Drafts")).expect("mkdir");
    let made = std::process::Command::new("mkfifo")
        .arg(mb.join("Drafts/index.fld"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    std::fs::create_dir_all(mb.join("Notes")).expect("mkdir");
    std::os::unix::fs::symlink("/dev/zero", mb.join("Notes/index.fld")).expect("link");
    assert_eq!(mailbox_stats(&mb).expect("stats").newest, at);
    let err = read_regular(&mb.join("Drafts/index.fld"), 10).expect_err("a FIFO");
    assert_eq!(err.to_string(), "not a regular file");
}

#[test]
fn names_compare_case_insensitively() {
    assert!(name_matches(OsStr::new("JDoe"), "jdoe"));
    assert!(!name_matches(OsStr::from_bytes(b"j\xe9"), "je"));
    assert!(is_server_folder(OsStr::new("#public")));
    assert!(!is_server_folder(OsStr::new("public")));
}
