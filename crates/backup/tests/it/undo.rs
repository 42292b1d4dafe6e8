//! The change protocol's core, end to end: a plan applied through kc-core, taken back by
//! `kc-backup undo`, byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::Command;
use kc_core::change::{self, ChangeError, Expect, Plan, Status, Step};
use kc_core::config::Config;
use kc_core::install::Install;
use kc_core::progress::Silent;
use kc_testkit::Options;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// The install as it was before any change.
    before: PathBuf,
    _turn: kc_testkit::Turn,
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
    kc_testkit::copy_tree(&root, &before);
    Fixture {
        _dir: dir,
        root,
        before,
        _turn: kc_testkit::Turn::shared(),
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
            Step::write_file("users.cfg", users_cfg.clone(), Expect::Any),
            Step::CreateDir {
                path: folder.clone(),
            },
            Step::write_file(folder.join("status.fld"), b"T2 S0\n".to_vec(), Expect::Any),
            Step::Rename {
                from: from.clone(),
                to: to.clone(),
            },
            Step::AppendLines {
                path: "store/logs/config.log".into(),
                lines: vec![kc_core::audit::line("kc-test", "Rename User")],
            },
        ],
        warnings: vec![],
    };
    (plan, users_cfg, from, to)
}

/// Applies a plan to the fixture's install, its backups in `<root>/kc-backups`.
fn apply(f: &Fixture, plan: &Plan) -> Result<change::Applied, ChangeError> {
    apply_at(&f.root, &f.root.join("kc-backups"), plan)
}

/// Applies a plan to the install at `root`, its backups in `backups`.
fn apply_at(root: &Path, backups: &Path, plan: &Plan) -> Result<change::Applied, ChangeError> {
    let cx = change::Context {
        install: &install(root),
        backup_dir: backups,
        pid_file: &no_pid(root),
        progress: &Silent,
    };
    change::apply(&cx, plan)
}

