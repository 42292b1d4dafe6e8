//! Bad input, across the binaries: a clear error naming the file, line and column, exit 2, and
//! nothing changed.

use std::path::Path;
use std::process::Command;

use kc_testkit::{Options, Scratch};

fn tool(s: &Scratch, name: &str) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin(name));
    cmd.env("KC_SERVER", &s.root)
        .arg("--pid-file")
        .arg(&s.pid_file)
        .arg("--no-progress");
    cmd
}

/// Writes `text` to `rel` in both the install and its pristine copy.
fn plant(s: &Scratch, rel: &str, text: &str) {
    for root in [&s.root, &s.before] {
        std::fs::write(root.join(rel), text).expect("write");
    }
}

fn expect_refusal(s: &Scratch, name: &str, args: &[&str], says: &str) {
    let out = tool(s, name).args(args).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stderr}");
    assert!(
        // The tool's own errors, or clap's for a value it cannot parse.
        (stderr.starts_with(&format!("{name}: error: "))
            || stderr.starts_with("error: invalid value"))
            && stderr.contains(says),
        "{name} {args:?}: {stderr}"
    );
    s.assert_unchanged();
}

#[test]
fn malformed_users_cfg_is_named_with_its_line_and_column() {
    let s = Scratch::new(&Options::demo());
    let good = std::fs::read_to_string(s.root.join("users.cfg")).expect("read");
    // The first <variable> loses its closing tag: the parser finds out at the </listitem> of
    // line 21.
    let bad = good.replacen("</variable>", "", 1);
    plant(&s, "users.cfg", &bad);
    let at = format!(
        "{}:21:5: malformed XML: ill-formed document: expected `</variable>`, but `</listitem>` was found",
        Path::new(&s.root).join("users.cfg").display()
    );
    for (name, args) in [
        ("kc-rename-user", &["pnelson@example.org", "peter"][..]),
        ("kc-user", &["list"]),
        ("kc-user", &["disable", "mwood@example.org"]),
        ("kc-orphan-mailbox-finder", &[]),
        ("kc-store", &["check"]),
    ] {
        expect_refusal(&s, name, args, &at);
    }
}

#[test]
fn a_malformed_folder_map_stops_a_rename_before_anything_changes() {
    let s = Scratch::new(&Options::demo());
    let rel = "store/mail/example.org/mwood/folder.map";
    plant(
        &s,
        rel,
        "<?xml version=\"1.0\"?>\n<map>\n  <folder owner=\"x\"\n</map>\n",
    );
    expect_refusal(
        &s,
        "kc-rename-user",
        &["pnelson@example.org", "peter"],
        &format!("{}:", s.root.join(rel).display()),
    );
}

#[test]
fn paths_and_names_outside_the_rules_are_refused() {
    let s = Scratch::new(&Options::demo());
    expect_refusal(
        &s,
        "kc-rename-user",
        &["pnelson@example.org", "../../etc"],
        "is not an address: '/' is not allowed",
    );
    expect_refusal(
        &s,
        "kc-user",
        &[
            "remove",
            "mwood@example.org",
            "--mailbox",
            "transfer:../x@example.org",
        ],
        "is not an address",
    );
    let csv = s.root.parent().expect("dir").join("x.csv");
    std::fs::write(&csv, "Name\n..\n").expect("write");
    expect_refusal(
        &s,
        "kc-bulk-import",
        &[csv.to_str().expect("utf-8"), "--domain", "example.com"],
        &format!(
            "{}:2: Name: \"..\": a name may not start or end with '.'",
            csv.display()
        ),
    );
}
