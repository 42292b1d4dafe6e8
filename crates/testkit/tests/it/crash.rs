//! Crashes in the middle of a change never leave an install that is neither unchanged, finished,
//! nor restorable byte for byte: the change protocol under `KC_CRASH_AFTER_STEP` and `kill -9`.

use std::path::{Path, PathBuf};
use std::process::Command;

use kc_core::change::{self, Status};
use kc_core::install::Install;
use kc_core::progress::Silent;
use kc_testkit::Options;

const LINE: &str = "[22/Nov/2026 02:00:00] kc-crash-rename - Rename User: Name='x'";

use kc_testkit::copy_tree as cp;

/// Runs `f` with the context of the install at `root`: its backups in `kc-backups`, a pid file
/// no server writes.
fn with_context<T>(root: &Path, f: impl FnOnce(&change::Context<'_>) -> T) -> T {
    let (inst, backups, pid) = (install(root), root.join("kc-backups"), root.join("no.pid"));
    f(&change::Context {
        install: &inst,
        backup_dir: &backups,
        pid_file: &pid,
        progress: &Silent,
    })
}

/// `kc-backup undo --last` on the install at `root`.
fn undo_last(root: &Path) -> change::Undone {
    with_context(root, |cx| change::undo(cx, None, Default::default())).expect("undo --last")
}

fn same_tree(a: &Path, b: &Path) -> Result<(), String> {
    kc_testkit::compare_trees(a, b, &["kc-backups", "kc-journal", ".kc.lock"])
}

/// An install and the account to rename: one whose folders are shared, so the plan rewrites
/// other mailboxes' status.fld and folder.map files too.
fn fixture(users: usize, messages: usize) -> (tempfile::TempDir, PathBuf, String) {
    let (dir, _) = kc_testkit::temp_install(&Options {
        users,
        messages_per_user: messages,
        ..Options::default()
    })
    .expect("fixture");
    let root = dir.path().join("kerio");
    let config = kc_core::config::Config::load(&root).expect("config");
    // The first account whose address appears in some status.fld ACL of another mailbox.
    let mail = root.join("store/mail");
    let acl_files =
        kc_core::store::folder_level_files(&mail, &[kc_core::store::STATUS_FLD]).expect("walk");
    let address = config
        .users()
        .filter(|u| !u.mapped() && mail.join(u.domain()).join(u.name()).is_dir())
        .map(|u| u.address())
        .find(|a| {
            acl_files.iter().any(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .contains(&format!(" A{a} "))
            })
        })
        .expect("a shared-with account");
    (dir, root, address)
}

fn run(root: &Path, address: &str, crash_after: Option<usize>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kc-crash-rename"));
    cmd.arg(root).arg(address).arg("renamed.user").arg(LINE);
    if let Some(n) = crash_after {
        cmd.env("KC_CRASH_AFTER_STEP", n.to_string());
    }
    cmd.output().expect("runs")
}

fn install(root: &Path) -> Install {
    Install::locate(Some(root), None).expect("install")
}