/// An error with its causes, as `kc-<tool>: error:` prints it.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
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
            "undone {} (kc-test: {}): {} paths put back as backup {} had them\n",
            applied.change,
            plan.description,
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
        steps: vec![Step::AppendLines {
            path: "store/logs/config.log".into(),
            lines: vec![kc_core::audit::line("kc-test", "Second")],
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
            "step 3 (rename store/mail/nowhere/ghost -> store/mail/nowhere/ghost2) failed; the change was rolled back from backup P"
        ) && message.ends_with(", nothing changed"),
        "{message}"
    );
    assert!(
        chain(&err)
            .ends_with("/kerio/store/mail/nowhere/ghost: No such file or directory (os error 2)"),
        "{}",
        chain(&err)
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
        steps: vec![Step::AppendLines {
            path: "store/logs/config.log".into(),
            lines: vec![kc_core::audit::line("kc-test", "Other change")],
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
    let (plan, ..) = plan(&f.root);
    // The pre-change backup has no room.
    let Some(small) = Tmpfs::mount("4k") else {
        eprintln!("cannot mount a tmpfs here (not root?): skipped");
        return;
    };
    let err = apply_at(&f.root, small.0.path(), &plan).expect_err("no room");
    assert!(chain(&err).contains("No space left on device"), "{err}");
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
    kc_testkit::copy_tree(&f.before, &root);
    let backups = f.root.join("kc-backups-elsewhere");
    let big = |bytes: usize| Plan {
        tool: "kc-test".into(),
        description: "fill the disk".into(),
        steps: vec![
            Step::AppendLines {
                path: "store/logs/config.log".into(),
                lines: vec![kc_core::audit::line("kc-test", "Big")],
            },
            Step::write_file("store/big.bin", vec![7u8; bytes], Expect::Any),
        ],
        warnings: vec![],
    };
    let err = apply_at(&root, &backups, &big(40 << 20)).expect_err("no room");
    let message = chain(&err);
    assert!(
        message.starts_with("the change could not start; nothing was changed: ")
            && message.contains("No space left on device"),
        "{message}"
    );

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
    let err = apply_at(&root, &backups, &big(bytes)).expect_err("disk full");
    let message = chain(&err);
    assert!(
        message.starts_with(&format!(
            "step 2 (write store/big.bin ({bytes} bytes)) failed; the change was rolled back from backup P"
        )),
        "{message}"
    );
    assert!(
        message.contains(", nothing changed: ")
            && message.contains("store/big.bin: No space left on device (os error 28)"),
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

// ---- The promise under a second writer, later edits, hostile journals and links (#14) ----

fn kc_user(root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kc-user").expect("binary");
    cmd.arg("--server")
        .arg(root)
        .arg("--pid-file")
        .arg(no_pid(root))
        .arg("--no-progress");
    cmd
}

fn stderr(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

/// Some enabled local account of the fixture.
fn some_user(root: &Path) -> String {
    let config = Config::load(root).expect("config");
    let u = config
        .users()
        .find(|u| {
            u.enabled() && !u.mapped() && config.domain(u.domain()).is_some_and(|d| !d.mapped())
        })
        .expect("a local enabled user");
    format!("{}@{}", u.name(), u.domain())
}

#[test]
fn a_plan_made_from_a_file_written_since_is_refused_and_changes_nothing() {
    // The interleaving of a lost update, forced: plan, then another writer, then apply.
    let f = fixture();
    let inst = install(&f.root);
    let who = kc_core::account::Address::parse(&some_user(&f.root), None).expect("address");
    let model = kc_core::model::Model::load(&inst).expect("configs");
    let plan = kc_core::user::plan(model, &[who], &kc_core::user::Action::Disable).expect("plan");
    let mut other = Config::load(&f.root).expect("config");
    let id = other.users().nth(1).expect("a user").id();
    other
        .users
        .set(id, "FullName", "Written Meanwhile")
        .expect("set");
    std::fs::write(f.root.join("users.cfg"), other.users.to_bytes()).expect("write");
    let meanwhile = std::fs::read(f.root.join("users.cfg")).expect("read");

    let err = apply(&f, &plan).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "users.cfg changed since the plan was made (another program wrote it); nothing was changed, run the tool again"
    );
    assert_eq!(
        std::fs::read(f.root.join("users.cfg")).expect("read"),
        meanwhile
    );
    assert!(!f.root.join("kc-journal").exists() && !f.root.join("kc-backups").exists());
}

#[test]
fn a_writer_holds_the_lock_before_it_reads_anything() {
    let f = fixture();
    let inst = install(&f.root);
    let _held = change::lock(&inst, &no_pid(&f.root), "kc-test").expect("lock");
    // Even a request that planning would refuse is stopped at the lock: nothing was read yet.
    let out = kc_user(&f.root)
        .args(["disable", "nobody@example.com"])
        .assert()
        .code(2);
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "kc-user: error: {} is held by another kerio-toolkit run (pid {} kc-test)",
            f.root.join(".kc.lock").display(),
            std::process::id()
        )),
        "{err}"
    );
    same_tree(&f.before, &f.root).expect("unchanged");
}

#[test]
fn undo_refuses_over_a_later_hand_edit_unless_forced_and_keeps_later_log_lines() {
    let f = fixture();
    let who = some_user(&f.root);
    kc_user(&f.root).args(["disable", &who]).assert().success();
    let disabled = std::fs::read(f.root.join("users.cfg")).expect("read");

    // The server ran between windows: its log lines come after ours.
    let log = f.root.join("store/logs/config.log");
    let mut later = std::fs::read(&log).expect("log");
    let server_line = b"[23/Nov/2026 08:00:00] Admin - update User set FullName='X'\n";
    later.extend_from_slice(server_line);
    std::fs::write(&log, &later).expect("append");

    // And the admin edited users.cfg by hand.
    let mut edited = disabled.clone();
    edited.extend_from_slice(b"<!-- edited by hand -->\n");
    std::fs::write(f.root.join("users.cfg"), &edited).expect("edit");
    let out = kc_backup(&f.root).args(["undo", "--last"]).assert().code(2);
    let err = stderr(&out);
    assert!(
        err.starts_with("kc-backup: error: change C")
            && err.contains(" cannot be undone as it is: users.cfg (changed) since; "),
        "{err}"
    );
    assert_eq!(
        std::fs::read(f.root.join("users.cfg")).expect("read"),
        edited
    );

    // `-n` says what it would do and that it would refuse, exit 2 as the undo itself; with
    // --force it would go ahead: exit 0.
    let out = kc_backup(&f.root)
        .args(["undo", "--last", "-n"])
        .assert()
        .code(2);
    assert!(
        stderr(&out).starts_with("kc-backup: error: undo of C")
            && stderr(&out).contains(" would be refused: 1 path was edited since the change"),
        "{}",
        stderr(&out)
    );
    kc_backup(&f.root)
        .args(["undo", "--last", "-n", "--force"])
        .assert()
        .success();
    let said = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        said.starts_with("WOULD undo C") && said.contains("(kc-user: "),
        "{said}"
    );
    assert!(
        said.contains("  edited since the change: users.cfg (changed)"),
        "{said}"
    );

    // Forced: the hand edit is backed up first, and named.
    let out = kc_backup(&f.root)
        .args(["undo", "--last", "--force"])
        .assert()
        .success();
    let said = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let kept = said
        .lines()
        .find_map(|l| l.strip_prefix("what the undo replaced is kept in backup "))
        .expect("names the backup")
        .to_owned();
    assert_eq!(
        std::fs::read(f.before.join("users.cfg")).expect("read"),
        std::fs::read(f.root.join("users.cfg")).expect("read")
    );
    let backup = kc_core::archive::find(&f.root.join("kc-backups"), &kept).expect("kept backup");
    let to = f._dir.path().join("kept");
    kc_backup(&f.root)
        .args(["restore", &backup.meta.id, "--to"])
        .arg(&to)
        .assert()
        .success();
    assert_eq!(std::fs::read(to.join("users.cfg")).expect("read"), edited);

    // The log lost exactly our line and kept the server's.
    let mut expected = std::fs::read(f.before.join("store/logs/config.log")).expect("log");
    expected.extend_from_slice(server_line);
    assert_eq!(std::fs::read(&log).expect("log"), expected);
}

