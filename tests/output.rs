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
        stdout.starts_with("kc-user: remove lclark@example.org (dry run: nothing is changed)\n"),
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
