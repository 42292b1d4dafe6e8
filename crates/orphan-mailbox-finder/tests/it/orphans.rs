//! kc-orphan-mailbox-finder on generated installs: it reports exactly what kc-fixture planted,
//! measures it as the filesystem does, and its three actions are undone byte for byte.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use kc_core::config::Config;
use kc_testkit::{Options, Scratch};

const BIN: &str = "kc-orphan-mailbox-finder";

fn run(s: &Scratch, args: &[&str]) -> Output {
    s.tool(BIN).args(args).output().expect("runs")
}

fn findings(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// (kind, domain, name) of every finding.
fn keys(found: &[serde_json::Value]) -> BTreeSet<(String, String, String)> {
    found
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().expect("kind").to_owned(),
                f["domain"].as_str().expect("domain").to_owned(),
                f["name"].as_str().expect("name").to_owned(),
            )
        })
        .collect()
}

fn split(address: &str) -> (String, String) {
    let (n, d) = address.split_once('@').expect("address");
    (n.to_owned(), d.to_owned())
}

/// Bytes of every file and `.eml` files in `#msgs`, counted here independently of the tool.
fn measure(dir: &Path) -> (u64, u64) {
    let (mut bytes, mut messages) = (0, 0);
    for e in walkdir::WalkDir::new(dir) {
        let e = e.expect("walk");
        if e.file_type().is_file() {
            bytes += e.metadata().expect("meta").len();
            let in_msgs = e.path().parent().is_some_and(|p| p.ends_with("#msgs"));
            if in_msgs && e.path().extension().is_some_and(|x| x == "eml") {
                messages += 1;
            }
        }
    }
    (bytes, messages)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn it_reports_exactly_what_was_planted_measured_as_the_filesystem_says() {
    for options in [
        Options::demo(),
        Options {
            users: 120,
            seed: 11,
            messages_per_user: 2,
            max_message_size: 32 << 10,
            ..Options::default()
        },
    ] {
        let s = Scratch::new(&options);
        let p = &s.summary.planted;
        let mapped = s.summary.mapped_domain.clone().expect("a mapped domain");
        let out = run(&s, &["--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let found = findings(&out);

        let mut want = BTreeSet::new();
        for a in &p.orphan_mailboxes {
            let (n, d) = split(a);
            want.insert(("orphan-mailbox".into(), d, n));
        }
        // An orphan domain, and each mailbox in it on a row of its own.
        for d in &p.orphan_domains {
            want.insert(("orphan-domain".into(), d.clone(), String::new()));
            for e in std::fs::read_dir(s.root.join("store/mail").join(d)).expect("domain dir") {
                let name = e.expect("entry").file_name().to_string_lossy().into_owned();
                if !name.starts_with('#') {
                    want.insert(("orphan-mailbox".into(), d.clone(), name));
                }
            }
        }
        for (a, dir) in &p.case_mismatches {
            want.insert(("case-mismatch".into(), split(a).1, dir.clone()));
        }
        for a in &p.missing_mailboxes {
            let (n, d) = split(a);
            want.insert(("missing-mailbox".into(), d, n));
        }
        for (a, _) in &p.deleted_mailbox_folders {
            let (n, d) = split(a);
            want.insert(("deleted-mailbox-folder".into(), d, n));
        }
        // Every mailbox of the mapped domain is unverifiable without an export.
        let mapped_dir = s.root.join("store/mail").join(&mapped);
        let mut mapped_names = Vec::new();
        for e in std::fs::read_dir(&mapped_dir).expect("mapped domain dir") {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            if !name.starts_with('#') {
                want.insert(("unverifiable".into(), mapped.clone(), name.clone()));
                mapped_names.push(name);
            }
        }
        assert_eq!(keys(&found), want);

        for f in &found {
            let obj = f.as_object().expect("object");
            assert_eq!(
                obj.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                BTreeSet::from([
                    "kind", "domain", "name", "path", "bytes", "messages", "newest"
                ])
            );
            if f["kind"] == "missing-mailbox" {
                assert_eq!(
                    (f["path"].as_str(), f["bytes"].as_u64()),
                    (Some(""), Some(0))
                );
                continue;
            }
            let path = PathBuf::from(f["path"].as_str().expect("path"));
            assert!(path.starts_with(&s.root) && path.is_dir(), "{path:?}");
            assert!(
                !path.to_string_lossy().contains("/#"),
                "a #-folder: {path:?}"
            );
            let (bytes, messages) = measure(&path);
            assert_eq!(f["bytes"].as_u64(), Some(bytes), "{path:?}");
            assert_eq!(f["messages"].as_u64(), Some(messages), "{path:?}");
            assert_eq!(f["newest"].is_null(), messages == 0, "{path:?}");
        }

        // An export listing the mapped domain's accounts verifies them; one that leaves an
        // account out makes its mailbox an orphan.
        let ldif = s.root.parent().expect("dir").join("export.ldif");
        let entries: Vec<String> = mapped_names
            .iter()
            .map(|n| format!("dn: CN={n},DC=corp\nmail: {n}@{mapped}\n"))
            .collect();
        std::fs::write(&ldif, entries.join("\n")).expect("write");
        let out = run(
            &s,
            &[
                "--json",
                "--directory-export",
                ldif.to_str().expect("utf-8"),
            ],
        );
        let with_export = keys(&findings(&out));
        assert!(
            !with_export.iter().any(|k| k.1 == mapped),
            "{with_export:?}"
        );
        let mut fewer = entries[1..].to_vec();
        fewer.push(format!("dn: CN=new\nmail: someone.new@{mapped}\n"));
        std::fs::write(&ldif, fewer.join("\n")).expect("write");
        let out = run(
            &s,
            &[
                "--json",
                "--directory-export",
                ldif.to_str().expect("utf-8"),
            ],
        );
        let missing = keys(&findings(&out));
        assert!(missing.contains(&(
            "orphan-mailbox".into(),
            mapped.clone(),
            mapped_names[0].clone()
        )));
        s.assert_unchanged();
    }
}

#[test]
fn filters_csv_and_exit_codes() {
    let s = Scratch::new(&Options::demo());
    let out = run(&s, &["--csv", "--domain", "example.org"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("kind,domain,name,path,bytes,messages,newest")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r.split(',').nth(1) == Some("example.org")),
        "{text}"
    );
    // The vendor's folder name, with its dash and spaces, stays one CSV field.
    let out = run(&s, &["--csv", "--name", "anelson"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("deleted-mailbox-folder,example.com,anelson,"),
        "{text}"
    );
    // Nothing found: the header alone.
    let out = run(&s, &["--csv", "--name", "mwood"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "kind,domain,name,path,bytes,messages,newest\n"
    );
    // Nothing found for an account that is in order: exit 0; for a name that is nowhere: exit 2.
    let out = run(&s, &["--json", "--name", "mwood"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let out = run(&s, &["--json", "--name", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    // Older than any message: only findings without messages remain.
    let out = run(&s, &["--json", "--older-than", "100000"]);
    let found = findings(&out);
    assert!(!found.is_empty());
    assert!(found.iter().all(|f| f["messages"] == 0), "{found:?}");
    let all = findings(&run(&s, &["--json"]));
    let recent = findings(&run(&s, &["--json", "--older-than", "0"]));
    assert_eq!(all.len(), recent.len());
}

fn orphan_paths(s: &Scratch) -> Vec<PathBuf> {
    s.summary
        .planted
        .orphan_mailboxes
        .iter()
        .map(|a| {
            let (n, d) = split(a);
            PathBuf::from(format!("store/mail/{d}/{n}"))
        })
        .collect()
}

#[test]
fn archive_removes_the_orphans_after_a_backup_and_undo_brings_them_back() {
    let s = Scratch::new(&Options::demo());
    // The orphan mailboxes, and the orphan domain directory: archiving is all it can have.
    let mut orphans = orphan_paths(&s);
    assert_eq!(orphans.len(), 2);
    orphans.extend(
        s.summary
            .planted
            .orphan_domains
            .iter()
            .map(|d| PathBuf::from(format!("store/mail/{d}"))),
    );
    assert_eq!(orphans.len(), 3);
    // Without --execute: the plan, nothing changed.
    let out = run(&s, &["--archive"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    for o in &orphans {
        assert!(
            plan.contains(&format!("WOULD remove {}", o.display())),
            "{plan}"
        );
    }
    s.assert_unchanged();

    let out = run(&s, &["--archive", "--execute"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut want: Vec<PathBuf> = vec![
        "store/logs/config.log".into(),
        "store/logs/warning.log".into(),
    ];
    for o in &orphans {
        assert!(!s.root.join(o).exists());
    }
    let changed: Vec<PathBuf> = s
        .changed()
        .into_iter()
        .filter(|p| !orphans.iter().any(|o| p.starts_with(o)))
        .collect();
    want.sort();
    assert_eq!(changed, want);
    // The report no longer finds them.
    let after = keys(&findings(&run(&s, &["--json"])));
    assert!(
        !after
            .iter()
            .any(|k| k.0 == "orphan-mailbox" || k.0 == "orphan-domain"),
        "{after:?}"
    );
    s.undo_last();
    s.assert_unchanged();
}

#[test]
fn transfer_moves_each_orphan_under_the_user_and_undo_moves_it_back() {
    let s = Scratch::new(&Options::demo());
    let out = run(
        &s,
        &[
            "--domain",
            "example.org",
            "--transfer-to",
            "mwood@example.org",
            "--execute",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let folder = s
        .root
        .join("store/mail/example.org/mwood/Deleted mailbox \u{2014} olduser@example.org");
    assert_eq!(
        kc_testkit::differences(
            &s.before.join("store/mail/example.org/olduser"),
            &folder,
            &[]
        ),
        [PathBuf::from("status.fld")]
    );
    // The other domain's orphan was filtered out and stays.
    assert!(
        s.root
            .join("store/mail/example.com/former.employee")
            .is_dir()
    );
    s.undo_last();
    s.assert_unchanged();
    // An unknown target is refused.
    let out = run(&s, &["--transfer-to", "ghost@example.org", "--execute"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--transfer-to ghost@example.org: no such user"));
    s.assert_unchanged();
}

#[test]
fn adopt_creates_disabled_accounts_the_server_reattaches() {
    let s = Scratch::new(&Options::demo());
    let out = run(&s, &["--adopt", "--execute"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let config = Config::load(&s.root).expect("config");
    for a in &s.summary.planted.orphan_mailboxes {
        let (n, d) = split(a);
        let u = config.user(&n, &d).expect("adopted");
        assert!(!u.enabled(), "{a}");
        // A random password, never an empty one, and never in the log.
        let password = u.password().strip_prefix("NUL:").expect("a NUL: password");
        kc_core::import::check_password(password, &n).expect("a strong one");
        assert!(!s.read("store/logs/config.log").contains(password));
    }
    assert_eq!(
        s.changed(),
        [PathBuf::from("store/logs/config.log"), "users.cfg".into()]
    );
    // The Config log in the server's own form, the password never in it.
    let insert = |name: &str, domain: &str| {
        format!(
            "kc-orphan-mailbox-finder - insert User set Name='{name}', Domain='{domain}', FullName='', Description='Adopted orphan mailbox', Password=xxxxxx, Account_enabled='0', Auth_type='0', Rights='0', DataSource='0'"
        )
    };
    assert_eq!(
        s.new_log_lines("store/logs/config.log"),
        [
            insert("former.employee", "example.com"),
            insert("olduser", "example.org")
        ]
    );
    // The mailbox of the orphan domain has no domain to get an account in: left, and said.
    assert!(
        stderr(&out).contains("warning: ghost@old-domain.example: not adopted: its domain old-domain.example is not on the server"),
        "{}",
        stderr(&out)
    );
    let after = keys(&findings(&run(&s, &["--json"])));
    let left: Vec<_> = after.iter().filter(|k| k.0 == "orphan-mailbox").collect();
    assert_eq!(
        left,
        [&(
            "orphan-mailbox".to_owned(),
            "old-domain.example".to_owned(),
            "ghost".to_owned()
        )]
    );
    s.undo_last();
    s.assert_unchanged();
    // Only that one: refused, never an all-clear.
    let out = run(
        &s,
        &["--domain", "old-domain.example", "--adopt", "--execute"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("ghost@old-domain.example: not adopted"));
    s.assert_unchanged();
}

#[test]
fn a_mailbox_of_an_orphan_domain_is_a_row_of_its_own_and_moves_out_alone() {
    let s = Scratch::new(&Options::demo());
    // The table: the mailbox right under its domain's row.
    let out = run(&s, &["--domain", "old-domain.example"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let at = rows
        .iter()
        .position(|r| r[0] == "orphan-domain")
        .expect("the domain's row");
    assert_eq!(rows[at][1], "old-domain.example");
    assert_eq!(
        rows[at + 1][..3],
        ["orphan-mailbox", "old-domain.example", "ghost"]
    );

    let out = run(
        &s,
        &[
            "--domain",
            "old-domain.example",
            "--transfer-to",
            "mwood@example.org",
            "--execute",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let folder = s
        .root
        .join("store/mail/example.org/mwood/Deleted mailbox \u{2014} ghost@old-domain.example");
    assert_eq!(
        kc_testkit::differences(
            &s.before.join("store/mail/old-domain.example/ghost"),
            &folder,
            &[]
        ),
        [PathBuf::from("status.fld")]
    );
    assert!(!s.root.join("store/mail/old-domain.example/ghost").exists());
    assert_eq!(
        s.new_log_lines("store/logs/config.log"),
        [
            "kc-orphan-mailbox-finder - Move orphan mailbox 'ghost@old-domain.example' to 'mwood@example.org'"
        ]
    );
    s.undo_last();
    s.assert_unchanged();
}

#[test]
fn the_servers_public_folders_are_never_an_orphan_domain() {
    let s = Scratch::new(&Options {
        shapes: kc_testkit::Shapes {
            global_public: true,
            ..Default::default()
        },
        ..Options::demo()
    });
    assert!(s.root.join("store/mail/#public/acl.fld").is_file());
    let out = run(&s, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let found = findings(&out);
    for f in &found {
        let path = f["path"].as_str().expect("path");
        assert!(
            !f["domain"].as_str().expect("domain").starts_with('#') && !path.contains("#public"),
            "{f}"
        );
    }
    // The orphans are exactly the plain demo's.
    let plain = Scratch::new(&Options::demo());
    assert_eq!(keys(&found), keys(&findings(&run(&plain, &["--json"]))));
    let orphan_domains: Vec<&str> = found
        .iter()
        .filter(|f| f["kind"] == "orphan-domain")
        .map(|f| f["domain"].as_str().expect("domain"))
        .collect();
    assert_eq!(orphan_domains, ["old-domain.example"]);
    // Archiving every orphan leaves #public alone, and undo brings the rest back.
    let out = run(&s, &["--archive", "--execute"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("#public"));
    kc_testkit::compare_trees(
        &s.before.join("store/mail/#public"),
        &s.root.join("store/mail/#public"),
        &[],
    )
    .expect("#public untouched");
    assert!(!s.root.join("store/mail/old-domain.example").exists());
    s.undo_last();
    s.assert_unchanged();
}