#[test]
fn a_full_disk_during_undo_leaves_the_change_in_place_and_a_later_undo_finishes() {
    let f = fixture();
    let Some(disk) = Tmpfs::mount("24m") else {
        eprintln!("cannot mount a tmpfs here (not root?): skipped");
        return;
    };
    let root = disk.0.path().join("kerio");
    kc_testkit::copy_tree(&f.before, &root);
    // A mailbox with a big message, removed by the change; backups on another disk.
    let who = some_user(&root);
    let (name, domain) = who.split_once('@').expect("address");
    let mailbox = root.join("store/mail").join(domain).join(name);
    std::fs::write(mailbox.join("INBOX/big.eml"), vec![b'x'; 6 << 20]).expect("big");
    let before = f._dir.path().join("before-big");
    kc_testkit::copy_tree(&root, &before);
    let backups = f._dir.path().join("backups");
    kc_user(&root)
        .arg("--backup-dir")
        .arg(&backups)
        .args(["remove", &who, "--mailbox", "delete"])
        .assert()
        .success();
    let after = f._dir.path().join("after-remove");
    kc_testkit::copy_tree(&root, &after);
    // Fill the disk so that the mailbox cannot be staged back.
    let filler = disk.0.path().join("filler");
    let _ = Std::new("fallocate")
        .args(["-l", "100m"])
        .arg(&filler)
        .status();
    let free = Std::new("df")
        .args(["--output=avail", "-B1"])
        .arg(&root)
        .output()
        .expect("df");
    let free: u64 = String::from_utf8_lossy(&free.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("bytes");
    if free > 1 << 20 {
        // fallocate could not take the rest: write it.
        let _ = std::fs::write(&filler, vec![0u8; (free - (512 << 10)) as usize]);
    }
    let out = kc_backup(&root)
        .arg("--backup-dir")
        .arg(&backups)
        .args(["undo", "--last"])
        .assert()
        .code(2);
    assert!(
        stderr(&out).contains("No space left on device"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).starts_with("kc-backup: error: undo of change C")
            && stderr(&out)
                .contains(" could not start: nothing was changed, the change is still in effect;"),
        "{}",
        stderr(&out)
    );
    kc_testkit::compare_trees(&after, &root, &["kc-journal", ".kc.lock"])
        .expect("as after the change: the undo changed nothing");

    std::fs::remove_file(&filler).expect("room again");
    kc_backup(&root)
        .arg("--backup-dir")
        .arg(&backups)
        .args(["undo", "--last"])
        .assert()
        .success();
    kc_testkit::compare_trees(&before, &root, &["kc-journal", ".kc.lock"])
        .expect("back as before the change");
}

#[test]
fn a_journal_that_names_more_than_its_steps_is_refused() {
    let f = fixture();
    let who = some_user(&f.root);
    kc_user(&f.root).args(["disable", &who]).assert().success();
    let journal = std::fs::read_dir(f.root.join("kc-journal"))
        .expect("journals")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a journal");
    let text = std::fs::read_to_string(&journal).expect("read");
    let tampered = text.replacen(
        "\"touched\": [",
        "\"touched\": [\n    \"mailserver.cfg\",",
        1,
    );
    assert_ne!(text, tampered);
    std::fs::write(&journal, tampered).expect("write");
    let out = kc_backup(&f.root).args(["undo", "--last"]).assert().code(2);
    assert!(
        stderr(&out).starts_with(&format!(
            "kc-backup: error: the journal is not trustworthy: {}: its touched paths are not those of its steps",
            journal.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(f.before.join("mailserver.cfg")).expect("read"),
        std::fs::read(f.root.join("mailserver.cfg")).expect("read")
    );
}

#[test]
fn links_out_of_the_install_are_never_written_through() {
    let f = fixture();
    let outside = f._dir.path().join("victim");
    std::fs::write(&outside, b"precious\n").expect("victim");
    // A planted lock file.
    std::os::unix::fs::symlink(&outside, f.root.join(".kc.lock")).expect("link");
    let who = some_user(&f.root);
    let out = kc_user(&f.root).args(["disable", &who]).assert().code(2);
    assert!(
        stderr(&out).starts_with(&format!(
            "kc-user: error: cannot take the lock {}: it is a symbolic link",
            f.root.join(".kc.lock").display()
        )),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(f.root.join(".kc.lock")).expect("rm");
    // A config.log that leads out.
    let log = f.root.join("store/logs/config.log");
    std::fs::remove_file(&log).expect("rm");
    std::os::unix::fs::symlink(&outside, &log).expect("link");
    let users = std::fs::read(f.root.join("users.cfg")).expect("read");
    let out = kc_user(&f.root).args(["disable", &who]).assert().code(2);
    assert!(
        stderr(&out).starts_with(&format!(
            "kc-user: error: {} is a symbolic link; the toolkit never writes through one; nothing was changed",
            log.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&outside).expect("read"), b"precious\n");
    assert_eq!(
        std::fs::read(f.root.join("users.cfg")).expect("read"),
        users
    );
}

#[test]
fn backups_and_journals_are_private_and_edited_files_keep_their_owner() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let f = fixture();
    let users = f.root.join("users.cfg");
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let owned = std::os::unix::fs::chown(&users, Some(4321), Some(4322)).is_ok();
    let who = some_user(&f.root);
    kc_user(&f.root).args(["disable", &who]).assert().success();
    let meta = std::fs::metadata(&users).expect("meta");
    assert_eq!(meta.mode() & 0o7777, 0o640);
    if owned {
        assert_eq!((meta.uid(), meta.gid()), (4321, 4322));
    }
    for dir in ["kc-backups", "kc-journal"] {
        let d = f.root.join(dir);
        assert_eq!(
            std::fs::metadata(&d).expect("dir").mode() & 0o777,
            0o700,
            "{dir}"
        );
        for e in std::fs::read_dir(&d).expect("list").flatten() {
            if e.path().is_file() {
                let mode = e.metadata().expect("meta").mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", e.path().display());
            }
        }
    }
}

// ---- Installs in real shapes (#13): the store elsewhere, symlinked configs ----

#[test]
fn a_store_outside_the_root_and_a_symlinked_users_cfg_are_changed_and_undone_in_place() {
    let f = fixture();
    let base = f._dir.path();
    // The store on another "disk", a stale copy left in the root, users.cfg in a "volume".
    let store = base.join("disk2/kerio-store");
    std::fs::create_dir_all(store.parent().expect("parent")).expect("mkdir");
    std::fs::rename(f.root.join("store"), &store).expect("move the store");
    std::fs::create_dir_all(f.root.join("store/mail/stale.test/ghost/INBOX")).expect("stale");
    let volume = base.join("volume");
    std::fs::create_dir_all(&volume).expect("volume");
    std::fs::rename(f.root.join("users.cfg"), volume.join("users.cfg")).expect("move");
    std::os::unix::fs::symlink(volume.join("users.cfg"), f.root.join("users.cfg")).expect("link");
    let cfg = std::fs::read_to_string(f.root.join("mailserver.cfg")).expect("read");
    let cfg = cfg.replace(
        "<variable name=\"StoreDir\">store</variable>",
        &format!("<variable name=\"StoreDir\">{}</variable>", store.display()),
    );
    std::fs::write(f.root.join("mailserver.cfg"), cfg).expect("write");
    let snapshot = |tag: &str| {
        let to = base.join(tag);
        std::fs::create_dir_all(&to).expect("mkdir");
        for (from, name) in [(&f.root, "root"), (&store, "store"), (&volume, "volume")] {
            kc_testkit::copy_tree(from, &to.join(name));
        }
        to
    };
    let before = snapshot("snap-before");

    let who = some_user(&f.root);
    let out = kc_user(&f.root).args(["disable", &who]).assert().success();
    assert!(
        stderr(&out).starts_with(&format!(
            "kc-user: note: using the store {} (Directories/StoreDir of mailserver.cfg); {} is another directory and is left alone",
            store.display(),
            f.root.join("store").display()
        )),
        "{}",
        stderr(&out)
    );
    // users.cfg is still a link, and its target got the change.
    assert!(
        f.root
            .join("users.cfg")
            .symlink_metadata()
            .expect("meta")
            .file_type()
            .is_symlink()
    );
    let now = std::fs::read_to_string(volume.join("users.cfg")).expect("read");
    assert_ne!(
        now,
        std::fs::read_to_string(before.join("volume/users.cfg")).expect("read")
    );
    // The audit line went to the real store's log; the stale tree was never touched.
    let log = std::fs::read_to_string(store.join("logs/config.log")).expect("log");
    assert!(
        log.lines().last().is_some_and(|l| l.contains("kc-user")),
        "{log}"
    );
    kc_testkit::compare_trees(&before.join("root/store"), &f.root.join("store"), &[])
        .expect("stale");
    // The pre-change backup holds users.cfg's content, not the link.
    let listing = Std::new("tar")
        .arg("-tvzf")
        .arg(
            std::fs::read_dir(f.root.join("kc-backups"))
                .expect("backups")
                .flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
                .expect("a backup"),
        )
        .output()
        .expect("tar");
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with('-') && l.ends_with(" users.cfg")),
        "{listing}"
    );

    kc_backup(&f.root)
        .args(["undo", "--last"])
        .assert()
        .success();
    let after = snapshot("snap-after");
    for part in ["root", "store", "volume"] {
        kc_testkit::compare_trees(
            &before.join(part),
            &after.join(part),
            &["kc-backups", "kc-journal", ".kc.lock"],
        )
        .unwrap_or_else(|e| panic!("{part}: {e}"));
    }
    assert!(
        f.root
            .join("users.cfg")
            .symlink_metadata()
            .expect("meta")
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_removal_of_a_tree_holding_a_fifo_is_refused_before_anything_changes() {
    let f = fixture();
    let who = some_user(&f.root);
    let (name, domain) = who.split_once('@').expect("address");
    let fifo = f
        .root
        .join("store/mail")
        .join(domain)
        .join(name)
        .join("INBOX/pipe");
    assert!(
        Std::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let out = kc_user(&f.root)
        .args(["remove", &who, "--mailbox", "delete"])
        .assert()
        .code(2);
    let error = stderr(&out)
        .lines()
        .find(|l| l.starts_with("kc-user: error: "))
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.starts_with(&format!(
            "kc-user: error: the plan cannot be taken back safely: {} is a FIFO, socket or device, which a backup cannot hold; move it out of store/mail/{domain}/{name} first; nothing was changed",
            fifo.display()
        )),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(&fifo).expect("rm");
    same_tree(&f.before, &f.root).expect("unchanged");
}

// ---- What a hostile review found (#14): half-done undos, tampered journals, trimmed logs ----

fn journal_file(root: &Path, nth: usize) -> PathBuf {
    let mut all: Vec<PathBuf> = std::fs::read_dir(root.join("kc-journal"))
        .expect("journals")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    all.sort();
    all.remove(nth)
}

#[test]
fn an_undo_that_cannot_finish_puts_back_what_it_did_and_says_so() {
    let f = fixture();
    let who = some_user(&f.root);
    kc_user(&f.root)
        .args(["remove", &who, "--mailbox", "delete"])
        .assert()
        .success();
    let after = f._dir.path().join("after");
    kc_testkit::copy_tree(&f.root, &after);
    // A log that became a link out: refused before anything is swapped.
    let log = f.root.join("store/logs/config.log");
    let kept = std::fs::read(&log).expect("log");
    std::fs::remove_file(&log).expect("rm");
    let outside = f._dir.path().join("outside.log");
    std::fs::write(&outside, b"").expect("outside");
    std::os::unix::fs::symlink(&outside, &log).expect("link");
    let out = kc_backup(&f.root).args(["undo", "--last"]).assert().code(2);
    assert!(
        stderr(&out).starts_with("kc-backup: error: ")
            && stderr(&out).contains("is a symbolic link; the toolkit never writes through one"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(&log).expect("rm");
    std::fs::write(&log, &kept).expect("log back");
    kc_testkit::compare_trees(&after, &f.root, &["kc-journal", ".kc.lock", "kc-backups"])
        .expect("nothing was swapped");
    // users.cfg cannot be replaced (immutable): the mailbox already swapped in goes back.
    let immutable = Std::new("chattr")
        .arg("+i")
        .arg(f.root.join("users.cfg"))
        .status()
        .is_ok_and(|s| s.success());
    if immutable {
        let out = kc_backup(&f.root).args(["undo", "--last"]).assert().code(2);
        let _ = Std::new("chattr")
            .arg("-i")
            .arg(f.root.join("users.cfg"))
            .status();
        assert!(
            stderr(&out).starts_with("kc-backup: error: taking change C")
                && stderr(&out).contains(" back failed part-way, and what it had put back was undone: the install is as it was before;"),
            "{}",
            stderr(&out)
        );
        kc_testkit::compare_trees(&after, &f.root, &["kc-journal", ".kc.lock", "kc-backups"])
            .expect("as before the undo");
    } else {
        eprintln!("chattr +i is not available here: the swap reversal is not exercised");
    }
    // With the causes gone, the undo goes through.
    kc_backup(&f.root)
        .args(["undo", "--last"])
        .assert()
        .success();
    same_tree(&f.before, &f.root).expect("back byte for byte");
}

#[test]
fn undo_cuts_its_lines_out_of_a_log_trimmed_at_its_head_since() {
    let f = fixture();
    let who = some_user(&f.root);
    kc_user(&f.root).args(["disable", &who]).assert().success();
    let log = f.root.join("store/logs/config.log");
    let text = std::fs::read_to_string(&log).expect("log");
    let trimmed: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let later = "[23/Nov/2026 09:00:00] Admin - later\n";
    std::fs::write(&log, format!("{trimmed}{later}")).expect("trim");
    kc_backup(&f.root)
        .args(["undo", "--last"])
        .assert()
        .success();
    let before = std::fs::read_to_string(f.before.join("store/logs/config.log")).expect("log");
    let expected: String = before.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        std::fs::read_to_string(&log).expect("log"),
        format!("{expected}{later}")
    );
}

#[test]
fn a_journal_edited_to_cut_other_bytes_or_to_use_another_backup_is_refused() {
    let f = fixture();
    let config = Config::load(&f.root).expect("config");
    let mut local = config
        .users()
        .filter(|u| {
            u.enabled()
                && u.rights() == 0
                && !u.mapped()
                && config.domain(u.domain()).is_some_and(|d| !d.mapped())
        })
        .map(|u| format!("{}@{}", u.name(), u.domain()));
    let (first, second) = (local.next().expect("one"), local.next().expect("two"));
    kc_user(&f.root)
        .args(["disable", &first])
        .assert()
        .success();
    kc_user(&f.root)
        .args(["disable", &second])
        .assert()
        .success();
    let newest = journal_file(&f.root, 1);
    let original = std::fs::read_to_string(&newest).expect("read");
    let mut json: serde_json::Value = serde_json::from_str(&original).expect("json");

    // `appended` pointed at the head of mailserver.cfg.
    let head = std::fs::read(f.root.join("mailserver.cfg")).expect("read")[..20].to_vec();
    json["appended"][0] = serde_json::json!({
        "path": "mailserver.cfg", "offset": 0, "length": 20,
        "sha256": kc_core::archive::sha256_hex(&head)
    });
    std::fs::write(&newest, json.to_string()).expect("write");
    let out = kc_backup(&f.root).args(["undo", "--last"]).assert().code(2);
    assert!(
        stderr(&out).contains("is not trustworthy")
            && stderr(&out).contains("is not its steps' lines"),
        "{}",
        stderr(&out)
    );

    // `backup` pointed at the first change's pre-change backup.
    let first_journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(journal_file(&f.root, 0)).expect("read"))
            .expect("json");
    let mut json: serde_json::Value = serde_json::from_str(&original).expect("json");
    json["backup"] = first_journal["backup"].clone();
    std::fs::write(&newest, json.to_string()).expect("write");
    let out = kc_backup(&f.root).args(["undo", "--last"]).assert().code(2);
    assert!(
        stderr(&out).contains("is not trustworthy")
            && stderr(&out).contains("does not hold users.cfg as the change read it"),
        "{}",
        stderr(&out)
    );
    // A journal that is not even JSON: writers refuse, but `changes` lists the others and names
    // it, so that the admin can decide (exit 1: something to look at).
    std::fs::write(&newest, "garbage").expect("write");
    let out = kc_backup(&f.root).args(["changes"]).assert().code(1);
    let listed = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let first_id = first_journal["id"].as_str().expect("id");
    assert!(
        listed
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(first_id)),
        "{listed}"
    );
    assert_eq!(
        listed.lines().count(),
        2,
        "the header and the readable change: {listed}"
    );
    assert_eq!(
        stderr(&out),
        format!(
            "kc-backup: warning: {}: expected value at line 1 column 1: this journal cannot be read, and every writer refuses while it is in kc-journal; if the changes below and the backups show it finished or undone, move it out (keep it)\n",
            newest.display()
        )
    );
    kc_backup(&f.root).args(["undo", "--last"]).assert().code(2);
    let users = std::fs::read_to_string(f.root.join("users.cfg")).expect("read");
    std::fs::write(&newest, original).expect("restore the journal");
    kc_backup(&f.root)
        .args(["undo", "--last"])
        .assert()
        .success();
    kc_backup(&f.root)
        .args(["undo", "--last"])
        .assert()
        .success();
    assert_ne!(
        users,
        std::fs::read_to_string(f.root.join("users.cfg")).expect("read")
    );
    same_tree(&f.before, &f.root).expect("back byte for byte");
}

/// Writes `bytes` to `path` when the pre-change backup finishes: another program writing while
/// a change runs (after its checks, before its steps).
struct WritesMeanwhile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl kc_core::progress::Progress for WritesMeanwhile {
    fn finish(&self) {
        std::fs::write(&self.path, &self.bytes).expect("write meanwhile");
    }
}

#[test]
fn a_rollback_puts_back_only_what_the_change_wrote() {
    let f = fixture();
    let mailserver = std::fs::read(f.root.join("mailserver.cfg")).expect("read");
    let users = std::fs::read(f.root.join("users.cfg")).expect("read");
    let meanwhile = [&users[..], b"<!-- written meanwhile -->\n"].concat();
    let plan = Plan {
        tool: "kc-test".into(),
        description: "two writes".into(),
        steps: vec![
            Step::replace_file("mailserver.cfg", &mailserver, b"<config/>\n".to_vec()),
            Step::replace_file("users.cfg", &users, b"<config/>\n".to_vec()),
        ],
        warnings: vec![],
    };
    let cx = change::Context {
        install: &install(&f.root),
        backup_dir: &f.root.join("kc-backups"),
        pid_file: &no_pid(&f.root),
        progress: &WritesMeanwhile {
            path: f.root.join("users.cfg"),
            bytes: meanwhile.clone(),
        },
    };
    let err = change::apply(&cx, &plan).expect_err("users.cfg changed under it");
    assert!(
        err.to_string()
            .starts_with("users.cfg changed since the plan was made"),
        "{err}"
    );
    // Step 1 is taken back; users.cfg, which the change never wrote, keeps the other write.
    assert_eq!(
        std::fs::read(f.root.join("mailserver.cfg")).expect("read"),
        mailserver
    );
    assert_eq!(
        std::fs::read(f.root.join("users.cfg")).expect("read"),
        meanwhile
    );

    // Refused at its first step: nothing is put back at all.
    let f = fixture();
    let users = std::fs::read(f.root.join("users.cfg")).expect("read");
    let meanwhile = [&users[..], b"<!-- written meanwhile -->\n"].concat();
    let first = Plan {
        steps: vec![Step::replace_file(
            "users.cfg",
            &users,
            b"<config/>\n".to_vec(),
        )],
        ..plan
    };
    let cx = change::Context {
        progress: &WritesMeanwhile {
            path: f.root.join("users.cfg"),
            bytes: meanwhile.clone(),
        },
        install: &install(&f.root),
        backup_dir: &f.root.join("kc-backups"),
        pid_file: &no_pid(&f.root),
    };
    change::apply(&cx, &first).expect_err("refused");
    assert_eq!(
        std::fs::read(f.root.join("users.cfg")).expect("read"),
        meanwhile
    );
}

#[test]
fn a_file_written_again_by_another_program_before_a_rollback_is_kept_in_a_backup() {
    let f = fixture();
    let users = std::fs::read(f.root.join("users.cfg")).expect("read");
    let ours = b"<config/>\n".to_vec();
    let theirs = b"<config><!-- theirs --></config>\n".to_vec();
    std::fs::write(f.root.join("store/theirs.cfg"), &theirs).expect("write");
    // Another program's write after the change wrote users.cfg, made deterministic: a step
    // that renames another file over it (as an editor saving through a temporary file does).
    let plan = Plan {
        tool: "kc-test".into(),
        description: "a write, another write over it, a write that fails".into(),
        steps: vec![
            Step::replace_file("users.cfg", &users, ours.clone()),
            Step::Rename {
                from: "store/theirs.cfg".into(),
                to: "users.cfg".into(),
            },
            // Its directory is not there: the step fails, and the change is rolled back.
            Step::write_file("store/no/such/dir/x", b"x".to_vec(), Expect::Absent),
        ],
        warnings: vec![],
    };
    let err = apply(&f, &plan).expect_err("step 3 fails");
    let message = chain(&err);
    let kept = message
        .split("kept in backup ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{message}"))
        .to_owned();
    assert!(
        message.contains(
            "users.cfg had been written by another program after this change wrote it: what it held then is kept in backup"
        ),
        "{message}"
    );
    // Rolled back to what it held before the change; their bytes are in the backup.
    assert_eq!(
        std::fs::read(f.root.join("users.cfg")).expect("read"),
        users
    );
    let out = tempfile::tempdir().expect("tempdir");
    kc_backup(&f.root)
        .args(["restore", &kept, "--to"])
        .arg(out.path())
        .assert()
        .success();
    assert_eq!(
        std::fs::read(out.path().join("users.cfg")).expect("kept"),
        theirs
    );
}
