//! With the server running, the check still reports (with a warning) and reindex refuses.
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
fn the_check_runs_beside_a_live_server_and_reindex_refuses() {
    let s = Scratch::alone(&Options::demo());
    let fake = s.root.parent().expect("dir").join("mailserver");
    std::fs::copy("/bin/sleep", &fake).expect("a program named mailserver");
    let server = Server(
        std::process::Command::new(&fake)
            .arg("60")
            .spawn()
            .expect("runs"),
    );
    std::fs::write(&s.pid_file, format!("{}\n", server.0.id())).expect("pid file");

    let out = s.tool("kc-store").arg("check").output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("kc-store: warning: the server is running"),
        "{stderr}"
    );

    let out = s
        .tool("kc-store")
        .args(["reindex", "--domain", "example.com"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&server.0.id().to_string()), "{stderr}");
    drop(server);
    let _ = std::fs::remove_file(&s.pid_file);
    s.assert_unchanged();
}
