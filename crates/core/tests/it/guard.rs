//! The guard against a live server, proved with real processes called `mailserver`.
//!
//! This is its own test binary, apart from the crate's other tests: a live `mailserver` serving
//! one of their installs would make their writers refuse. Each fake here serves only its own
//! temporary install, or none.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use kc_core::guard::{self, GuardError, InstallLock, OtherServer, ServerState};

/// A live process called `mailserver`, killed when dropped.
struct FakeServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl FakeServer {
    /// A copy of `sleep` named `mailserver` in `dir` (a temporary one when `None`), started in
    /// `cwd`.
    fn sleep_in(dir: Option<&Path>, cwd: &Path) -> FakeServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let exe = dir.unwrap_or(tmp.path()).join("mailserver");
        std::fs::copy(which("sleep"), &exe).expect("copy sleep");
        let mut cmd = Command::new(&exe);
        cmd.arg("30").current_dir(cwd);
        FakeServer::start(cmd, tmp)
    }

    /// A shell script named `mailserver` that waits on its input, run as the vendor's unit runs
    /// the server: with `arg` as its argument, in `cwd`.
    fn with_arg(arg: &Path, cwd: &Path) -> FakeServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let exe = tmp.path().join("mailserver");
        std::fs::write(&exe, "#!/bin/sh\nread line\n").expect("script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut cmd = Command::new(&exe);
        cmd.arg(arg).current_dir(cwd).stdin(Stdio::piped());
        FakeServer::start(cmd, tmp)
    }

    fn start(mut cmd: Command, dir: tempfile::TempDir) -> FakeServer {
        let child = cmd.spawn().expect("start mailserver");
        // Wait until the kernel shows the new name.
        for _ in 0..400 {
            let comm =
                std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap_or_default();
            if comm.trim() == "mailserver" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        FakeServer { child, _dir: dir }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> PathBuf {
    ["/bin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .expect("sleep is on this machine")
}

fn write_pid(dir: &Path, pid: u32) -> PathBuf {
    let path = dir.join("kms.pid");
    std::fs::write(&path, format!("{pid}\n")).expect("write pid file");
    path
}

/// The `why` of a refusal, or a panic.
fn running(root: &Path, pid_file: &Path, pid: u32) -> String {
    match guard::server_state(root, pid_file) {
        ServerState::Running { pid: found, why } => {
            assert_eq!(found, pid, "{why}");
            why
        }
        other => panic!("process {pid} not detected: {other:?}"),
    }
}

#[test]
fn server_detection_lock_and_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("kerio");
    std::fs::create_dir(&root).expect("mkdir");
    let elsewhere = dir.path().join("real-kerio");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let no_pid_file = dir.path().join("absent.pid");

    // Nothing runs: stopped, with or without a pid file.
    assert_eq!(
        guard::server_state(&root, &no_pid_file),
        ServerState::Stopped
    );

    // A stale pid file (a live process of another name: this test itself) means stopped.
    let stale = write_pid(dir.path(), std::process::id());
    assert_eq!(guard::server_state(&root, &stale), ServerState::Stopped);
    // A pid file naming no process at all is stale too.
    let dead = write_pid(dir.path(), 999_999_999);
    assert_eq!(guard::server_state(&root, &dead), ServerState::Stopped);

    // The pid file counts whatever install its process serves.
    {
        let server = FakeServer::sleep_in(None, &elsewhere);
        let with_pid = write_pid(dir.path(), server.pid());
        let why = running(&root, &with_pid, server.pid());
        assert!(why.contains("kms.pid names live process"), "{why}");
    }

    // Found by the scan, without a pid file: the argument, the working directory or the
    // program's directory is the root.
    {
        let server = FakeServer::with_arg(&root, &elsewhere);
        let why = running(&root, &no_pid_file, server.pid());
        assert_eq!(
            why,
            format!(
                "process {} `mailserver` serves this install: its argument is {}",
                server.pid(),
                root.display()
            )
        );
        let err = guard::acquire(&root, &no_pid_file, "kc-test").expect_err("refused");
        assert!(matches!(err, GuardError::ServerRunning { .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "the Kerio Connect server is running ({why}); stop it first (systemctl stop \
                 kerio-connect): it rewrites its config files when it stops, so offline changes \
                 would be lost"
            )
        );
        assert!(
            !root.join(".kc.lock").exists(),
            "a refused run leaves nothing behind"
        );
    }
    {
        // A relative argument is read from the process's working directory.
        let server = FakeServer::with_arg(Path::new("kerio"), dir.path());
        let why = running(&root, &no_pid_file, server.pid());
        assert!(
            why.ends_with(&format!("its argument is {}", root.display())),
            "{why}"
        );
    }
    {
        let server = FakeServer::sleep_in(None, &root);
        let why = running(&root, &no_pid_file, server.pid());
        assert!(why.contains(": its working directory is "), "{why}");
    }
    {
        let server = FakeServer::sleep_in(Some(&root), &elsewhere);
        let why = running(&root, &no_pid_file, server.pid());
        assert!(why.contains(": its program is in "), "{why}");
        let _ = std::fs::remove_file(root.join("mailserver"));
    }
    {
        // The root given through a symbolic link is the same install.
        let link = dir.path().join("link-to-kerio");
        std::os::unix::fs::symlink(&root, &link).expect("symlink");
        let server = FakeServer::with_arg(&root, &elsewhere);
        running(&link, &no_pid_file, server.pid());
        let server_via_link = FakeServer::with_arg(&link, &elsewhere);
        drop(server);
        running(&root, &no_pid_file, server_via_link.pid());
    }

    // A server of another install is let be, and said.
    {
        let server = FakeServer::with_arg(&elsewhere, &elsewhere);
        let check = guard::check(&root, &no_pid_file);
        assert_eq!(check.state, ServerState::Stopped);
        let other = OtherServer {
            pid: server.pid(),
            name: "mailserver".into(),
            serves: elsewhere.clone(),
            root: root.clone(),
        };
        assert_eq!(check.others, std::slice::from_ref(&other));
        assert_eq!(
            other.to_string(),
            format!(
                "a mailserver process (pid {}, {}) runs for another install; not counted as \
                 running here: neither its argument, its working directory nor its program's \
                 directory is {}",
                server.pid(),
                elsewhere.display(),
                root.display()
            )
        );
        let lock = guard::acquire(&root, &no_pid_file, "kc-test").expect("not ours");
        assert_eq!(lock.other_servers(), [other]);
        drop(lock);
    }
    assert_eq!(
        guard::server_state(&root, &no_pid_file),
        ServerState::Stopped
    );

    // The lock: a second holder is refused with the first one's pid.
    let lock = guard::acquire(&root, &no_pid_file, "kc-first").expect("lock");
    assert_eq!(lock.path(), root.join(".kc.lock"));
    let err = InstallLock::acquire(&root, "kc-second").expect_err("held");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "held by another kerio-toolkit run (pid {} kc-first)",
            std::process::id()
        )),
        "{message}"
    );
    drop(lock);
    let again = InstallLock::acquire(&root, "kc-second").expect("released on drop");
    drop(again);
}

#[test]
fn lock_is_refused_across_processes() {
    // A child process holding the lock (flock through `flock(1)` if present) blocks us.
    let Ok(flock) = Command::new("flock").arg("--version").output() else {
        eprintln!("flock(1) missing: skipped");
        return;
    };
    if !flock.status.success() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let lock_path = dir.path().join(".kc.lock");
    std::fs::write(&lock_path, "pid 4242 kc-other\n").expect("write");
    let mut holder = Command::new("flock")
        .arg("-o") // the lock stays with flock itself, not with its sleeping child
        .arg(&lock_path)
        .args(["sleep", "30"])
        .spawn()
        .expect("flock");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let err = InstallLock::acquire(dir.path(), "kc-test").expect_err("held by the child");
    assert!(err.to_string().contains("(pid 4242 kc-other)"), "{err}");
    let _ = holder.kill();
    let _ = holder.wait();
    InstallLock::acquire(dir.path(), "kc-test").expect("free once the holder died");
}
