//! kc-backup end to end: the real binary on kc-fixture installs, checked with GNU tar,
//! sha256sum and diff.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::Command;
use kc_testkit::Options;

struct Install {
    _dir: tempfile::TempDir,
    root: PathBuf,
    _turn: kc_testkit::Turn,
}

/// A small kc-fixture install plus the awkward cases: a non-UTF-8 folder name, a path over 100
/// bytes, an empty file, an empty directory, a file larger than a chunk, a symlink, odd modes.
fn install() -> Install {
    let (dir, _) = kc_testkit::temp_install(&Options {
        users: 12,
        messages_per_user: 3,
        ..Options::default()
    })
    .expect("fixture");
    let root = dir.path().join("kerio");
    let mailbox = first_mailbox(&root);
    let latin1 = mailbox.join(OsStr::from_bytes(b"Caf\xe9"));
    std::fs::create_dir_all(latin1.join("#msgs")).expect("mkdir");
    std::fs::write(
        latin1.join("#msgs/00000001.eml"),
        b"Subject: caf\xe9\r\n\r\nhi\r\n",
    )
    .expect("write");
    let long = mailbox
        .join("INBOX")
        .join("a-very-long-folder-name-that-keeps-going".repeat(3))
        .join("and-deeper-still");
    std::fs::create_dir_all(&long).expect("mkdir");
    std::fs::write(long.join("status.fld"), b"T2 S0\n").expect("write");
    std::fs::write(mailbox.join("empty.usr"), b"").expect("write");
    std::fs::create_dir_all(mailbox.join("Empty Folder")).expect("mkdir");
    // 9 MiB of varied bytes: split across three chunks.
    let big: Vec<u8> = (0..9u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(mailbox.join("INBOX/#msgs/big.eml"), &big).expect("write");
    std::os::unix::fs::symlink("INBOX", mailbox.join("Inbox-link")).expect("symlink");
    std::fs::set_permissions(
        root.join("license/license.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    Install {
        _dir: dir,
        root,
        _turn: kc_testkit::Turn::shared(),
    }
}

fn first_mailbox(root: &Path) -> PathBuf {
    root.join("store/mail/example.com")
        .read_dir()
        .expect("domain dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| !p.file_name().expect("name").as_bytes().starts_with(b"#"))
        .min()
        .expect("a mailbox")
}

fn kc_backup(root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kc-backup").expect("binary");
    cmd.arg("--server")
        .arg(root)
        .arg("--pid-file")
        .arg(root.join("no.pid"))
        .arg("--no-progress");
    cmd
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).expect("utf-8")
}

fn archives(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("kc-backups"))
        .expect("backup dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.to_string_lossy().ends_with(".tar.gz") || p.to_string_lossy().ends_with(".tar.zst")
        })
        .collect();
    v.sort();
    v
}

/// `diff -r` of two trees, leaving out what a backup leaves out by design.
fn assert_same_tree(a: &Path, b: &Path) {
    let out = Std::new("diff")
        .args([
            "-r",
            "--no-dereference",
            "-x",
            "kc-backups",
            "-x",
            ".kc.lock",
            "-x",
            "kc-journal",
            "-x",
            "backup",
        ])
        .arg(a)
        .arg(b)
        .output()
        .expect("diff runs");
    assert!(
        out.status.success(),
        "trees differ:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn mode_and_mtime(p: &Path) -> (u32, i64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).expect("meta");
    (m.mode(), m.mtime())
}

#[test]
fn gnu_tar_extracts_gzip_and_zstd_backups_identically_and_sha256sum_accepts_them() {
    let inst = install();
    for (compression, tar_flag) in [("gzip", "-xzf"), ("zstd", "--zstd")] {
        let line = stdout(kc_backup(&inst.root).args(["create", "--compression", compression]));
        assert!(line.starts_with('F') && line.contains("full"), "{line}");
        let archive = archives(&inst.root)
            .into_iter()
            .find(|a| {
                a.to_string_lossy().contains(if compression == "gzip" {
                    ".tar.gz"
                } else {
                    ".tar.zst"
                })
            })
            .expect("archive");
        let name = archive
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            name.len() == "F20261122T101500Z.tar.gz".len() + usize::from(compression == "zstd"),
            "{name}"
        );

        let out = tempfile::tempdir().expect("tempdir");
        let mut tar = Std::new("tar");
        if compression == "zstd" {
            tar.args(["--zstd", "-xf"]);
        } else {
            tar.arg(tar_flag);
        }
        let status = tar
            .arg(&archive)
            .arg("-C")
            .arg(out.path())
            .status()
            .expect("tar runs");
        assert!(
            status.success(),
            "GNU tar extracts the {compression} archive"
        );
        assert_same_tree(&inst.root, out.path());
        // Modes and mtimes of files come back too.
        for rel in ["license/license.key", "users.cfg"] {
            assert_eq!(
                mode_and_mtime(&inst.root.join(rel)),
                mode_and_mtime(&out.path().join(rel)),
                "{rel}"
            );
        }

        let manifest = format!("{}.sha256", archive.display());
        let check = Std::new("sha256sum")
            .args(["-c", "--quiet", "--strict"])
            .arg(&manifest)
            .current_dir(&inst.root)
            .output()
            .expect("sha256sum");
        assert!(
            check.status.success(),
            "sha256sum -c: {}",
            String::from_utf8_lossy(&check.stdout)
        );

        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(format!("{}.json", archive.display())).expect("json"),
        )
        .expect("parses");
        assert_eq!(meta["kind"], "full");
        assert_eq!(meta["compression"], compression);
        // The defaults: gzip's and pigz's own 6, zstd's own 3.
        assert_eq!(meta["level"], if compression == "gzip" { 6 } else { 3 });
        assert!(
            meta["chunks"].as_array().expect("chunks").len() >= 3,
            "the 9 MiB file spans chunks"
        );
        assert_eq!(
            meta["archive_bytes"].as_u64(),
            Some(std::fs::metadata(&archive).expect("meta").len())
        );
        std::fs::remove_file(&archive).expect("rm");
    }
}

