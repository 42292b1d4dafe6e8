//! The change protocol's core, end to end: a plan applied through kc-core, taken back by
//! `kc-backup undo`, byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::Command;
use kc_core::change::{self, ChangeError, Plan, Status, Step};
use kc_core::config::Config;
use kc_core::install::Install;
use kc_core::progress::Silent;
use kc_testkit::Options;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// The install as it was before any change.
    before: PathBuf,
}

fn fixture() -> Fixture {
    let (dir, _) = kc_testkit::temp_install(&Options {
        users: 10,
        messages_per_user: 2,
        ..Options::default()
    })
    .expect("fixture");
    let root = dir.path().join("kerio");
    let before = dir.path().join("before");
    assert!(
        Std::new("cp")
            .arg("-a")
            .arg(&root)
            .arg(&before)
            .status()
            .expect("cp")
            .success()
    );
    Fixture {
        _dir: dir,
        root,
        before,
    }
}

fn install(root: &Path) -> Install {
    Install::locate(Some(root), None).expect("install")
}

fn no_pid(root: &Path) -> PathBuf {
    root.join("no.pid")
}

fn same_tree(a: &Path, b: &Path) -> Result<(), String> {
    kc_testkit::compare_trees(a, b, &["kc-backups", "kc-journal", ".kc.lock"])
}

/// A plan of every step kind: edit users.cfg, rename a mailbox, create a folder with its
/// status.fld, append an audit line.
fn plan(root: &Path) -> (Plan, Vec<u8>, PathBuf, PathBuf) {
    let mut config = Config::load(root).expect("config");
    let user = config.users().next().expect("a user");
    let (id, name, domain) = (user.id(), user.name().to_owned(), user.domain().to_owned());
    config
        .users
        .set(id, "FullName", "Renamed Person")
        .expect("set");
    let users_cfg = config.users.to_bytes();
    let from = PathBuf::from(format!("store/mail/{domain}/{name}"));
    let to = PathBuf::from(format!("store/mail/{domain}/{name}.renamed"));
    // What goes inside the renamed mailbox is written before the rename (Plan::check).
    let folder = from.join("Deleted mailbox \u{2014} old@example.com");
    let plan = Plan {
        tool: "kc-test".into(),
        description: format!("rename {name}@{domain}"),
        steps: vec![
            Step::write_file("users.cfg", users_cfg.clone()),
            Step::CreateDir {
                path: folder.clone(),
            },
            Step::write_file(folder.join("status.fld"), b"T2 S0\n".to_vec()),
            Step::Rename {
                from: from.clone(),
                to: to.clone(),
            },
            Step::AppendLine {
                path: "store/logs/config.log".into(),
                line: change::audit_line("kc-test", "Rename User"),
            },
        ],
        warnings: vec![],
    };
    (plan, users_cfg, from, to)
}

/// Applies a plan to the fixture's install, its backups in `<root>/kc-backups`.
fn apply(f: &Fixture, plan: &Plan) -> Result<change::Applied, ChangeError> {
    change::apply(
        &install(&f.root),
        plan,
        &f.root.join("kc-backups"),
        &no_pid(&f.root),
        &Silent,
    )
}

fn kc_backup(root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kc-backup").expect("binary");
    cmd.arg("--server")
        .arg(root)
        .arg("--pid-file")
        .arg(no_pid(root))
        .arg("--no-progress");
    cmd
}

