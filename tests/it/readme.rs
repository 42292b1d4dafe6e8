//! The README's first command must keep working: it is how a newcomer meets the toolkit.
//!
//! The test takes the command from README.md as it is written, runs it with `sh`, and checks what
//! it printed and wrote. `cargo run -q --release -p <tool> --` is replaced by the binary this
//! `cargo test --workspace` already built, so the test needs no nested cargo.

use std::path::Path;
use std::process::Command;

fn first_command(readme: &str) -> String {
    let start = readme
        .find("```sh\n")
        .expect("README opens with a sh block")
        + "```sh\n".len();
    let end = start + readme[start..].find("\n```").expect("the block ends");
    readme[start..end].trim().to_owned()
}

#[test]
fn the_readme_demo_command_backs_up_a_copy_of_the_demo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let command = first_command(&readme);
    assert!(
        command.contains("cp -r fixtures/demo"),
        "the demo runs on a copy: {command}"
    );
    let bin = assert_cmd::cargo::cargo_bin("kc-backup");
    assert!(
        bin.exists(),
        "{} is built by `cargo test --workspace`",
        bin.display()
    );
    let local = command.replace(
        "cargo run -q --release -p kc-backup --",
        &bin.display().to_string(),
    );
    assert!(
        !local.contains("cargo run"),
        "every cargo run was replaced: {local}"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = Command::new("sh")
        .arg("-c")
        .arg(&local)
        .current_dir(root)
        .env("TMPDIR", tmp.path())
        .env_remove("KC_SERVER")
        .output()
        .expect("sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // `create` then `list` each print the new full backup's line.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], lines[1]);
    assert!(
        lines[0].starts_with('F') && lines[0].contains("  full  933 files  "),
        "{stdout}"
    );
    // It wrote into the copy under TMPDIR, and the demo in the repository is untouched.
    assert!(
        lines[0].contains(&tmp.path().display().to_string()),
        "{stdout}"
    );
    assert!(
        !root.join("fixtures/demo/kc-backups").exists()
            && !root.join("fixtures/demo/.kc.lock").exists()
    );
}