#[test]
fn every_gzip_level_gives_an_archive_gnu_tar_extracts_smaller_as_the_level_rises() {
    let inst = install();
    let backups = tempfile::tempdir().expect("tempdir");
    let mut sizes = Vec::new();
    for level in ["0", "1", "9"] {
        let dir = backups.path().join(format!("level-{level}"));
        kc_backup(&inst.root)
            .arg("--backup-dir")
            .arg(&dir)
            .args(["create", &format!("--level={level}")])
            .assert()
            .success();
        let archive = std::fs::read_dir(&dir)
            .expect("backup dir")
            .map(|e| e.expect("entry").path())
            .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
            .expect("archive");
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(format!("{}.json", archive.display())).expect("json"),
        )
        .expect("parses");
        assert_eq!(meta["level"].to_string(), level);
        let out = tempfile::tempdir().expect("tempdir");
        let status = Std::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(out.path())
            .status()
            .expect("tar runs");
        assert!(
            status.success(),
            "GNU tar extracts the level {level} archive"
        );
        assert_same_tree(&inst.root, out.path());
        sizes.push(std::fs::metadata(&archive).expect("meta").len());
    }
    // Level 0 stores; 9 is smaller than 1.
    assert!(sizes[0] > sizes[1] && sizes[1] > sizes[2], "{sizes:?}");
}

#[test]
fn verify_catches_bytes_appended_after_the_last_chunk_and_a_level_out_of_range_writes_nothing() {
    let inst = install();
    for level in ["10", "-1", "99"] {
        let bad = kc_backup(&inst.root)
            .args(["create", &format!("--level={level}")])
            .assert()
            .code(2);
        assert_eq!(
            String::from_utf8_lossy(&bad.get_output().stderr),
            format!(
                "kc-backup: error: --level {level}: gzip levels are 0 to 9; nothing was written\n"
            )
        );
    }
    let zstd = kc_backup(&inst.root)
        .args(["create", "--compression", "zstd", "--level", "23"])
        .assert()
        .code(2);
    assert!(
        String::from_utf8_lossy(&zstd.get_output().stderr).contains("zstd levels are 1 to 22"),
        "{zstd:?}"
    );
    let dir = inst.root.join("kc-backups");
    assert!(
        !dir.exists() || archives(&inst.root).is_empty(),
        "nothing written"
    );

    stdout(kc_backup(&inst.root).arg("create"));
    let archive = archives(&inst.root).remove(0);
    let name = archive.to_str().expect("utf-8").to_owned();
    kc_backup(&inst.root)
        .args(["verify", &name])
        .assert()
        .success();
    // A whole gzip member after the end: gzip -t and tar take it; the index does not.
    let mut member = Vec::new();
    {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(&mut member, flate2::Compression::default());
        gz.write_all(&[0u8; 1024]).expect("compress");
        gz.finish().expect("finish");
    }
    let mut bytes = std::fs::read(&archive).expect("read");
    let size = bytes.len();
    bytes.extend_from_slice(&member);
    std::fs::write(&archive, &bytes).expect("write");
    let bad = kc_backup(&inst.root)
        .args(["verify", &name])
        .assert()
        .code(1);
    let out = String::from_utf8_lossy(&bad.get_output().stdout).into_owned();
    assert_eq!(
        out,
        format!(
            "{name}: is {} bytes, but its index ends at byte {size} and its record says {size}: bytes were added to it or cut from it\n",
            size + member.len()
        )
    );
}