#[test]
fn a_crash_after_any_step_is_undone_or_resumed_byte_for_byte() {
    let (dir, root, address) = fixture(30, 2);
    let before = dir.path().join("before");
    cp(&root, &before);
    // The uninterrupted run, on a copy.
    let finished = dir.path().join("finished");
    cp(&before, &finished);
    let out = run(&finished, &address, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: usize = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("steps")
        .parse()
        .expect("a count");
    assert!(
        steps >= 4,
        "users.cfg, the rename, at least one shared folder, the log: {steps}"
    );
    same_tree(&before, &finished).expect_err("the change changed something");

    for k in 1..steps {
        let crashed = dir.path().join(format!("crash{k}"));
        cp(&before, &crashed);
        let out = run(&crashed, &address, Some(k));
        assert!(!out.status.success(), "step {k}: the process was to die");
        let journal = change::journals(&install(&crashed))
            .expect("journals")
            .pop()
            .expect("a journal");
        assert_eq!((journal.status, journal.done), (Status::Applying, k));
        // Every writer refuses now.
        let again = run(&crashed, &address, None);
        assert_eq!(again.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("was interrupted and is unfinished")
        );

        let twin = dir.path().join(format!("twin{k}"));
        cp(&crashed, &twin);
        // Killed after step k wrote and before the journal said so: the journal says k - 1,
        // and --resume finds step k's work already there.
        let late = dir.path().join(format!("late{k}"));
        cp(&crashed, &late);
        let file = std::fs::read_dir(late.join("kc-journal"))
            .expect("journal dir")
            .map(|e| e.expect("entry").path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
            .expect("the journal");
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
        json["done"] = serde_json::json!(k - 1);
        std::fs::write(&file, json.to_string()).expect("write");
        with_context(&late, |cx| change::resume(cx, None))
            .unwrap_or_else(|e| panic!("step {k} already written, resume: {e}"));
        same_tree(&finished, &late)
            .unwrap_or_else(|d| panic!("step {k} already written, resume: {d}"));
        std::fs::remove_dir_all(&late).expect("rm");
        undo_last(&crashed);
        same_tree(&before, &crashed).unwrap_or_else(|d| panic!("crash after step {k}, undo: {d}"));
        with_context(&twin, |cx| change::resume(cx, None)).expect("resume");
        same_tree(&finished, &twin).unwrap_or_else(|d| panic!("crash after step {k}, resume: {d}"));
        for d in [&crashed, &twin] {
            std::fs::remove_dir_all(d).expect("rm");
        }
    }
}

#[test]
fn kill_9_at_random_instants_never_leaves_a_broken_install() {
    // A store of a few thousand messages.
    let (dir, root, address) = fixture(80, 30);
    let before = dir.path().join("before");
    cp(&root, &before);
    let finished = dir.path().join("finished");
    cp(&before, &finished);
    let started = std::time::Instant::now();
    assert!(run(&finished, &address, None).status.success());
    let whole = started.elapsed().as_micros() as u64;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut outcomes = [0usize; 3];
    for round in 0..12 {
        let work = dir.path().join(format!("kill{round}"));
        cp(&before, &work);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Mostly in the second half, where the steps run (the pre-change backup comes first).
        let delay = whole / 3 + seed % (whole).max(1);
        let mut child = Command::new(env!("CARGO_BIN_EXE_kc-crash-rename"))
            .arg(&work)
            .arg(&address)
            .arg("renamed.user")
            .arg(LINE)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_micros(delay));
        let _ = Command::new("kill")
            .arg("-9")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
        let inst = install(&work);
        let journal = change::journals(&inst).expect("journals").pop();
        match journal.map(|j| j.status) {
            None => {
                same_tree(&before, &work).unwrap_or_else(|d| {
                    panic!("round {round}: killed before the journal, yet changed: {d}")
                });
                outcomes[0] += 1;
            }
            Some(Status::Done) => {
                same_tree(&finished, &work).unwrap_or_else(|d| {
                    panic!("round {round}: done, yet not as the finished run: {d}")
                });
                outcomes[1] += 1;
            }
            Some(_) => {
                undo_last(&work);
                same_tree(&before, &work)
                    .unwrap_or_else(|d| panic!("round {round}: undo after kill: {d}"));
                outcomes[2] += 1;
            }
        }
        std::fs::remove_dir_all(&work).expect("rm");
    }
    eprintln!("killed before the journal / after finishing / mid-change then undone: {outcomes:?}");
}

#[test]
fn a_crash_during_undo_leaves_every_config_file_and_the_next_undo_finishes_it() {
    let (dir, root, address) = fixture(30, 2);
    let before = dir.path().join("before");
    cp(&root, &before);
    assert!(run(&root, &address, None).status.success());
    let done = dir.path().join("done");
    cp(&root, &done);
    let inst = install(&root);
    let journal = change::journals(&inst)
        .expect("journals")
        .pop()
        .expect("one");
    // The logs are not swapped but have the change's lines cut out, after the swap.
    let logs = journal
        .steps
        .iter()
        .filter(|s| matches!(s, change::Step::AppendLines { .. }))
        .count();
    let paths = journal.touched.len() - logs;
    assert!(paths >= 3, "a change of several paths: {paths}");
    for n in 1..=paths {
        let work = dir.path().join(format!("undo{n}"));
        cp(&done, &work);
        let out = Command::new(env!("CARGO_BIN_EXE_kc-crash-rename"))
            .arg("--undo")
            .arg(&work)
            .env("KC_CRASH_IN_SWAP", n.to_string())
            .output()
            .expect("runs");
        assert!(!out.status.success(), "crashed after path {n} of the swap");
        for cfg in ["users.cfg", "mailserver.cfg"] {
            assert!(
                work.join(cfg).is_file(),
                "{cfg} is there after a crash at {n}"
            );
        }
        let inst = install(&work);
        assert_eq!(
            change::journals(&inst)
                .expect("journals")
                .pop()
                .map(|j| j.status),
            Some(Status::Undoing)
        );
        // Every writer refuses meanwhile.
        assert!(matches!(
            change::check_unfinished(&inst),
            Err(change::ChangeError::Unfinished { .. })
        ));
        undo_last(&work);
        same_tree(&before, &work).unwrap_or_else(|d| panic!("crash at {n}, then undo: {d}"));
        let leftovers: Vec<_> = walkdir::WalkDir::new(&work)
            .into_iter()
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy();
                name.starts_with(".kc-stage-") || name.starts_with(".kc-old-")
            })
            .map(|e| e.path().display().to_string())
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::remove_dir_all(&work).expect("rm");
    }
}