#[test]
fn apply_then_undo_gives_the_install_back_byte_for_byte() {
    let f = fixture();
    let inst = install(&f.root);
    let (plan, users_cfg, from, to) = plan(&f.root);
    assert!(
        plan.to_string().starts_with("WOULD write users.cfg ("),
        "{plan}"
    );
    let applied = apply(&f, &plan).expect("applies");
    assert_eq!(applied.steps, 5);
    assert!(applied.change.starts_with('C') && applied.backup.starts_with('P'));
    // The change is there.
    assert_eq!(
        std::fs::read(f.root.join("users.cfg")).expect("read"),
        users_cfg
    );
    assert!(!f.root.join(&from).exists() && f.root.join(&to).join("INBOX").is_dir());
    let log = std::fs::read_to_string(f.root.join("store/logs/config.log")).expect("log");
    assert!(
        log.lines()
            .last()
            .is_some_and(|l| l.starts_with('[') && l.ends_with("] kc-test - Rename User")),
        "{log}"
    );
    let journal = change::journals(&inst)
        .expect("journals")
        .pop()
        .expect("one");
    assert_eq!(
        (journal.status, journal.done, journal.id.as_str()),
        (Status::Done, 5, applied.change.as_str())
    );
    // The pre-change backup holds the touched paths, and knows which did not exist.
    let backup =
        kc_core::archive::find(&f.root.join("kc-backups"), &applied.backup).expect("backup");
    assert_eq!(backup.meta.kind, kc_core::archive::Kind::PreChange);
    assert!(
        backup
            .meta
            .absent
            .iter()
            .any(|p| p.ends_with("old@example.com")),
        "{:?}",
        backup.meta.absent
    );
    assert!(same_tree(&f.before, &f.root).is_err());

    let out = kc_backup(&f.root)
        .args(["undo", "--last"])
        .assert()
        .success();
    let line = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(
        line,
        format!(
            "undone {}: {} paths put back as backup {} had them\n",
            applied.change,
            plan.touched().len(),
            applied.backup
        )
    );
    same_tree(&f.before, &f.root).expect("the install is back byte for byte");

    // Twice is refused, by ID and by --last.
    let again = kc_backup(&f.root)
        .args(["undo", &applied.change])
        .assert()
        .code(2);
    assert!(
        String::from_utf8_lossy(&again.get_output().stderr)
            .contains(&format!("change {} was already undone at", applied.change))
    );
    let last = kc_backup(&f.root).args(["undo", "--last"]).assert().code(2);
    assert!(String::from_utf8_lossy(&last.get_output().stderr).contains("no change to undo"));
}

#[test]
fn changes_are_undone_newest_first() {
    let f = fixture();
    let (first_plan, ..) = plan(&f.root);
    let first = apply(&f, &first_plan).expect("applies");
    let second_plan = Plan {
        tool: "kc-test".into(),
        description: "a second change".into(),
        steps: vec![Step::AppendLine {
            path: "store/logs/config.log".into(),
            line: change::audit_line("kc-test", "Second"),
        }],
        warnings: vec![],
    };
    // Both write config.log: the second must go first, else its line would go with the first.
    let second = apply(&f, &second_plan).expect("applies");
    let early = kc_backup(&f.root)
        .args(["undo", &first.change])
        .assert()
        .code(2);
    assert_eq!(
        String::from_utf8_lossy(&early.get_output().stderr),
        format!(
            "kc-backup: error: change {}, made after {}, is still in effect; changes are undone newest first: run `kc-backup undo --last` until {} is undone; nothing was changed\n",
            second.change, first.change, first.change
        )
    );
    kc_backup(&f.root)
        .args(["undo", &second.change])
        .assert()
        .success();
    kc_backup(&f.root)
        .args(["undo", &first.change])
        .assert()
        .success();
    same_tree(&f.before, &f.root).expect("back byte for byte");
}

#[test]
fn a_failing_step_rolls_the_whole_change_back() {
    let f = fixture();
    let inst = install(&f.root);
    let (mut plan, ..) = plan(&f.root);
    // Step 3 renames a mailbox that does not exist.
    plan.steps.insert(
        2,
        Step::Rename {
            from: "store/mail/nowhere/ghost".into(),
            to: "store/mail/nowhere/ghost2".into(),
        },
    );
    let err = apply(&f, &plan).expect_err("fails");
    let message = err.to_string();
    assert!(
        matches!(err, ChangeError::RolledBack { step: 3, .. }),
        "{message}"
    );
    assert!(
        message.starts_with(
            "step 3 (rename store/mail/nowhere/ghost -> store/mail/nowhere/ghost2) failed: "
        ),
        "{message}"
    );
    assert!(
        message.contains("; the change was rolled back from backup P")
            && message.ends_with(", nothing changed"),
        "{message}"
    );
    same_tree(&f.before, &f.root).expect("unchanged after the rollback");
    let journal = change::journals(&inst)
        .expect("journals")
        .pop()
        .expect("one");
    assert_eq!(journal.status, Status::RolledBack);
}