/// A manifest line listed twice is a duplicate (with both line numbers), not a file missing from
/// the archive; a bit flipped inside a gzip chunk is that chunk's corruption (data or checksum),
/// never "holds N bytes of tar, the index says M": the flip makes it inflate to another length,
/// found before the CRC at its end is read.
#[test]
fn verify_names_a_duplicated_manifest_line_and_a_flipped_bit_in_a_gzip_chunk_as_such() {
    let inst = install();
    stdout(kc_backup(&inst.root).arg("create"));
    let archive = archives(&inst.root).remove(0);
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{}.json", archive.display())).expect("json"),
    )
    .expect("parses");
    let length = meta["chunks"][0]["length"].as_u64().expect("length") as usize;
    // A manifest line listed twice is named as a duplicate, with both line numbers.
    let manifest = PathBuf::from(format!("{}.sha256", archive.display()));
    let listed = std::fs::read(&manifest).expect("manifest");
    let first = listed
        .split_inclusive(|&b| b == b'\n')
        .next()
        .expect("a line");
    std::fs::write(&manifest, [&listed[..], first].concat()).expect("write");
    let dup = kc_backup(&inst.root)
        .args(["verify", archive.to_str().expect("utf-8")])
        .assert()
        .code(1);
    let out = String::from_utf8_lossy(&dup.get_output().stdout).into_owned();
    let duplicate = format!(
        ", line {}: a duplicated line (the same file as line 1): ",
        listed.iter().filter(|&&b| b == b'\n').count() + 1
    );
    assert!(
        out.lines().count() == 1 && out.contains(&duplicate) && !out.contains("not in the archive"),
        "{out}"
    );
    std::fs::write(&manifest, listed).expect("write");
    let clean = std::fs::read(&archive).expect("read");
    for eighth in 1..8 {
        let mut bytes = clean.clone();
        bytes[length * eighth / 8] ^= 0x10;
        std::fs::write(&archive, &bytes).expect("write");
        let bad = kc_backup(&inst.root)
            .args(["verify", archive.to_str().expect("utf-8")])
            .assert()
            .code(1);
        let out = String::from_utf8_lossy(&bad.get_output().stdout).into_owned();
        let first = out.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("chunk 0 ") && !first.contains("bytes of tar"),
            "{out}"
        );
    }
}

#[test]
fn verify_passes_then_catches_a_flipped_byte() {
    let inst = install();
    stdout(kc_backup(&inst.root).args(["create", "--compression", "zstd"]));
    let archive = archives(&inst.root).remove(0);
    let id = archive
        .file_name()
        .expect("name")
        .to_string_lossy()
        .replace(".tar.zst", "");
    let ok = kc_backup(&inst.root)
        .args(["verify", &id])
        .assert()
        .success();
    assert!(ok.get_output().stdout.is_empty());
    assert!(String::from_utf8_lossy(&ok.get_output().stderr).contains(&format!("{id}: OK")));

    let mut bytes = std::fs::read(&archive).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&archive, &bytes).expect("write");
    let bad = kc_backup(&inst.root)
        .args(["verify", archive.to_str().expect("utf-8")])
        .assert()
        .code(1);
    let out = String::from_utf8_lossy(&bad.get_output().stdout).into_owned();
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.starts_with("chunk ") || l.contains(": content differs")),
        "{out}"
    );
    let err = String::from_utf8_lossy(&bad.get_output().stderr).into_owned();
    assert!(err.contains("problems, the first:"), "{err}");

    // Against the live tree: a changed file is named.
    std::fs::write(inst.root.join("users.cfg"), b"<config/>").expect("write");
    let live = kc_backup(&inst.root)
        .args(["verify", &id, "--against-live"])
        .assert()
        .code(1);
    assert_eq!(
        String::from_utf8_lossy(&live.get_output().stdout),
        "users.cfg: changed since the backup\n"
    );
}

#[test]
fn selective_restore_of_one_user_brings_exactly_that_mailbox() {
    let inst = install();
    stdout(kc_backup(&inst.root).arg("create"));
    let archive = archives(&inst.root).remove(0);
    let mailbox = first_mailbox(&inst.root);
    let user = mailbox
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let to = tempfile::tempdir().expect("tempdir");
    let target = to.path().join("r");
    let line = stdout(
        kc_backup(&inst.root)
            .args(["restore", archive.to_str().expect("utf-8"), "--user"])
            .arg(format!("{}@EXAMPLE.com", user.to_uppercase()))
            .arg("--to")
            .arg(&target),
    );
    assert!(line.starts_with("restored F"), "{line}");
    let restored = target.join("store/mail/example.com").join(&user);
    assert_same_tree(&mailbox, &restored);
    // Nothing else: the only path from the target down is to that mailbox.
    let top: Vec<_> = std::fs::read_dir(&target)
        .expect("dir")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(top, ["store"]);
    let users: Vec<_> = std::fs::read_dir(target.join("store/mail/example.com"))
        .expect("dir")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(users, [OsStr::new(&user)]);

    // A folder of it, and the cfg mask alone.
    let folder = to.path().join("f");
    stdout(
        kc_backup(&inst.root)
            .args([
                "restore",
                archive.to_str().expect("utf-8"),
                "-d",
                "example.com",
                "-u",
                &user,
                "-f",
                "INBOX",
                "--to",
            ])
            .arg(&folder),
    );
    assert_same_tree(
        &mailbox.join("INBOX"),
        &folder
            .join("store/mail/example.com")
            .join(&user)
            .join("INBOX"),
    );
    let cfg = to.path().join("c");
    stdout(
        kc_backup(&inst.root)
            .args([
                "restore",
                archive.to_str().expect("utf-8"),
                "--mask",
                "cfg",
                "--to",
            ])
            .arg(&cfg),
    );
    let mut names: Vec<_> = std::fs::read_dir(&cfg)
        .expect("dir")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["mailserver.cfg", "users.cfg"]);
    assert_eq!(
        std::fs::read(cfg.join("users.cfg")).expect("r"),
        std::fs::read(inst.root.join("users.cfg")).expect("r")
    );

    // A non-empty target is refused.
    let again = kc_backup(&inst.root)
        .args(["restore", archive.to_str().expect("utf-8"), "--to"])
        .arg(&cfg)
        .assert()
        .code(2);
    assert!(String::from_utf8_lossy(&again.get_output().stderr).contains("is not empty"));
}

