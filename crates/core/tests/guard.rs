//! The guard against a live server, proved with a real process called `mailserver`.
//!
//! This is its own test binary, apart from the crate's other tests, because the guard counts any
//! live `mailserver` process on the host: `cargo test` runs test binaries one at a time, so the
//! process started here never makes another binary's writer test see a running server.

use std::path::Path;
use std::process::{Child, Command};

use kc_core::guard::{self, GuardError, InstallLock, ServerState};

/// A copy of `sleep` named `mailserver`, killed when dropped.
struct FakeServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl FakeServer {
    fn start() -> FakeServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("mailserver");
        let sleep = which("sleep");
        std::fs::copy(sleep, &exe).expect("copy sleep");
        let child = Command::new(&exe)
            .arg("30")
            .spawn()
            .expect("start mailserver");
        // Wait until the kernel shows the new name.
        for _ in 0..200 {
            let comm =
                std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap_or_default();
            if comm.trim() == "mailserver" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        FakeServer { child, _dir: dir }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> std::path::PathBuf {
    ["/bin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .expect("sleep is on this machine")
}

fn write_pid(dir: &Path, pid: u32) -> std::path::PathBuf {
    let path = dir.join("kms.pid");
    std::fs::write(&path, format!("{pid}\n")).expect("write pid file");
    path
}

#[test]
fn server_detection_lock_and_messages() {
    // Run as one test: the phases must not overlap, since a live `mailserver` is seen host-wide.
    let dir = tempfile::tempdir().expect("tempdir");
    let no_pid_file = dir.path().join("absent.pid");

    // Nothing runs: stopped, with or without a pid file.
    assert_eq!(guard::server_state(&no_pid_file), ServerState::Stopped);

    // A stale pid file (a live process of another name: this test itself) means stopped.
    let stale = write_pid(dir.path(), std::process::id());
    assert_eq!(guard::server_state(&stale), ServerState::Stopped);
    // A pid file naming no process at all is stale too.
    let dead = write_pid(dir.path(), 999_999_999);
    assert_eq!(guard::server_state(&dead), ServerState::Stopped);

    {
        let server = FakeServer::start();
        let pid = server.child.id();
        // Found through the pid file…
        let with_pid = write_pid(dir.path(), pid);
        match guard::server_state(&with_pid) {
            ServerState::Running { pid: found, why } => {
                assert_eq!(found, pid);
                assert!(why.contains("kms.pid names live process"), "{why}");
            }
            other => panic!("not detected through the pid file: {other:?}"),
        }
        // …and by scanning the process table when there is no pid file.
        match guard::server_state(&no_pid_file) {
            ServerState::Running { pid: found, why } => {
                assert_eq!(found, pid);
                assert_eq!(why, format!("process {pid} `mailserver` is live"));
            }
            other => panic!("not detected by the process scan: {other:?}"),
        }
        let err = guard::acquire(dir.path(), &no_pid_file, "kc-test").expect_err("refused");
        assert!(matches!(err, GuardError::ServerRunning { .. }));
        assert!(
            err.to_string()
                .starts_with("the Kerio Connect server is running"),
            "{err}"
        );
        assert!(
            !dir.path().join(".kc.lock").exists(),
            "a refused run leaves nothing behind"
        );
    }
    assert_eq!(guard::server_state(&no_pid_file), ServerState::Stopped);

    // The lock: a second holder is refused with the first one's pid.
    let lock = guard::acquire(dir.path(), &no_pid_file, "kc-first").expect("lock");
    assert_eq!(lock.path(), dir.path().join(".kc.lock"));
    let err = InstallLock::acquire(dir.path(), "kc-second").expect_err("held");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "held by another kerio-toolkit run (pid {} kc-first)",
            std::process::id()
        )),
        "{message}"
    );
    drop(lock);
    let again = InstallLock::acquire(dir.path(), "kc-second").expect("released on drop");
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