#[test]
fn an_unfinished_change_blocks_every_writer_until_undone() {
    let f = fixture();
    let (plan, ..) = plan(&f.root);
    let applied = apply(&f, &plan).expect("applies");
    // As if the process had died after step 2: the journal says "applying".
    let journal_path = f
        .root
        .join("kc-journal")
        .join(format!("{}.json", applied.change));
    let mut journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&journal_path).expect("read")).expect("json");
    journal["status"] = "applying".into();
    journal["done"] = 2.into();
    std::fs::write(&journal_path, journal.to_string()).expect("write");

    let other = another_plan();
    let err = apply(&f, &other).expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "change {0} was interrupted and is unfinished; run `kc-backup undo {0}` to take it back (or re-run the tool with --resume), then try again; nothing was changed",
            applied.change
        )
    );
    // kc-backup's own writer refuses too.
    let refused = kc_backup(&f.root)
        .args(["restore", &applied.backup, "--in-place"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!(
            "change {} was interrupted and is unfinished",
            applied.change
        )),
        "{stderr}"
    );
    kc_backup(&f.root)
        .args(["undo", &applied.change])
        .assert()
        .success();
    same_tree(&f.before, &f.root).expect("back as before");
    apply(&f, &other).expect("writers may go on");
}

fn another_plan() -> Plan {
    Plan {
        tool: "kc-test".into(),
        description: "another change".into(),
        steps: vec![Step::AppendLine {
            path: "store/logs/config.log".into(),
            line: change::audit_line("kc-test", "Other change"),
        }],
        warnings: vec![],
    }
}

#[test]
fn a_lock_held_by_another_run_refuses_the_change_and_changes_nothing() {
    let f = fixture();
    let (plan, ..) = plan(&f.root);
    let holder = kc_testkit::LockHolder::hold(&f.root, "pid 4242 kc-other");
    let err = apply(&f, &plan).expect_err("refused");
    drop(holder);
    assert!(
        err.to_string()
            .contains("held by another kerio-toolkit run (pid 4242 kc-other)"),
        "{err}"
    );
    same_tree(&f.before, &f.root).expect("unchanged");
    assert!(!f.root.join("kc-backups").exists() && !f.root.join("kc-journal").exists());
}