#[test]
fn differential_holds_changes_and_deletions_and_its_chain_restores_the_tree() {
    let inst = install();
    // A differential takes everything changed since a second before its base began (timestamps
    // come from a coarse clock): let the freshly written install age past that first.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    stdout(kc_backup(&inst.root).arg("create"));
    let mailbox = first_mailbox(&inst.root);
    // Change one file, add one, delete one, and copy one back with an old mtime (cp -p).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    std::fs::write(
        inst.root.join("users.cfg"),
        b"<config><!-- changed --></config>\n",
    )
    .expect("write");
    std::fs::write(
        mailbox.join("INBOX/#msgs/new.eml"),
        b"Subject: new\r\n\r\nx\r\n",
    )
    .expect("write");
    std::fs::remove_file(mailbox.join("empty.usr")).expect("rm");
    let old = mailbox.join("filter.siv");
    let mtime = std::fs::metadata(&old)
        .expect("meta")
        .modified()
        .expect("mtime");
    std::fs::write(&old, b"require [];\n").expect("write");
    std::fs::File::options()
        .write(true)
        .open(&old)
        .expect("open")
        .set_modified(mtime - std::time::Duration::from_secs(86_400))
        .expect("mtime");

    let line = stdout(kc_backup(&inst.root).args(["create", "--kind", "diff"]));
    assert!(
        line.starts_with('D') && line.contains("diff (base F"),
        "{line}"
    );
    let diff = archives(&inst.root)
        .into_iter()
        .find(|a| a.file_name().expect("n").as_bytes().starts_with(b"D"))
        .expect("diff");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", diff.display())).expect("json"))
            .expect("parses");
    assert_eq!(meta["files"], 3, "{meta}");
    let deleted: Vec<String> = meta["deleted"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v.as_str().expect("s").to_owned())
        .collect();
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0].ends_with("/empty.usr"), "{deleted:?}");
    let to = tempfile::tempdir().expect("tempdir");
    let target = to.path().join("r");
    let restored = stdout(
        kc_backup(&inst.root)
            .args(["restore", diff.to_str().expect("utf-8"), "--to"])
            .arg(&target),
    );
    assert!(
        restored.contains(" + D") && restored.contains("1 deleted"),
        "{restored}"
    );
    assert_same_tree(&inst.root, &target);
    // Every differential is kept: a second one leaves the first.
    stdout(kc_backup(&inst.root).args(["create", "--kind", "diff"]));
    assert_eq!(
        archives(&inst.root)
            .iter()
            .filter(|a| a.file_name().expect("n").as_bytes().starts_with(b"D"))
            .count(),
        2
    );
    let listed = stdout(kc_backup(&inst.root).arg("list"));
    assert_eq!(listed.lines().count(), 3, "{listed}");
}

/// Files, links and directories below `dir` (not `dir` itself), and the bytes of the files, as
/// a restore's report counts them, leaving out what a backup leaves out by design.
fn tree_counts(dir: &Path) -> (u64, u64, u64) {
    let skip = [&b"kc-backups"[..], b"kc-journal", b".kc.lock", b"backup"];
    let (mut files, mut dirs, mut bytes) = (0, 0, 0);
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        if skip.contains(&entry.file_name().as_bytes()) {
            continue;
        }
        let meta = std::fs::symlink_metadata(entry.path()).expect("meta");
        if meta.is_dir() {
            let (f, d, b) = tree_counts(&entry.path());
            (files, dirs, bytes) = (files + f, dirs + d + 1, bytes + b);
        } else {
            files += 1;
            bytes += if meta.is_file() { meta.len() } else { 0 };
        }
    }
    (files, dirs, bytes)
}

