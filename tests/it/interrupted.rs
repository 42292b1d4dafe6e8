//! After a crash in the middle of a change, every writer refuses until the change is undone or
//! finished, and any writer's `--resume` finishes it: across the binaries, as an admin meets it.
//!
//! The crash comes from kc-testkit's `kc-crash-rename` (a rename through the change protocol,
//! built with fault injection) killed after its second step.

use std::path::Path;
use std::process::Command;

fn bin(name: &str) -> std::path::PathBuf {
    let path = assert_cmd::cargo::cargo_bin(name);
    assert!(
        path.exists(),
        "{} is built by `cargo test --workspace`",
        path.display()
    );
    path
}

fn tool(name: &str, root: &Path) -> Command {
    let mut cmd = Command::new(bin(name));
    cmd.env("KC_SERVER", root)
        .arg("--pid-file")
        .arg(root.join("no.pid"))
        .arg("--no-progress");
    cmd
}

#[test]
fn every_writer_refuses_until_resume_finishes_the_interrupted_change() {
    let (dir, _) = kc_testkit::temp_install(&kc_testkit::Options::demo()).expect("fixture");
    let root = dir.path().join("kerio");
    let crashed = Command::new(bin("kc-crash-rename"))
        .arg(&root)
        .args([
            "pnelson@example.org",
            "peter",
            "[22/Nov/2026 02:00:00] kc-crash-rename - Rename User",
        ])
        .env("KC_CRASH_AFTER_STEP", "2")
        .output()
        .expect("runs");
    assert!(!crashed.status.success(), "it was made to crash");
    let journal = std::fs::read_dir(root.join("kc-journal"))
        .expect("a journal")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with('C') && n.ends_with(".json"))
        .expect("the change's journal");
    let id = journal.trim_end_matches(".json");

    for (name, args) in [
        ("kc-rename-user", &["mwood@example.org", "martin"][..]),
        ("kc-user", &["disable", "mwood@example.org"]),
        (
            "kc-bulk-import",
            &["--from-users-cfg", "/nonexistent/users.cfg"],
        ),
        ("kc-orphan-mailbox-finder", &["--archive", "--execute"]),
    ] {
        let out = tool(name, &root).args(args).output().expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(
            stderr,
            format!(
                "{name}: error: change {id} was interrupted and is unfinished; run `kc-backup undo {id}` to take it back (or re-run the tool with --resume), then try again; nothing was changed\n"
            ),
            "{name}"
        );
    }
    // The read-only report still runs.
    let out = tool("kc-orphan-mailbox-finder", &root)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));

    let out = tool("kc-user", &root)
        .arg("--resume")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with(&format!("resumed and finished change {id} (")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let config = kc_core::config::Config::load(&root).expect("config");
    assert!(config.user("peter", "example.org").is_some());
    assert!(root.join("store/mail/example.org/peter").is_dir());
    // And the writers work again.
    let out = tool("kc-user", &root)
        .args(["disable", "mwood@example.org"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
