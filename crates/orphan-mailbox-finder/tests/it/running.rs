//! With the server running, the report still works (with a warning) and the actions refuse.
//! Alone among the tests of its binary (`Scratch::alone`): a live process named `mailserver` is
//! seen machine-wide, and would be named in the notes of other tests' runs.

use kc_testkit::{Options, Scratch};

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_report_runs_beside_a_live_server_and_the_actions_refuse() {
    let s = Scratch::alone(&Options::demo());
    let dir = s.root.parent().expect("dir");
    let fake = dir.join("mailserver");
    std::fs::copy("/bin/sleep", &fake).expect("a program named mailserver");
    let server = Server(
        std::process::Command::new(&fake)
            .arg("60")
            .spawn()
            .expect("runs"),
    );
    std::fs::write(&s.pid_file, format!("{}\n", server.0.id())).expect("pid file");

    let out = s
        .tool("kc-orphan-mailbox-finder")
        .arg("--json")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("kc-orphan-mailbox-finder: warning: the server is running"),
        "{stderr}"
    );
    assert!(!out.stdout.is_empty());

    let out = s
        .tool("kc-orphan-mailbox-finder")
        .args(["--archive", "--execute"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}", server.0.id())), "{stderr}");
    drop(server);
    let _ = std::fs::remove_file(&s.pid_file);
    s.assert_unchanged();
}