/// Between a full backup and its differential, paths change kind: a file becomes a directory, a
/// directory a file, a file a link, a link a directory, an empty directory a link; a directory
/// goes with all below it, another goes and a file takes its name, a link goes. Restored into an
/// empty directory, the chain gives exactly the tree of the differential, each path counted once
/// and the deleted files' bytes not counted; in place, over an install changed since, it gives
/// it again, and undo takes that back.
#[test]
fn a_chain_restores_paths_that_changed_kind_between_its_backups_exactly() {
    let inst = install();
    let weird = first_mailbox(&inst.root).join("weird");
    let w = |p: &str| weird.join(p);
    for dir in ["dir1", "gone/sub", "gone2", "ldir"] {
        std::fs::create_dir_all(w(dir)).expect("mkdir");
    }
    for (file, text) in [
        ("tc", "a\n"),
        ("dir1/f", "b\n"),
        ("dir1/g", "c\n"),
        ("lk", "l\n"),
        ("gone/sub/y", "y\n"),
        ("gone2/z", "z\n"),
    ] {
        std::fs::write(w(file), text).expect("write");
    }
    std::os::unix::fs::symlink("tc", w("oldlink")).expect("symlink");
    std::os::unix::fs::symlink("dir1", w("ldir2")).expect("symlink");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    stdout(kc_backup(&inst.root).arg("create"));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // file -> directory, directory -> file, file -> link, a directory gone, a directory gone and
    // a file of its name, a link gone, link -> directory, empty directory -> link.
    std::fs::remove_file(w("tc")).expect("rm");
    std::fs::create_dir(w("tc")).expect("mkdir");
    std::fs::write(w("tc/x"), "inner\n").expect("write");
    std::fs::remove_dir_all(w("dir1")).expect("rm");
    std::fs::write(w("dir1"), "now a file\n").expect("write");
    std::fs::remove_file(w("lk")).expect("rm");
    std::os::unix::fs::symlink("tc", w("lk")).expect("symlink");
    std::fs::remove_dir_all(w("gone")).expect("rm");
    std::fs::remove_dir_all(w("gone2")).expect("rm");
    std::fs::write(w("gone2"), "g2\n").expect("write");
    std::fs::remove_file(w("oldlink")).expect("rm");
    std::fs::remove_file(w("ldir2")).expect("rm");
    std::fs::create_dir(w("ldir2")).expect("mkdir");
    std::fs::write(w("ldir2/q"), "q\n").expect("write");
    std::fs::remove_dir(w("ldir")).expect("rmdir");
    std::os::unix::fs::symlink("tc", w("ldir")).expect("symlink");
    stdout(kc_backup(&inst.root).args(["create", "--kind", "diff"]));
    let diff = archives(&inst.root)
        .into_iter()
        .find(|a| a.file_name().expect("n").as_bytes().starts_with(b"D"))
        .expect("diff");
    let snapshot = tempfile::tempdir().expect("tempdir");
    let at_diff = snapshot.path().join("at-diff");
    let copied = Std::new("cp")
        .arg("-a")
        .arg(&inst.root)
        .arg(&at_diff)
        .status();
    assert!(copied.expect("cp").success());

    let to = tempfile::tempdir().expect("tempdir");
    let target = to.path().join("r");
    let report = stdout(
        kc_backup(&inst.root)
            .args(["--json", "restore", diff.to_str().expect("utf-8"), "--to"])
            .arg(&target),
    );
    assert_same_tree(&at_diff, &target);
    let report: serde_json::Value = serde_json::from_str(&report).expect("json");
    let (files, dirs, bytes) = tree_counts(&target);
    assert_eq!(
        (&report["files"], &report["dirs"], &report["bytes"]),
        (&files.into(), &dirs.into(), &bytes.into()),
        "{report}"
    );
    // dir1/f, dir1/g, gone/sub/y, gone2/z, lk, tc: files of the full backup deleted since.
    assert_eq!(report["deleted"], 6, "{report}");

    // In place, over an install where `weird` went back to what the full backup held, and more.
    std::fs::remove_dir_all(&weird).expect("rm");
    std::fs::create_dir_all(w("dir1")).expect("mkdir");
    std::fs::write(w("dir1/f"), "b\n").expect("write");
    std::fs::write(w("tc"), "a\n").expect("write");
    std::fs::create_dir_all(w("gone/sub")).expect("mkdir");
    std::fs::write(w("gone/sub/y"), "y\n").expect("write");
    std::os::unix::fs::symlink("tc", w("oldlink")).expect("symlink");
    std::os::unix::fs::symlink("dir1", w("ldir2")).expect("symlink");
    std::fs::create_dir(w("ldir")).expect("mkdir");
    let damaged = snapshot.path().join("damaged");
    let copied = Std::new("cp")
        .arg("-a")
        .arg(&inst.root)
        .arg(&damaged)
        .status();
    assert!(copied.expect("cp").success());
    let line = stdout(kc_backup(&inst.root).args([
        "restore",
        diff.to_str().expect("utf-8"),
        "--in-place",
    ]));
    assert!(line.contains("\ndone: change C"), "{line}");
    assert_same_tree(&at_diff, &inst.root);
    stdout(kc_backup(&inst.root).args(["undo", "--last"]));
    assert_same_tree(&damaged, &inst.root);
}

