//! kc-backup beside other runs: a `mailserver` process of this install or of another one, and
//! a `create` stopped by Ctrl-C or by `kill -9`. The real binary on kc-fixture installs.

use std::process::Output;

use kc_testkit::{FakeServer, Options, Scratch};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn first_line(out: &Output) -> String {
    stderr(out).lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_server_of_this_install_refuses_and_one_of_another_is_named_and_let_be() {
    let s = Scratch::new(&Options::demo());
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
