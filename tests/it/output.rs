//! What the tools say, across the binaries: a typo'd name is exit 2 with "did you mean", never an
//! empty all-clear; stdout carries data and stderr messages; `-q` leaves errors only; a closed
//! pipe ends a tool quietly.

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};

use kc_testkit::{Options, Scratch};

fn run(s: &Scratch, tool: &str, args: &[&str]) -> Output {
    s.tool(tool).args(args).output().expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit 2, nothing on stdout, exactly this one line on stderr, nothing changed.
fn refused(s: &Scratch, tool: &str, args: &[&str], line: &str) {
    let out = run(s, tool, args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{tool} {args:?}: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "", "{tool} {args:?}");
    assert_eq!(
        text(&out.stderr),
        format!("{tool}: error: {line}\n"),
        "{tool} {args:?}"
    );
    s.assert_unchanged();
}

#[test]
fn a_typo_is_an_error_that_names_the_closest_name() {
    let s = Scratch::new(&Options::demo());
    let orphans = "kc-orphan-mailbox-finder";
    let typo = "no domain exmaple.com (did you mean example.com?)";
    refused(&s, orphans, &["--domain", "exmaple.com"], typo);
    refused(
        &s,
        orphans,
        &["--domain", "exmaple.com", "--archive", "--execute"],
        typo,
    );
    refused(
        &s,
        orphans,
        &["--domain", "example.com", "--name", "formr.employee"],
        "no account or mailbox in example.com named formr.employee (did you mean former.employee?)",
    );
    refused(&s, "kc-user", &["list", "--domain", "exmaple.com"], typo);
    refused(
        &s,
        "kc-user",
        &["disable", "lhil@example.com"],
        "lhil@example.com: no such user (did you mean lhill@example.com?); nothing was changed",
    );
    refused(
        &s,
        orphans,
        &["--domain", "nothing-like-it.test"],
        "no domain nothing-like-it.test",
    );
    refused(
        &s,
        "kc-store",
        &["check", "--domain", "exmaple.com"],
        &format!(
            "no domain exmaple.com in {} (did you mean example.com?)",
            s.root.join("store/mail").display()
        ),
    );
    // An orphan domain is no typo: it is in the store.
    let out = run(&s, orphans, &["--domain", "old-domain.example"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    // A restore of a name the backup does not hold restores nothing and makes no directory.
    let out = run(&s, "kc-backup", &["-q", "create"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let to = s.root.parent().expect("dir").join("restored");
    let to_arg = to.to_str().expect("utf-8");
    for (args, says) in [
        (
            &["--user", "lhil@example.com"][..],
            "no mailbox lhil@example.com (did you mean lhill@example.com?)",
        ),
        (
            &["--domain", "exmaple.com"],
            "no domain exmaple.com (did you mean example.com?)",
        ),
    ] {
        let out = s
            .tool("kc-backup")
            .args(["restore", "latest", "--to", to_arg])
            .args(args)
            .output()
            .expect("runs");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.starts_with("kc-backup: error: backup F") && stderr.contains(says),
            "{stderr}"
        );
        assert!(!to.exists());
    }
    let out = s
        .tool("kc-backup")
        .args(["restore", "latest", "--to", to_arg])
        .args(["--user", "lhill@example.com", "--folder", "INBOX/Nope"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("the selection matches no file in F"));
    assert!(!to.exists());
}

#[test]
fn quiet_writers_say_nothing_and_warnings_go_to_stderr() {
    let s = Scratch::new(&Options::demo());
    // A dry run: the plan on stdout, its warnings on stderr with the tool's name.
    let out = run(
        &s,
        "kc-user",
        &["-n", "remove", "lclark@example.org", "--mailbox", "keep"],
    );
    assert_eq!(out.status.code(), Some(0));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.starts_with(
            "kc-user: remove lclark@example.org (mailbox kept) (dry run: nothing is changed)\n"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("warning: "), "{stdout}");
    assert!(
        stderr.lines().all(|l| l
            .starts_with("kc-user: warning: lclark@example.org is still named: ")
            || l.starts_with("kc-user: warning: 2 folder sharing entries")),
        "{stderr}"
    );
    assert!(!stderr.is_empty());

    // -q: the change is made; nothing on stdout or stderr.
    for (tool, args) in [
        ("kc-user", &["-q", "disable", "mwood@example.org"][..]),
        (
            "kc-user",
            &["-q", "remove", "lclark@example.org", "--mailbox", "keep"],
        ),
        ("kc-backup", &["-q", "undo", "--last"]),
        ("kc-backup", &["-q", "undo", "--last"]),
    ] {
        let out = run(&s, tool, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(
            (text(&out.stdout), text(&out.stderr)),
            (String::new(), String::new()),
            "{tool} {args:?}"
        );
    }
    s.assert_unchanged();
}

#[test]
fn a_closed_pipe_ends_a_listing_quietly() {
    // Enough rows to fill the pipe: the tool writes after its reader has gone.
    let s = Scratch::new(&Options {
        users: 700,
        messages_per_user: 0,
        ..Options::default()
    });
    for (tool, args) in [("kc-user", &["list"][..]), ("kc-user", &["list", "--json"])] {
        let mut child = s
            .tool(tool)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("a line");
        assert!(!first.is_empty());
        // The reader is dropped here: the pipe is closed.
        let out = child.wait_with_output().expect("ends");
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked"), "{tool}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{tool} {args:?}: {stderr}");
        assert_eq!(stderr, "", "{tool} {args:?}");
    }
}

#[test]
fn changes_lists_what_each_tool_did_and_whether_it_is_still_in_effect() {
    let s = Scratch::new(&Options::demo());
    let out = run(&s, "kc-backup", &["changes"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "");
    assert!(text(&out.stderr).starts_with("no changes recorded in "));

    for args in [
        &["-q", "disable", "mwood@example.org"][..],
        &["-q", "remove", "lclark@example.org", "--mailbox", "delete"],
    ] {
        assert_eq!(run(&s, "kc-user", args).status.code(), Some(0));
    }
    assert_eq!(
        run(&s, "kc-backup", &["-q", "undo", "--last"])
            .status
            .code(),
        Some(0)
    );

    let out = run(&s, "kc-backup", &["changes", "--json"]);
    let rows: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let seen: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["tool"].as_str().expect("tool"),
                r["description"].as_str().expect("description"),
                r["state"].as_str().expect("state"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("kc-user", "disable mwood@example.org", "in effect"),
            (
                "kc-user",
                "remove lclark@example.org (mailbox deleted)",
                "undone"
            ),
        ]
    );
    // The table: a header, then one row each, the change's words last.
    let out = run(&s, "kc-backup", &["changes"]);
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("CHANGE ") && lines[0].ends_with(" WHAT"));
    for (line, row) in lines[1..].iter().zip(&rows) {
        let id = row["change"].as_str().expect("id");
        let backup = row["backup"].as_str().expect("backup");
        assert!(line.starts_with(id), "{line}");
        assert!(line.contains(&format!(" {backup} ")), "{line}");
        assert!(
            line.contains(row["state"].as_str().expect("state")),
            "{line}"
        );
        assert!(
            line.ends_with(row["description"].as_str().expect("what")),
            "{line}"
        );
    }
    // `list` names the change each pre-change backup was taken for.
    let out = run(&s, "kc-backup", &["list"]);
    let first = rows[0]["backup"].as_str().expect("backup");
    let change = rows[0]["change"].as_str().expect("change");
    assert!(
        text(&out.stdout).lines().any(|l| l.starts_with(&format!(
            "{first}  pre-change (before {change}, kc-user disable mwood@example.org)  2 files  "
        ))),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn tables_speak_in_sizes_words_and_counts() {
    let s = Scratch::new(&Options::demo());
    let out = run(&s, "kc-orphan-mailbox-finder", &[]);
    assert_eq!(out.status.code(), Some(1));
    let table = text(&out.stdout);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(
        rows[0],
        "KIND                   DOMAIN               NAME                         SIZE MESSAGES NEWEST               PATH"
    );
    let ghost = rows
        .iter()
        .find(|r| r.contains(" ghost "))
        .expect("ghost's row");
    assert!(
        ghost.starts_with("orphan-mailbox         old-domain.example   ghost                  325.26 KiB       17 "),
        "{ghost}"
    );
    assert_eq!(
        text(&out.stderr),
        "kc-orphan-mailbox-finder: 8 findings: 3 orphan-mailbox, 1 orphan-domain, 1 case-mismatch, 1 missing-mailbox, 1 deleted-mailbox-folder, 1 unverifiable\n"
    );
    // Exact bytes stay in the machine formats.
    let out = run(
        &s,
        "kc-orphan-mailbox-finder",
        &["--json", "--name", "ghost"],
    );
    let ghost: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().expect("a row")).expect("JSON");
    assert_eq!(ghost["bytes"], 333_065);

    let out = run(&s, "kc-user", &["list", "--domain", "example.com"]);
    let table = text(&out.stdout);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(
        rows[0],
        "NAME                     DOMAIN               FULL NAME                ENABLED  RIGHTS     SOURCE      MAILBOX"
    );
    assert_eq!(
        rows[1],
        "anelson                  example.com          Anna Nelson              yes      full       local    387.86 KiB"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("rstewart ") && r.contains(" none "))
    );
}

#[test]
fn diff_shows_the_edit_and_never_a_password() {
    let s = Scratch::new(&Options::demo());
    let out = run(
        &s,
        "kc-user",
        &["-n", "--diff", "disable", "mwood@example.org"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let diff = &stdout[stdout.find("--- a/users.cfg\n").expect("a diff")..];
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+'))
                && !l.starts_with("--- ")
                && !l.starts_with("+++ ")
        })
        .collect();
    assert_eq!(
        changed,
        [
            "-      <variable name=\"Account_enabled\">1</variable>",
            "+      <variable name=\"Account_enabled\">0</variable>",
        ]
    );
    assert!(diff.contains("+++ b/users.cfg\n@@ "), "{diff}");
    assert!(
        diff.contains("       <variable name=\"Password\">xxxxxx</variable>\n"),
        "{diff}"
    );

    // An import: every new record's password masked, whatever its form.
    let csv = s.root.parent().expect("dir").join("staff.csv");
    std::fs::write(
        &csv,
        "Name;Password;FullName\nkbuyer;Sup3r-Secret-1;Karl Buyer\n",
    )
    .expect("csv");
    let out = s
        .tool("kc-bulk-import")
        .args(["-n", "--diff", "--domain", "example.com"])
        .arg(&csv)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("+      <variable name=\"Password\">xxxxxx</variable>\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("Sup3r"), "{stdout}");
    assert!(!text(&out.stderr).contains("Sup3r"));
    s.assert_unchanged();
}

#[test]
fn newest_comes_from_the_messages_so_a_fresh_copy_still_has_old_orphans() {
    let s = Scratch::new(&Options::demo());
    // As `cp -r` leaves it: every file's time is now.
    let touched = std::process::Command::new("find")
        .arg(&s.root)
        .args(["-type", "f", "-exec", "touch", "{}", "+"])
        .status()
        .expect("find");
    assert!(touched.success());
    let out = run(
        &s,
        "kc-orphan-mailbox-finder",
        &["--json", "--older-than", "30", "--name", "former.employee"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let row: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().expect("a row")).expect("JSON");
    // The demo's index.fld: its newest D field.
    assert_eq!(row["newest"], "2025-09-30T22:27:18Z");
}

#[test]
fn an_import_over_a_kept_mailbox_says_whose_mail_the_account_gets() {
    let s = Scratch::new(&Options::demo());
    let csv = s.root.parent().expect("dir").join("back.csv");
    std::fs::write(
        &csv,
        "Name;Password;FullName\nformer.employee;Sup3r-Secret-1;Back Again\n",
    )
    .expect("csv");
    let out = s
        .tool("kc-bulk-import")
        .args(["-n", "--domain", "example.com"])
        .arg(&csv)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "kc-bulk-import: warning: former.employee@example.com gets the existing mailbox store/mail/example.com/former.employee (23 messages, newest 2025-09-30): the server attaches it to the new account; move it away first (kc-orphan-mailbox-finder --transfer-to or --archive) if it is not theirs\n"
    );
    s.assert_unchanged();
}

#[test]
fn a_rename_map_names_every_bad_line_in_one_pass() {
    let s = Scratch::new(&Options::demo());
    let map = s.root.parent().expect("dir").join("map.csv");
    std::fs::write(
        &map,
        "old,new\nnobody@example.org,x\nbad line without comma\npnelson@example.org,pe ter\nmwood@example.org,martin\n",
    )
    .expect("map");
    let out = s
        .tool("kc-rename-user")
        .arg("--map")
        .arg(&map)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let m = map.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "kc-rename-user: error: {m}:2: nobody@example.org: no such user\n{m}:3: expected two fields \"old,new\", found 1\n{m}:4: NEW: \"pe ter\" is not an address: ' ' is not allowed (letters, digits, '.', '_' and '-' only); nothing was changed\n"
        )
    );
    s.assert_unchanged();
}

#[test]
fn a_dry_run_predicts_the_refusal_of_a_link_out_of_the_install() {
    let s = Scratch::new(&Options::demo());
    let outside = s.root.parent().expect("dir").join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("index.fld"), "U00000001 S1 D6606c5e7\n").expect("index");
    let evil = s.root.join("store/mail/example.com/anelson/INBOX/Evil");
    std::os::unix::fs::symlink(&outside, &evil).expect("link");
    let args = [
        "--domain",
        "example.com",
        "--user",
        "anelson",
        "--folder",
        "INBOX/Evil",
    ];
    for dry in [true, false] {
        let out = s
            .tool("kc-store")
            .arg("reindex")
            .args(dry.then_some("-n"))
            .args(args)
            .output()
            .expect("runs");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "dry run {dry}: {stderr}");
        assert!(
            stderr.contains("leads out of the install"),
            "dry run {dry}: {stderr}"
        );
    }
    assert!(outside.join("index.fld").is_file());
    std::fs::remove_file(&evil).expect("unlink");
    s.assert_unchanged();
}