/// The differential reads its base's manifest sorted on disk, in step with the walk
/// (`KC_SORT_BUDGET` lowers the in-memory budget of that sort, to a byte here: every path is a
/// run of its own, merged in several passes). The archive, its manifest and its deletions are
/// byte for byte what the same differential is with the whole list in memory, and it restores.
#[test]
fn a_differential_sorted_on_disk_is_the_same_archive_as_one_sorted_in_memory() {
    let inst = install();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    stdout(kc_backup(&inst.root).args(["create", "--compression", "zstd"]));
    let mailbox = first_mailbox(&inst.root);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // Deletions in several mailboxes (before and after the split 9 MiB file, which the base's
    // manifest lists out of walk order), a change, an addition.
    std::fs::remove_file(mailbox.join("empty.usr")).expect("rm");
    let mut gone = 0;
    for dir in std::fs::read_dir(inst.root.join("store/mail/example.com")).expect("domain") {
        let msgs = dir.expect("entry").path().join("INBOX/#msgs");
        if let Some(eml) = std::fs::read_dir(&msgs)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension() == Some(OsStr::new("eml")) && !p.ends_with("big.eml"))
            .min()
        {
            std::fs::remove_file(eml).expect("rm");
            gone += 1;
        }
    }
    assert!(gone >= 3, "{gone}");
    std::fs::write(
        mailbox.join("INBOX/#msgs/new.eml"),
        b"Subject: new\r\n\r\nx\r\n",
    )
    .expect("write");
    std::fs::write(mailbox.join("filter.siv"), b"require [];\n").expect("write");

    let diff_with = |budget: Option<&str>| -> (Vec<u8>, Vec<u8>, serde_json::Value) {
        let mut cmd = kc_backup(&inst.root);
        cmd.args(["create", "--kind", "diff", "--compression", "zstd"]);
        if let Some(b) = budget {
            cmd.env("KC_SORT_BUDGET", b);
        }
        stdout(&mut cmd);
        let diff = archives(&inst.root)
            .into_iter()
            .find(|a| a.file_name().expect("n").as_bytes().starts_with(b"D"))
            .expect("diff");
        let read = |ext: &str| std::fs::read(format!("{}{ext}", diff.display())).expect("read");
        let mut meta: serde_json::Value = serde_json::from_slice(&read(".json")).expect("parses");
        for key in ["id", "created", "scan_started"] {
            meta[key] = serde_json::Value::Null;
        }
        let out = (read(""), read(".sha256"), meta);
        if budget.is_some() {
            // The tiny budget's differential verifies and its chain restores the tree.
            stdout(kc_backup(&inst.root).arg("verify").arg(&diff));
            let to = tempfile::tempdir().expect("tempdir");
            let target = to.path().join("r");
            stdout(
                kc_backup(&inst.root)
                    .args(["restore", diff.to_str().expect("utf-8"), "--to"])
                    .arg(&target),
            );
            assert_same_tree(&inst.root, &target);
        }
        for ext in ["", ".sha256", ".json"] {
            std::fs::remove_file(format!("{}{ext}", diff.display())).expect("rm");
        }
        out
    };
    let (archive, manifest, meta) = diff_with(None);
    // Exactly the deletions, the change and the addition: nothing the base holds unchanged.
    let deleted = meta["deleted"].as_array().expect("list").len();
    assert_eq!(deleted, gone + 1, "{meta}");
    assert_eq!(meta["files"], 2, "{meta}");
    let (tiny_archive, tiny_manifest, tiny_meta) = diff_with(Some("1"));
    assert_eq!(tiny_meta, meta);
    assert!(tiny_manifest == manifest, "the manifests differ");
    assert!(tiny_archive == archive, "the archives differ");
}

#[test]
fn latest_is_the_newest_backup_even_within_one_second() {
    let inst = install();
    stdout(kc_backup(&inst.root).arg("create"));
    stdout(kc_backup(&inst.root).args(["create", "--kind", "diff"]));
    // Taken within one second, the two would share their time stamp: make it so, renaming the
    // differential's files and ID to the full backup's stamp.
    let dir = inst.root.join("kc-backups");
    let all = kc_core::archive::list(&dir).expect("list");
    let (full, diff) = (&all[1].meta.id, &all[0].meta.id);
    assert!(
        full.starts_with('F') && diff.starts_with('D'),
        "{full} {diff}"
    );
    let same = format!("D{}", &full[1..]);
    for ext in [".tar.gz", ".tar.gz.sha256", ".tar.gz.json"] {
        let from = dir.join(format!("{diff}{ext}"));
        let to = dir.join(format!("{same}{ext}"));
        let text = std::fs::read(&from).expect("read");
        std::fs::remove_file(&from).expect("rm");
        let text = if ext.ends_with("json") {
            String::from_utf8_lossy(&text)
                .replace(diff.as_str(), &same)
                .into_bytes()
        } else {
            text
        };
        std::fs::write(&to, text).expect("write");
    }
    let latest = kc_core::archive::find(&inst.root.join("kc-backups"), "latest").expect("found");
    assert_eq!(
        latest.meta.kind,
        kc_core::archive::Kind::Diff,
        "{}",
        latest.meta.id
    );
    let out = kc_backup(&inst.root)
        .args(["verify", "latest"])
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.starts_with(&format!("{}: OK", latest.meta.id)),
        "{said}"
    );
}