/// A tmpfs of `size` mounted on a new directory, unmounted when dropped; `None` where this
/// machine does not let us mount (not root).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Std::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Std::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_during_the_backup_or_the_apply_leaves_the_install_unchanged() {
    let f = fixture();
    let inst = install(&f.root);
    let (plan, ..) = plan(&f.root);
    // The pre-change backup has no room.
    let Some(small) = Tmpfs::mount("4k") else {
        eprintln!("cannot mount a tmpfs here (not root?): skipped");
        return;
    };
    let err = change::apply(&inst, &plan, small.0.path(), &no_pid(&f.root), &Silent)
        .expect_err("no room");
    assert!(err.to_string().contains("No space left on device"), "{err}");
    same_tree(&f.before, &f.root).expect("unchanged");
    assert!(
        std::fs::read_dir(small.0.path())
            .expect("dir")
            .next()
            .is_none(),
        "no partial backup left"
    );
    drop(small);

    // The install's own disk is full: no room to keep what the change will write (for
    // --resume), so it does not start.
    let Some(disk) = Tmpfs::mount("24m") else {
        return;
    };
    let root = disk.0.path().join("kerio");
    assert!(
        Std::new("cp")
            .arg("-a")
            .arg(&f.before)
            .arg(&root)
            .status()
            .expect("cp")
            .success()
    );
    let backups = f.root.join("kc-backups-elsewhere");
    let big = |bytes: usize| Plan {
        tool: "kc-test".into(),
        description: "fill the disk".into(),
        steps: vec![
            Step::AppendLine {
                path: "store/logs/config.log".into(),
                line: change::audit_line("kc-test", "Big"),
            },
            Step::write_file("store/big.bin", vec![7u8; bytes]),
        ],
        warnings: vec![],
    };
    let err = change::apply(
        &install(&root),
        &big(40 << 20),
        &backups,
        &no_pid(&root),
        &Silent,
    )
    .expect_err("no room");
    let message = err.to_string();
    assert!(
        message.starts_with("the change could not start: ")
            && message.contains("No space left on device"),
        "{message}"
    );
    assert!(message.ends_with("; nothing was changed"), "{message}");
    same_tree(&f.before, &root).expect("unchanged");

    // Room for the kept copy but not for the write itself: step 2 fails, step 1 is rolled back.
    let free = Std::new("df")
        .args(["--output=avail", "-B1"])
        .arg(&root)
        .output()
        .expect("df");
    let free: usize = String::from_utf8_lossy(&free.stdout)
        .lines()
        .nth(1)
        .expect("a figure")
        .trim()
        .parse()
        .expect("bytes");
    let bytes = free * 2 / 3;
    let err = change::apply(
        &install(&root),
        &big(bytes),
        &backups,
        &no_pid(&root),
        &Silent,
    )
    .expect_err("disk full");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "step 2 (write store/big.bin ({bytes} bytes)) failed: "
        )),
        "{message}"
    );
    assert!(
        message.contains("No space left on device") && message.ends_with(", nothing changed"),
        "{message}"
    );
    same_tree(&f.before, &root).expect("unchanged after the rollback");
}

#[test]
fn undo_brings_back_a_dangling_symlink_the_change_removed() {
    let link = "store/mail/example.com/points-nowhere";
    let f = fixture();
    // The fixture's copy `before` must have the link too.
    for root in [&f.root, &f.before] {
        std::os::unix::fs::symlink("gone-folder", root.join(link)).expect("symlink");
    }
    let plan = Plan {
        tool: "kc-test".into(),
        description: "remove a dangling link".into(),
        steps: vec![Step::RemoveDir { path: link.into() }],
        warnings: vec![],
    };
    let applied = apply(&f, &plan).expect("applies");
    assert!(f.root.join(link).symlink_metadata().is_err(), "removed");
    let backup =
        kc_core::archive::find(&f.root.join("kc-backups"), &applied.backup).expect("backup");
    assert!(
        backup.meta.absent.is_empty(),
        "a dangling link exists: {:?}",
        backup.meta.absent
    );
    kc_backup(&f.root)
        .args(["undo", &applied.change])
        .assert()
        .success();
    same_tree(&f.before, &f.root).expect("the link is back");
}

#[test]
fn renaming_a_dangling_symlink_is_a_change_not_a_failure() {
    let f = fixture();
    std::os::unix::fs::symlink(
        "gone-folder",
        f.root.join("store/mail/example.com/old-link"),
    )
    .expect("symlink");
    let plan = Plan {
        tool: "kc-test".into(),
        description: "rename a dangling link".into(),
        steps: vec![Step::Rename {
            from: "store/mail/example.com/old-link".into(),
            to: "store/mail/example.com/new-link".into(),
        }],
        warnings: vec![],
    };
    apply(&f, &plan).expect("applies");
    let moved = f.root.join("store/mail/example.com/new-link");
    assert_eq!(
        std::fs::read_link(&moved).expect("a link"),
        PathBuf::from("gone-folder")
    );
    assert!(
        f.root
            .join("store/mail/example.com/old-link")
            .symlink_metadata()
            .is_err()
    );
}
