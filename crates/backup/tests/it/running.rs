//! kc-backup beside other runs: a `mailserver` process of this install or of another one, and
//! a `create` stopped by Ctrl-C or by `kill -9`. The real binary on kc-fixture installs.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kc_testkit::{FakeServer, Options, Scratch};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn first_line(out: &Output) -> String {
    stderr(out).lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_server_of_this_install_refuses_and_one_of_another_is_named_and_let_be() {
    // Alone: its fake server would be named in the notes of other tests' runs.
    let s = Scratch::alone(&Options::demo());
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let elsewhere = elsewhere.path();

    // Run as the vendor's unit runs it, with this install's root as its argument: refused.
    let server = FakeServer::serving(&s.root, elsewhere);
    let out = s.tool("kc-backup").arg("create").output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        first_line(&out),
        format!(
            "kc-backup: error: the Kerio Connect server is running (process {} `mailserver` \
             serves this install: its argument is {}); stop it first (systemctl stop \
             kerio-connect): it rewrites its config files when it stops, so offline changes \
             would be lost",
            server.pid(),
            s.root.display()
        )
    );
    assert!(out.stdout.is_empty());
    drop(server);
    s.assert_unchanged();
    assert!(!s.root.join("kc-backups").exists(), "nothing written");

    // Another install's server, in another directory: named once, and the backup is taken.
    let server = FakeServer::serving(elsewhere, elsewhere);
    let out = s.tool("kc-backup").arg("create").output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        first_line(&out),
        format!(
            "kc-backup: note: a mailserver process (pid {}, {}) runs for another install; not \
             counted as running here: neither its argument, its working directory nor its \
             program's directory is {}",
            server.pid(),
            elsewhere.display(),
            s.root.display()
        )
    );
    assert_eq!(
        stderr(&out).matches("note: a mailserver process").count(),
        1
    );
    // -q keeps it quiet.
    let out = s
        .tool("kc-backup")
        .args(["-q", "create"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    drop(server);
    s.assert_unchanged();
}

/// The `*.partial` files in `dir`, by name.
fn partials(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A fixture whose backup at zstd's slowest level takes seconds, started; returns once the
/// archive's partial file has data in it.
// The child is handed to the caller, which waits for it (clippy cannot see past the return).
#[allow(clippy::zombie_processes)]
fn slow_create(s: &Scratch) -> Child {
    let mut child = s
        .tool("kc-backup")
        .args(["create", "--compression", "zstd", "--level", "19"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let dir = s.root.join("kc-backups");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = partials(&dir).iter().any(|n| {
            n.ends_with(".tar.zst.partial")
                && std::fs::metadata(dir.join(n)).is_ok_and(|m| m.len() > 0)
        });
        if started {
            return child;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the backup never started writing");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// Alone, as every test here: they are timed, and one's fake server would be named in the notes
/// of the others' runs.
fn big() -> Scratch {
    Scratch::alone(&Options {
        users: 30,
        messages_per_user: 20,
        ..Options::default()
    })
}

#[test]
fn ctrl_c_during_create_removes_what_it_wrote_and_exits_130() {
    let s = big();
    let dir = s.root.join("kc-backups");
    for sig in ["-INT", "-TERM"] {
        let child = slow_create(&s);
        let writing = partials(&dir);
        signal(&child, sig);
        let out = child.wait_with_output().expect("ends");
        assert_eq!(out.status.code(), Some(130), "{sig}: {}", stderr(&out));
        let line = first_line(&out);
        let prefix = format!(
            "kc-backup: interrupted; removed the unfinished backup: {}/{} (",
            dir.display(),
            writing[0]
        );
        assert!(line.starts_with(&prefix), "{sig}: {line}");
        assert!(line.ends_with("iB)"), "{sig}: {line}");
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(out.stdout.is_empty());
        assert_eq!(partials(&dir), Vec::<String>::new(), "{sig}");
    }
    // Nothing was taken: no backup to list.
    let out = s.tool("kc-backup").arg("list").output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    s.assert_unchanged();
}

#[test]
fn what_a_killed_create_left_is_named_by_list_and_removed_by_the_next_create() {
    let s = big();
    let dir = s.root.join("kc-backups");
    let mut child = slow_create(&s);
    signal(&child, "-KILL");
    let _ = child.wait();
    let left = partials(&dir);
    assert_eq!(left.len(), 1, "{left:?}");
    let left_path = dir.join(&left[0]);
    let left_size = std::fs::metadata(&left_path).expect("there").len();
    assert!(left_size > 0);
    // Files that are not the toolkit's, and a partial that a live run holds, are not touched.
    std::fs::write(dir.join("notes.partial"), "mine").expect("write");
    let live = dir.join("F20200101T000000Z.tar.gz.partial");
    std::fs::write(&live, "being written").expect("write");
    let holder = Command::new("flock")
        .arg("-o")
        .arg(&live)
        .args(["sleep", "60"])
        .spawn()
        .expect("flock runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::File::open(&live).is_ok_and(|f| f.try_lock().is_ok()) {
        assert!(Instant::now() < deadline, "flock never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut holder = Held(holder);

    let out = s.tool("kc-backup").arg("list").output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let prefix = format!("kc-backup: warning: {} (", left_path.display());
    let line = first_line(&out);
    assert!(line.starts_with(&prefix), "{line}");
    assert!(
        line.ends_with(
            "is left by a backup that stopped before it finished; the next `kc-backup create` \
             removes it"
        ),
        "{line}"
    );
    assert!(line.contains(", last written 20"), "{line}");
    assert_eq!(
        stderr(&out).lines().skip(1).collect::<Vec<_>>(),
        [format!("no backups in {}", dir.display())]
    );

    let out = s
        .tool("kc-backup")
        .args(["create", "--mask", "cfg"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = first_line(&out);
    assert!(
        line.starts_with(&format!(
            "kc-backup: note: removed {} (",
            left_path.display()
        )),
        "{line}"
    );
    assert!(
        line.ends_with("), left by a backup that stopped before it finished"),
        "{line}"
    );
    assert_eq!(
        partials(&dir),
        ["F20200101T000000Z.tar.gz.partial", "notes.partial"]
    );
    // Once its run is gone, the next create removes it too.
    holder.stop();
    let out = s
        .tool("kc-backup")
        .args(["create", "--mask", "cfg"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        first_line(&out).starts_with(&format!(
            "kc-backup: note: removed {} (13 B, last written ",
            live.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(partials(&dir), ["notes.partial"]);
    s.assert_unchanged();
}

/// A process killed when dropped.
struct Held(Child);

impl Held {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stop();
    }
}