#[test]
fn a_malicious_archive_cannot_write_outside_the_target() {
    let inst = install();
    let dir = inst.root.join("kc-backups");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (name, build) in [
        ("F20200101T000000Z", 0),
        ("F20200102T000000Z", 1),
        ("F20200103T000000Z", 2),
        ("F20200104T000000Z", 3),
        ("F20200105T000000Z", 4),
        ("F20200106T000000Z", 5),
        ("F20200107T000000Z", 6),
    ] {
        // Hand-made tar entries: `../escaped`, or a symlink out followed by a file through it.
        let mut raw = Vec::new();
        let mut entry = |path: &[u8], kind: u8, link: &[u8], data: &[u8]| {
            let mut h = [0u8; 512];
            h[..path.len()].copy_from_slice(path);
            h[100..107].copy_from_slice(b"0000644");
            h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
            h[136..147].copy_from_slice(b"00000000000");
            h[156] = kind;
            h[157..157 + link.len()].copy_from_slice(link);
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
            h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            raw.extend_from_slice(&h);
            raw.extend_from_slice(data);
            raw.resize(raw.len().div_ceil(512) * 512, 0);
        };
        if build == 0 {
            entry(b"../escaped", b'0', b"", b"pwned");
        } else if build == 1 {
            entry(b"link", b'2', b"/tmp", b"");
            entry(b"link/escaped", b'0', b"", b"pwned");
        } else if build == 2 {
            // Each link looks inside on its own; together they lead out of the target.
            entry(b"d/", b'5', b"", b"");
            entry(b"d/a", b'2', b"..", b"");
            entry(b"d/b", b'2', b"a/..", b"");
            entry(b"d/b/escaped", b'0', b"", b"pwned");
        } else {
            // The reproduction of the safety issue: a link to the target's top, a second link
            // through it to a victim outside, then a directory entry (mode 0777) at the second
            // link (build 3), or a deletion below it (build 4).
            if build == 6 {
                // A config file as a link out: later writers would edit the victim.
                entry(b"users.cfg", b'2', b"/tmp/victim-users.cfg", b"");
            } else if build == 5 {
                entry(b"harmless", b'0', b"", b"");
            } else {
                entry(b"a/b/c/up", b'2', b"../../..", b"");
                entry(b"x", b'2', b"a/b/c/up/../../../../victim", b"");
            }
            if build == 3 {
                entry(b"x/", b'5', b"", b"");
            }
        }
        raw.extend_from_slice(&[0u8; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &raw).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let archive = dir.join(format!("{name}.tar.gz"));
        std::fs::write(&archive, &gz).expect("write");
        std::fs::write(format!("{}.sha256", archive.display()), b"").expect("write");
        let meta = serde_json::json!({
            "format": 1, "id": name, "kind": "full", "base": null, "created": "2020-01-01T00:00:00Z",
            "scan_started": 0, "tool": "evil", "compression": "gzip", "level": 6, "mask": ["all"],
            "store_prefix": "store", "files": 1, "dirs": 0, "symlinks": 0, "bytes": 5, "archive_bytes": gz.len(),
            "chunks": [{"offset": 0, "length": gz.len(), "tar_offset": 0, "tar_length": raw.len(), "lead": 0}],
            "deleted": match build {
                4 => vec!["x/f"],
                // The config files and the toolkit's own files are never a restore's to delete.
                5 => vec!["users.cfg", "kc-journal/journal.jsonl"],
                _ => vec![],
            }
        });
        std::fs::write(format!("{}.json", archive.display()), meta.to_string()).expect("write");

        let to = tempfile::tempdir().expect("tempdir");
        let target = to.path().join("inner/r");
        let victim = to.path().join("inner/victim");
        std::fs::create_dir_all(&victim).expect("victim");
        std::fs::write(victim.join("f"), b"keep").expect("victim's file");
        let refused = kc_backup(&inst.root)
            .args(["restore", name, "--to"])
            .arg(&target)
            .assert()
            .code(2);
        let err = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
        assert!(
            err.starts_with("kc-backup: error: ") && err.contains("outside the restore target"),
            "{err}"
        );
        assert!(!to.path().join("inner/escaped").exists() && !Path::new("/tmp/escaped").exists());
        assert_eq!(
            std::fs::read(victim.join("f")).expect("still there"),
            b"keep"
        );
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&victim)
                .expect("meta")
                .permissions()
                .mode();
            assert_ne!(mode & 0o777, 0o777, "the victim was not chmodded");
        }
        // verify calls the archive damaged too.
        let verify = kc_backup(&inst.root)
            .args(["verify", name])
            .assert()
            .code(1);
        assert!(!verify.get_output().stdout.is_empty());
    }
}

