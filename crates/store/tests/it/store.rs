//! kc-store on generated installs, through the real binary: the check reports exactly the damage
//! planted (and nothing on a clean store), in its three formats and with its exit codes; reindex
//! moves exactly the selected indexes aside, and `kc-backup undo` puts the tree back byte for
//! byte, a store outside the root included; `--from-check` takes exactly the folders a check
//! reported; a mistyped name is exit 2, never an empty all-clear.
//!
//! `kc-backup` must be built too (`cargo test --workspace` builds it; alone:
//! `cargo build -p kc-backup`).

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use kc_testkit::{Options, Scratch, Shapes};

const BIN: &str = "kc-store";

fn run(s: &Scratch, args: &[&str]) -> Output {
    s.tool(BIN).args(args).output().expect("runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn code(out: &Output, want: i32) {
    assert_eq!(
        out.status.code(),
        Some(want),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

fn findings(out: &Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// (kind, domain, user, folder, path relative to `store`) of every finding.
type Key = (String, String, String, String, String);

fn keys(found: &[serde_json::Value], store: &Path) -> BTreeSet<Key> {
    found
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().expect(k).to_owned();
            let path = PathBuf::from(s("path"));
            let rel = path.strip_prefix(store).unwrap_or_else(|_| {
                panic!("{} is under the store {}", path.display(), store.display())
            });
            (
                s("kind"),
                s("domain"),
                s("user"),
                s("folder"),
                rel.display().to_string(),
            )
        })
        .collect()
}

fn key(kind: &str, domain: &str, user: &str, folder: &str, rel: &str) -> Key {
    (
        kind.into(),
        domain.into(),
        user.into(),
        folder.into(),
        rel.into(),
    )
}

/// The store of a scratch install, wherever its shape put it.
fn store_of(s: &Scratch) -> PathBuf {
    s.summary
        .paths
        .store
        .clone()
        .unwrap_or_else(|| s.root.join("store"))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn append(path: &Path, text: &str) {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.extend_from_slice(text.as_bytes());
    std::fs::write(path, bytes).expect("write");
}

/// Undoes the newest change with the real `kc-backup undo --last`.
fn backup_undo(s: &Scratch) -> Output {
    let bin = kc_testkit::bin_path("kc-backup");
    assert!(
        bin.exists(),
        "{} is built by `cargo test --workspace` (or `cargo build -p kc-backup`)",
        bin.display()
    );
    std::process::Command::new(bin)
        .env("KC_SERVER", &s.root)
        .arg("--pid-file")
        .arg(&s.pid_file)
        .arg("--no-progress")
        .args(["undo", "--last"])
        .output()
        .expect("runs")
}

#[test]
fn clean_stores_have_no_findings() {
    for options in [
        Options::demo(),
        Options {
            users: 120,
            seed: 11,
            messages_per_user: 3,
            max_message_size: 32 << 10,
            shapes: Shapes {
                global_public: true,
                ..Shapes::default()
            },
            ..Options::default()
        },
    ] {
        let s = Scratch::new(&options);
        for format in [&[][..], &["--json"], &["--csv"]] {
            let out = run(&s, &[&["check"], format].concat());
            code(&out, 0);
            let text = stdout(&out);
            match format {
                [] => assert_eq!(text, "", "a clean table prints nothing on stdout"),
                ["--json"] => assert_eq!(text, ""),
                _ => assert_eq!(text, "kind,domain,user,folder,path,detail\n"),
            }
            assert!(stderr(&out).contains(": no findings"), "{}", stderr(&out));
        }
    }
}

/// Plants one of each damage in the demo install; returns the findings a correct check reports.
fn plant_damage(s: &Scratch) -> BTreeSet<Key> {
    let store = store_of(s);
    let mail = store.join("mail");
    let lhill = mail.join("example.com/lhill");
    let mut want = BTreeSet::new();
    let mut add = |kind, domain, user, folder, rel: &str| {
        want.insert(key(kind, domain, user, folder, rel));
    };
    // INBOX: a record whose file is gone, a file no record names, a size that differs.
    let inbox = lhill.join("INBOX/#msgs");
    std::fs::remove_file(inbox.join("00000002.eml")).expect("rm");
    add(
        "record-without-file",
        "example.com",
        "lhill",
        "INBOX",
        "mail/example.com/lhill/INBOX/#msgs/00000002.eml",
    );
    std::fs::copy(inbox.join("00000001.eml"), inbox.join("000000FF.eml")).expect("cp");
    add(
        "file-without-record",
        "example.com",
        "lhill",
        "INBOX",
        "mail/example.com/lhill/INBOX/#msgs/000000FF.eml",
    );
    append(&inbox.join("00000003.eml"), "one more line\r\n");
    add(
        "size-mismatch",
        "example.com",
        "lhill",
        "INBOX",
        "mail/example.com/lhill/INBOX/#msgs/00000003.eml",
    );
    // A non-standard folder without status.fld (the server would hide it).
    std::fs::remove_file(lhill.join("INBOX/Projects/status.fld")).expect("rm");
    add(
        "missing-status",
        "example.com",
        "lhill",
        "INBOX/Projects",
        "mail/example.com/lhill/INBOX/Projects/status.fld",
    );
    // An ACL entry for a user that is gone, beside one for a mapped domain's user (which cannot
    // be checked offline, so is not reported) and one for a group.
    let status = lhill.join("Calendar/status.fld");
    let line = std::fs::read_to_string(&status).expect("read");
    std::fs::write(
        &status,
        format!(
            "{} Agone.user@example.com lr Asomeone@corp.example.net lr Asales@example.com lr\n",
            line.trim_end()
        ),
    )
    .expect("write");
    add(
        "acl-unknown-account",
        "example.com",
        "lhill",
        "Calendar",
        "mail/example.com/lhill/Calendar/status.fld",
    );
    // A subscription to a folder of a user that is gone; a folder of its own named like an
    // address is not one.
    append(
        &lhill.join("sub.fld"),
        "~gone.user@example.com/Calendar\nINBOX/orders@shop.example\n",
    );
    add(
        "subscription-unknown-account",
        "example.com",
        "lhill",
        "",
        "mail/example.com/lhill/sub.fld",
    );
    // The public folders' acl.fld naming an account of a domain that does not exist.
    std::fs::write(
        mail.join("example.org/#public/acl.fld"),
        "Ahcarter@example.org lr\nAnobody@no-such-domain.example lr\n",
    )
    .expect("write");
    add(
        "acl-unknown-account",
        "example.org",
        "#public",
        "",
        "mail/example.org/#public/acl.fld",
    );
    // folder.map: one for a gone owner; another mailbox's is not XML.
    std::fs::write(
        mail.join("example.org/mwood/folder.map"),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<map>\n  <folder owner=\"left@example.org\" path=\"Calendar\" name=\"Left's calendar\"/>\n</map>\n",
    )
    .expect("write");
    add(
        "folder-map-unknown-account",
        "example.org",
        "mwood",
        "",
        "mail/example.org/mwood/folder.map",
    );
    std::fs::write(
        mail.join("example.org/pnelson/folder.map"),
        "<map><folder owner=\"x\"</map>",
    )
    .expect("write");
    add(
        "malformed-file",
        "example.org",
        "pnelson",
        "",
        "mail/example.org/pnelson/folder.map",
    );
    // A new, empty folder (a status.fld and nothing to index) is no finding.
    std::fs::create_dir(lhill.join("INBOX/Empty")).expect("mkdir");
    std::fs::write(
        lhill.join("INBOX/Empty/status.fld"),
        "T2 G1-2 V3 U00000001 C00000000 M6 D0 R0 N0 S0\n",
    )
    .expect("write");
    // Another folder: no index at all; a third: a line that is no record, and a record twice.
    std::fs::remove_file(mail.join("example.org/hcarter/Sent Items/index.fld")).expect("rm");
    add(
        "missing-index",
        "example.org",
        "hcarter",
        "Sent Items",
        "mail/example.org/hcarter/Sent Items/index.fld",
    );
    let drafts = mail.join("example.org/tevans/INBOX/index.fld");
    let first = std::fs::read_to_string(&drafts)
        .expect("read")
        .lines()
        .next()
        .expect("a record")
        .to_owned();
    append(&drafts, &format!("garbage without a number\n{first}\n"));
    add(
        "bad-index-line",
        "example.org",
        "tevans",
        "INBOX",
        "mail/example.org/tevans/INBOX/index.fld",
    );
    add(
        "duplicate-record",
        "example.org",
        "tevans",
        "INBOX",
        "mail/example.org/tevans/INBOX/index.fld",
    );
    // A status.fld that cannot be read (a link to nothing: root reads anything else).
    let public = mail.join("example.com/#public/Announcements/status.fld");
    std::fs::remove_file(&public).expect("rm");
    std::os::unix::fs::symlink("/nonexistent/status.fld", &public).expect("symlink");
    add(
        "unreadable",
        "example.com",
        "#public",
        "Announcements",
        "mail/example.com/#public/Announcements/status.fld",
    );
    if !is_root() {
        let eml = mail.join("example.com/anelson/INBOX/#msgs/00000001.eml");
        std::fs::set_permissions(&eml, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .expect("chmod");
        add(
            "unreadable",
            "example.com",
            "anelson",
            "INBOX",
            "mail/example.com/anelson/INBOX/#msgs/00000001.eml",
        );
    }
    want
}

#[test]
fn planted_damage_is_reported_exactly_in_every_format() {
    let s = Scratch::new(&Options::demo());
    let want = plant_damage(&s);
    let store = store_of(&s);

    let out = run(&s, &["check", "--json"]);
    code(&out, 1);
    let found = findings(&out);
    assert_eq!(keys(&found, &store), want);
    for f in &found {
        let fields: BTreeSet<&str> = f
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            BTreeSet::from(["kind", "domain", "user", "folder", "path", "detail"])
        );
        assert!(!f["detail"].as_str().expect("detail").is_empty());
    }
    let detail = |kind: &str| {
        found
            .iter()
            .find(|f| f["kind"] == kind)
            .and_then(|f| f["detail"].as_str())
            .expect("found")
            .to_owned()
    };
    assert_eq!(
        detail("size-mismatch"),
        format!(
            "index.fld line 3 says {} bytes; the file has {}",
            std::fs::metadata(store.join("mail/example.com/lhill/INBOX/#msgs/00000003.eml"))
                .expect("meta")
                .len()
                - 15,
            std::fs::metadata(store.join("mail/example.com/lhill/INBOX/#msgs/00000003.eml"))
                .expect("meta")
                .len()
        )
    );
    assert_eq!(
        detail("missing-status"),
        "no status.fld: the server hides a folder without one, and its messages with it"
    );
    assert!(
        detail("subscription-unknown-account").contains("gone.user@example.com"),
        "{found:?}"
    );

    // The table: a row per finding, then the count of each kind.
    let out = run(&s, &["check"]);
    code(&out, 1);
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("KIND "), "{table}");
    assert_eq!(
        lines.iter().filter(|l| l.contains(" |  /")).count(),
        want.len(),
        "{table}"
    );
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for (kind, ..) in &want {
        *counts.entry(kind.as_str()).or_default() += 1;
    }
    for (kind, n) in &counts {
        assert!(
            lines.iter().any(|l| l.starts_with(kind)
                && l.split_whitespace().collect::<Vec<_>>() == [*kind, &n.to_string()]),
            "no count line for {kind}:\n{table}"
        );
    }
    assert_eq!(
        lines
            .last()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["total", &want.len().to_string()])
    );

    // CSV: a header and a row per finding, the same fields.
    let out = run(&s, &["check", "--csv"]);
    code(&out, 1);
    let mut rows = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(
        rows.headers().expect("header").iter().collect::<Vec<_>>(),
        ["kind", "domain", "user", "folder", "path", "detail"]
    );
    assert_eq!(rows.records().count(), want.len());

    // Filters narrow the report; the check changed nothing anywhere.
    let out = run(
        &s,
        &[
            "check",
            "--json",
            "--domain",
            "EXAMPLE.ORG",
            "--user",
            "tevans",
        ],
    );
    code(&out, 1);
    let only: BTreeSet<Key> = want
        .iter()
        .filter(|k| k.1 == "example.org" && k.2 == "tevans")
        .cloned()
        .collect();
    assert_eq!(keys(&findings(&out), &store), only);
    let out = run(&s, &["check", "--json", "--user", "olduser@example.org"]);
    code(&out, 0);
}

#[test]
fn mistyped_names_are_errors_never_an_empty_all_clear() {
    let s = Scratch::new(&Options::demo());
    for (args, says) in [
        (
            &["check", "--domain", "exmaple.com"][..],
            "no domain exmaple.com in ",
        ),
        (
            &["check", "--user", "lhil"],
            "no mailbox lhil in any domain of ",
        ),
        (
            &["check", "--domain", "example.com", "--user", "hcarter"],
            "no mailbox hcarter in ",
        ),
        (
            &[
                "check",
                "--user",
                "lhill@example.org",
                "--domain",
                "example.com",
            ],
            "--user lhill@example.org is in example.org, and --domain says example.com",
        ),
        (
            &["reindex", "--domain", "exmaple.com"],
            "no domain exmaple.com in ",
        ),
        (
            &[
                "reindex",
                "--user",
                "lhill@example.com",
                "--folder",
                "INBXO",
            ],
            "--folder INBXO: ",
        ),
        (
            &[
                "reindex",
                "--user",
                "lhill@example.com",
                "--folder",
                "../tnovak/INBOX",
            ],
            "--folder ../tnovak/INBOX: not a folder path",
        ),
        (
            &["reindex", "-n", "--user", "nobody@example.com"],
            "no mailbox nobody in ",
        ),
    ] {
        let out = run(&s, args);
        code(&out, 2);
        let err = stderr(&out);
        assert!(
            err.starts_with("kc-store: error: ") && err.contains(says) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
        if says.contains("exmaple.com") || says.contains("lhil ") {
            assert!(err.contains("(did you mean "), "{args:?}: {err}");
        }
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    s.assert_unchanged();
}

/// Every index.fld and search.fld under `dir`, relative to `base`.
fn index_files(dir: &Path, base: &Path) -> BTreeSet<PathBuf> {
    kc_core::store::folder_level_files(dir, &["index.fld", "search.fld"])
        .expect("walk")
        .into_iter()
        .map(|p| p.strip_prefix(base).expect("under").to_path_buf())
        .collect()
}

fn aside(moved: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    moved
        .iter()
        .map(|p| {
            let name = match p.file_name().and_then(|n| n.to_str()) {
                Some("index.fld") => "index.bad",
                _ => "search.bad",
            };
            p.with_file_name(name)
        })
        .collect()
}

#[test]
fn reindex_moves_exactly_the_selection_aside_and_undo_puts_it_back() {
    let s = Scratch::new(&Options::demo());
    let mail = s.root.join("store/mail");
    let domain = mail.join("example.com");
    let moved = index_files(&domain, &s.root);
    assert!(moved.len() > 100, "{}", moved.len());

    // -n: the plan, nothing changed, no lock or backup taken.
    let out = run(&s, &["reindex", "-n", "--domain", "example.com"]);
    code(&out, 0);
    let plan = stdout(&out);
    assert!(
        plan.starts_with(&format!(
            "kc-store: reindex {} folders: {} files moved aside",
            moved.len() / 2,
            moved.len()
        )),
        "{plan}"
    );
    assert!(plan.contains(&format!("  WOULD move {} files aside:\n", moved.len())));
    assert!(plan.contains(
        "    store/mail/example.com/lhill/INBOX/index.fld -> store/mail/example.com/lhill/INBOX/index.bad\n"
    ));
    s.assert_unchanged();
    assert!(!s.root.join("kc-backups").exists());

    let out = run(&s, &["reindex", "--domain", "example.com"]);
    code(&out, 0);
    assert!(stdout(&out).contains("done: change C"), "{}", stdout(&out));
    let changed: BTreeSet<PathBuf> = s.changed().into_iter().collect();
    let mut want: BTreeSet<PathBuf> = moved.iter().cloned().collect();
    want.extend(aside(&moved));
    want.insert("store/logs/config.log".into());
    assert_eq!(changed, want);
    for (from, to) in moved.iter().zip(aside(&moved)) {
        assert_eq!(
            std::fs::read(s.before.join(from)).expect("before"),
            std::fs::read(s.root.join(to)).expect("moved"),
            "{} moved as it was",
            from.display()
        );
    }
    let log = s.read("store/logs/config.log");
    let ours: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("] kc-store - "))
        .collect();
    assert_eq!(ours.len(), moved.len() / 2);
    assert!(
        ours.iter()
            .any(|l| l.ends_with("Reindex folder 'example.com/lhill/INBOX': index.fld -> index.bad, search.fld -> search.bad (the server rebuilds them from #msgs)")),
        "{log}"
    );
    // The pre-change backup holds every moved file.
    let backups: Vec<PathBuf> = std::fs::read_dir(s.root.join("kc-backups"))
        .expect("backups")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sha256"))
        .collect();
    let manifest = std::fs::read_to_string(&backups[0]).expect("manifest");
    for from in &moved {
        assert!(
            manifest.contains(&format!("  {}\n", from.display())),
            "{} is in the pre-change backup",
            from.display()
        );
    }

    // A second reindex keeps the first one's index.bad and uses the next free name.
    for from in &moved {
        std::fs::write(s.root.join(from), "rebuilt by the server\n").expect("write");
    }
    let out = run(
        &s,
        &[
            "reindex",
            "--user",
            "lhill@example.com",
            "--folder",
            "INBOX",
        ],
    );
    code(&out, 0);
    assert!(
        stderr(&out).contains(
            "kc-store: warning: example.com/lhill/INBOX: index.bad is there already (an earlier reindex?) and is kept; index.fld goes to index.bad.1"
        ),
        "{}",
        stderr(&out)
    );
    let inbox = domain.join("lhill/INBOX");
    assert_eq!(
        std::fs::read_to_string(inbox.join("index.bad.1")).expect("new aside"),
        "rebuilt by the server\n"
    );
    assert_eq!(
        std::fs::read(inbox.join("index.bad")).expect("kept"),
        std::fs::read(
            s.before
                .join("store/mail/example.com/lhill/INBOX/index.fld")
        )
        .expect("before")
    );
    // Undo, newest first, with the real kc-backup. The first puts the server's index back. The
    // second refuses while the indexes the server rebuilt are there (undoing would lose them);
    // once they are gone, it puts the original tree back, byte for byte.
    code(&backup_undo(&s), 0);
    let out = backup_undo(&s);
    code(&out, 2);
    assert!(
        stderr(&out).contains("store/mail/example.com/lhill/INBOX/index.fld (created)"),
        "{}",
        stderr(&out)
    );
    for from in &moved {
        std::fs::remove_file(s.root.join(from)).expect("rm what the server rebuilt");
    }
    code(&backup_undo(&s), 0);
    s.assert_unchanged();
}

#[test]
fn reindex_and_undo_on_a_store_outside_the_root() {
    let s = Scratch::new(&Options {
        shapes: Shapes {
            store_outside: true,
            ..Shapes::default()
        },
        ..Options::demo()
    });
    let store = store_of(&s);
    assert!(!store.starts_with(&s.root));
    let out = run(&s, &["reindex", "--user", "lhill@example.com"]);
    code(&out, 0);
    let lhill = store.join("mail/example.com/lhill");
    assert!(!lhill.join("INBOX/index.fld").exists());
    assert!(lhill.join("INBOX/index.bad").is_file());
    assert!(lhill.join("Calendar/search.bad").is_file());
    // Nothing was written in the stale <root>/store.
    let changed = s.changed();
    assert!(
        changed.iter().all(|p| p.starts_with("kerio-store")),
        "{changed:?}"
    );
    assert!(changed.contains(&PathBuf::from(
        "kerio-store/mail/example.com/lhill/INBOX/index.bad"
    )));
    code(&backup_undo(&s), 0);
    s.assert_unchanged();
}

#[test]
fn from_check_takes_exactly_the_folders_the_check_reported() {
    let s = Scratch::new(&Options::demo());
    let want = plant_damage(&s);
    let out = run(&s, &["check", "--json"]);
    code(&out, 1);
    let report = s.root.parent().expect("dir").join("check.jsonl");
    std::fs::write(&report, &out.stdout).expect("write the report");
    let planted = s.root.parent().expect("dir").join("planted");
    kc_testkit::copy_tree(&s.root, &planted);

    let index_kinds = [
        "record-without-file",
        "file-without-record",
        "size-mismatch",
        "duplicate-record",
        "bad-index-line",
        "missing-index",
    ];
    let folders: BTreeSet<PathBuf> = want
        .iter()
        .filter(|k| index_kinds.contains(&k.0.as_str()))
        .map(|(_, d, u, f, _)| Path::new("mail").join(d).join(u).join(f))
        .collect();
    assert_eq!(folders.len(), 3, "{folders:?}");
    let report_arg = report.to_str().expect("utf-8");
    let out = run(&s, &["reindex", "--from-check", report_arg]);
    code(&out, 0);
    assert!(
        stderr(&out).contains(&format!(
            "kc-store: {} findings of {report_arg} are not answered by a rebuilt index and are left out",
            want.len() - 6
        )),
        "{}",
        stderr(&out)
    );
    let changed: BTreeSet<PathBuf> =
        kc_testkit::differences(&planted, &s.root, &kc_testkit::TOOLKIT_FILES)
            .into_iter()
            .collect();
    let mut expected = BTreeSet::new();
    for folder in &folders {
        let dir = Path::new("store").join(folder);
        for (file, to) in [("index.fld", "index.bad"), ("search.fld", "search.bad")] {
            // hcarter's Sent Items has no index.fld any more: only its search.fld moves.
            if planted.join(&dir).join(file).exists() {
                expected.insert(dir.join(file));
                expected.insert(dir.join(to));
            }
        }
    }
    expected.insert("store/logs/config.log".into());
    assert_eq!(changed, expected);
    code(&backup_undo(&s), 0);
    kc_testkit::compare_trees(&planted, &s.root, &kc_testkit::TOOLKIT_FILES)
        .expect("undo puts the planted store back byte for byte");

    // A line that is not a finding stops it before anything changes, naming FILE:LINE.
    let mut text = std::fs::read_to_string(&report).expect("read");
    text.push_str("\n{\"kind\":\"size-mismatch\",\"domain\":\"example.com\"}\n");
    std::fs::write(&report, text.as_bytes()).expect("write");
    let lines = text.lines().count();
    let out = run(&s, &["reindex", "--from-check", report_arg]);
    code(&out, 2);
    assert!(
        stderr(&out).starts_with(&format!(
            "kc-store: error: {report_arg}:{lines}: not a finding of `kc-store check --json`: "
        )),
        "{}",
        stderr(&out)
    );
    // A folder that is not in this store, or a path that leaves it, is refused the same way.
    for (line, says) in [
        (
            r#"{"kind":"missing-index","domain":"example.com","user":"nobody","folder":"INBOX","path":"/x","detail":"d"}"#,
            "no such folder in this store",
        ),
        (
            r#"{"kind":"missing-index","domain":"example.com","user":"lhill","folder":"../../example.org/hcarter/INBOX","path":"/x","detail":"d"}"#,
            "is not a folder of a mailbox",
        ),
    ] {
        std::fs::write(&report, format!("{line}\n")).expect("write");
        let out = run(&s, &["reindex", "--from-check", report_arg]);
        code(&out, 2);
        assert!(
            stderr(&out).starts_with(&format!("kc-store: error: {report_arg}:1: "))
                && stderr(&out).contains(says),
            "{}",
            stderr(&out)
        );
    }
    kc_testkit::compare_trees(&planted, &s.root, &kc_testkit::TOOLKIT_FILES)
        .expect("refusals changed nothing");
}

#[test]
fn a_reindex_killed_half_way_is_undone_or_resumed() {
    let s = Scratch::new(&Options::demo());
    let inbox = s.root.join("store/mail/example.com/lhill/INBOX");
    for finish in ["undo", "resume"] {
        // Killed after the moves, before the audit line.
        let out = s
            .tool(BIN)
            .env("KC_CRASH_AFTER_STEP", "1")
            .args(["reindex", "--user", "lhill@example.com"])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), None, "killed: {}", stderr(&out));
        assert!(inbox.join("index.bad").is_file() && !inbox.join("index.fld").exists());
        // Every writer refuses until the change is finished or undone; the check still reads.
        let out = run(&s, &["reindex", "-n", "--domain", "example.org"]);
        code(&out, 2);
        assert!(
            stderr(&out).contains("was interrupted and is unfinished"),
            "{}",
            stderr(&out)
        );
        // (which reports what is true: 11 folders without an index, until the server starts)
        let out = run(&s, &["check", "--json"]);
        code(&out, 1);
        assert!(
            findings(&out).iter().all(|f| f["kind"] == "missing-index"),
            "{}",
            stdout(&out)
        );
        if finish == "undo" {
            code(&backup_undo(&s), 0);
            s.assert_unchanged();
        } else {
            let out = run(&s, &["--resume"]);
            code(&out, 0);
            let log = s.read("store/logs/config.log");
            assert_eq!(
                log.lines()
                    .filter(|l| l.contains("] kc-store - Reindex folder 'example.com/lhill/"))
                    .count(),
                11,
                "{log}"
            );
            code(&backup_undo(&s), 0);
            s.assert_unchanged();
        }
    }
}