#[test]
fn create_refuses_while_another_run_holds_the_lock_and_writes_nothing() {
    let inst = install();
    let holder = kc_testkit::LockHolder::hold(&inst.root, "pid 4242 kc-other");
    let refused = kc_backup(&inst.root).arg("create").assert().code(2);
    drop(holder);
    let err = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        err.contains("held by another kerio-toolkit run (pid 4242 kc-other)"),
        "{err}"
    );
    assert!(!inst.root.join("kc-backups").exists());
    // An unknown mask is a usage error naming the choices.
    let bad = kc_backup(&inst.root)
        .args(["create", "--mask", "cfg,mails"])
        .assert()
        .code(2);
    assert!(String::from_utf8_lossy(&bad.get_output().stderr).contains("unknown mask `mails`"));
}

#[test]
fn in_place_restore_brings_the_install_back() {
    let inst = install();
    stdout(kc_backup(&inst.root).arg("create"));
    let archive = archives(&inst.root).remove(0);
    let snapshot = tempfile::tempdir().expect("tempdir");
    let before = snapshot.path().join("before");
    let copy = Std::new("cp")
        .arg("-a")
        .arg(&inst.root)
        .arg(&before)
        .status()
        .expect("cp");
    assert!(copy.success());
    // Damage the install: edit a config, delete a mailbox's folder.
    std::fs::write(inst.root.join("users.cfg"), b"<config/>").expect("write");
    let mailbox = first_mailbox(&inst.root);
    std::fs::remove_dir_all(mailbox.join("INBOX")).expect("rm");
    let line = stdout(kc_backup(&inst.root).args([
        "restore",
        archive.to_str().expect("utf-8"),
        "--in-place",
    ]));
    assert!(
        line.starts_with("kc-backup: restore F") && line.contains(" in place\n  restore "),
        "{line}"
    );
    assert!(line.contains("\ndone: change C"), "{line}");
    assert_same_tree(&before, &inst.root);
    // The restore is a change: undo gives back the install as it was before it, damage included.
    kc_backup(&inst.root)
        .args(["undo", "--last"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(inst.root.join("users.cfg")).expect("read"),
        b"<config/>"
    );
    assert!(!mailbox.join("INBOX").exists());
}

#[test]
fn a_full_disk_fails_cleanly_and_leaves_no_archive() {
    let inst = install();
    let small = tempfile::tempdir().expect("tempdir");
    let mounted = Std::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(small.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("cannot mount a tmpfs here (not root?): skipped");
        return;
    }
    let failed = kc_backup(&inst.root)
        .arg("--backup-dir")
        .arg(small.path())
        .args(["create", "--level", "0"])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    let left: Vec<_> = std::fs::read_dir(small.path())
        .expect("dir")
        .map(|e| e.expect("e").file_name())
        .collect();
    let _ = Std::new("umount").arg(small.path()).status();
    assert!(
        err.starts_with("kc-backup: error: backup failed; no backup was written: "),
        "{err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_foreign_sidecar_in_the_backup_directory_is_left_out_with_a_warning() {
    let inst = install();
    kc_backup(&inst.root).arg("create").assert().success();
    let dir = inst.root.join("kc-backups");
    let junk = dir.join("F20990101T000000Z.tar.gz");
    std::fs::write(&junk, b"not gzip").expect("junk");
    std::fs::write(format!("{}.json", junk.display()), b"{junk").expect("junk json");
    let out = kc_backup(&inst.root).arg("list").assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with('F') && !stdout.contains("F20990101T000000Z"),
        "{stdout}"
    );
    assert!(
        stderr.starts_with(&format!(
            "kc-backup: warning: {} is not a kc-backup backup, left out: ",
            junk.display()
        )),
        "{stderr}"
    );
    // `latest` still finds the real one.
    kc_backup(&inst.root)
        .args(["verify", "latest"])
        .assert()
        .success();
}

/// Records the totals a backup's stages start with.
#[derive(Debug, Default)]
struct Totals(std::sync::Mutex<Vec<(String, Option<u64>)>>);

impl kc_core::progress::Progress for Totals {
    fn start(&self, stage: &str, total: Option<u64>, _unit: kc_core::progress::Unit) {
        self.0.lock().expect("lock").push((stage.to_owned(), total));
    }
}

#[test]
fn the_bar_starts_with_the_last_backups_size_as_its_total() {
    let (dir, _) = kc_testkit::temp_install(&Options::demo()).expect("fixture");
    let _turn = kc_testkit::Turn::shared();
    let root = dir.path().join("kerio");
    let install = kc_core::install::Install::locate(Some(&root), None).expect("install");
    let backups = root.join("kc-backups");
    let backing_up = |t: &Totals| {
        t.0.lock()
            .expect("lock")
            .iter()
            .find(|(s, _)| s == "backing up")
            .map(|(_, total)| *total)
            .expect("the stage")
    };
    let first = Totals::default();
    let options = kc_core::archive::CreateOptions::default();
    let made = kc_core::archive::create(&install, &backups, &options, &first).expect("backup");
    // Nothing to go by: the total comes when the walk is done.
    assert_eq!(backing_up(&first), None);
    let second = Totals::default();
    kc_core::archive::create(&install, &backups, &options, &second).expect("backup");
    assert_eq!(backing_up(&second), Some(made.meta.bytes));
}
