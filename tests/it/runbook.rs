//! The README's maintenance-window runbook, run line by line as written on a copy of
//! fixtures/demo, then its undo block; and every tool's completions and man pages.
//!
//! `cargo test --workspace` has built every binary; their directory goes first on PATH, so the
//! lines run unchanged. Two lines cannot run here and are skipped: `systemctl` (there is no
//! server) and `export KC_SERVER=…` (the copy's path is exported instead).

use std::path::{Path, PathBuf};
use std::process::Command;

const TOOLS: [&str; 6] = [
    "kc-backup",
    "kc-rename-user",
    "kc-bulk-import",
    "kc-orphan-mailbox-finder",
    "kc-user",
    "kc-store",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin_dir() -> PathBuf {
    let bin = assert_cmd::cargo::cargo_bin("kc-backup");
    for tool in TOOLS {
        let path = bin.with_file_name(tool);
        assert!(
            path.exists(),
            "{} is built by `cargo test --workspace`",
            path.display()
        );
    }
    bin.parent().expect("target/<profile>").to_path_buf()
}

/// The `sh` blocks that follow a `<!-- runbook: … -->` line, in order.
fn runbook_blocks(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut rest = readme;
    while let Some(at) = rest.find("<!-- runbook:") {
        rest = &rest[at..];
        let start = rest.find("```sh\n").expect("a sh block follows the marker") + 6;
        let end = start + rest[start..].find("\n```").expect("the block ends");
        blocks.push(
            rest[start..end]
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect(),
        );
        rest = &rest[end..];
    }
    blocks
}

struct Runner {
    path: String,
    server: PathBuf,
}

impl Runner {
    /// Runs one line with `sh`, as an admin would type it; returns its exit code and output.
    fn line(&self, line: &str) -> (i32, String, String) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(repo())
            .env("PATH", &self.path)
            .env("KC_SERVER", &self.server)
            .output()
            .expect("sh runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn run_all(&self, lines: &[String], after: &mut dyn FnMut(&str)) {
        for line in lines {
            if line.starts_with("systemctl ") || line.starts_with("export KC_SERVER=") {
                continue;
            }
            let (code, stdout, stderr) = self.line(line);
            // The report's exit code says it found something: the demo has planted findings.
            let want = if line == "kc-orphan-mailbox-finder" {
                1
            } else {
                0
            };
            assert_eq!(code, want, "{line}\nstdout:\n{stdout}\nstderr:\n{stderr}");
            after(line);
        }
    }
}

fn copy(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(ok.success());
}

#[test]
fn the_readme_runbook_runs_as_written_and_undo_walks_back() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let blocks = runbook_blocks(&readme);
    assert_eq!(
        blocks.len(),
        3,
        "the runbook, its undo block, the backup examples"
    );
    for tool in TOOLS {
        assert!(
            blocks[0].iter().any(|l| l.starts_with(&format!("{tool} "))),
            "the runbook uses {tool}"
        );
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = tmp.path().join("kerio");
    copy(&repo().join("fixtures/demo"), &server);
    let runner = Runner {
        path: format!(
            "{}:{}",
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
        server: server.clone(),
    };
    let after_rename = tmp.path().join("after-rename");
    runner.run_all(&blocks[0], &mut |line| {
        if line == "kc-rename-user rstewart@example.com robert.stewart" {
            copy(&server, &after_rename);
        }
    });

    // What the runbook did.
    let mail = server.join("store/mail");
    assert!(!mail.join("example.org/olduser").exists(), "archived");
    assert!(
        mail.join("example.com/former.employee").is_dir(),
        "another domain's orphan stays"
    );
    let config = kc_core::config::Config::load(&server).expect("config");
    let jane = config.user("jseller", "example.com").expect("imported");
    assert_eq!(
        (jane.groups(), jane.quota_storage()),
        ("sales", "1073741824"),
        "the row's groups win over the template's; the template's quota applies"
    );
    assert!(config.user("kbuyer", "example.com").is_some());
    assert!(config.user("rstewart", "example.com").is_none());
    assert!(config.user("robert.stewart", "example.com").is_some());
    assert!(mail.join("example.com/robert.stewart").is_dir());
    assert!(
        !config
            .user("tnovak", "example.com")
            .expect("kept")
            .enabled()
    );
    assert!(config.user("dtaylor", "example.com").is_none());
    assert!(
        mail.join("example.com/lhill/Deleted mailbox \u{2014} dtaylor@example.com/INBOX")
            .is_dir()
    );
    let backups: Vec<String> = std::fs::read_dir(server.join("kc-backups"))
        .expect("backups")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.gz"))
        .collect();
    assert_eq!(
        backups.iter().filter(|n| n.starts_with('F')).count(),
        1,
        "{backups:?}"
    );
    assert_eq!(
        backups.iter().filter(|n| n.starts_with('P')).count(),
        5,
        "one per change: archive, import, rename, disable, remove: {backups:?}"
    );

    // The undo block takes back the last two changes: the install is as after the rename.
    runner.run_all(&blocks[1], &mut |_| {});
    kc_testkit::compare_trees(&after_rename, &server, &kc_testkit::TOOLKIT_FILES)
        .expect("back to the state after the rename, byte for byte");

    // The backup examples: a differential, one user restored elsewhere, the configs in place.
    let restored = Path::new("/tmp/kc-restore-lhill");
    let _ = std::fs::remove_dir_all(restored);
    let spoil = server.join("users.cfg");
    runner.run_all(&blocks[2], &mut |line| {
        if line.starts_with("kc-backup create --kind diff") {
            // Spoiled after the differential: the in-place restore must bring it back.
            std::fs::write(&spoil, b"<config/>").expect("spoil users.cfg");
        }
    });
    kc_testkit::compare_trees(
        &after_rename.join("store/mail/example.com/lhill"),
        &restored.join("store/mail/example.com/lhill"),
        &[],
    )
    .expect("lhill's mailbox restored whole");
    assert!(!restored.join("store/mail/example.com/tnovak").exists());
    kc_testkit::compare_trees(&after_rename, &server, &kc_testkit::TOOLKIT_FILES)
        .expect("the configs restored in place, the rest untouched");
    std::fs::remove_dir_all(restored).expect("clean up");
}

#[test]
fn the_install_commands_name_real_crates() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let line = readme
        .lines()
        .find(|l| {
            l.starts_with("for t in ") && l.contains("cargo install --locked --path crates/$t")
        })
        .expect("the install line");
    let list = line["for t in ".len()..line.find("; do").expect("; do")].trim();
    let crates: Vec<&str> = list.split_whitespace().collect();
    assert_eq!(crates.len(), TOOLS.len());
    for c in crates {
        let manifest = std::fs::read_to_string(repo().join(format!("crates/{c}/Cargo.toml")))
            .expect("the crate exists");
        assert!(
            manifest.contains(&format!("name = \"kc-{c}\"")),
            "crates/{c} builds kc-{c}"
        );
    }
}

#[test]
fn every_tool_generates_completions_and_a_man_page() {
    let dir = bin_dir();
    for tool in TOOLS {
        let bin = dir.join(tool);
        for shell in ["bash", "zsh", "fish"] {
            let out = Command::new(&bin)
                .args(["completions", shell])
                .output()
                .expect("runs");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{tool} completions {shell}");
            assert!(text.contains(tool), "{tool} completions {shell}: {text}");
        }
        let out = Command::new(&bin).arg("man").output().expect("runs");
        let man = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(man.contains(&format!(".TH {tool} 1")), "{tool}: {man}");
        let out = Command::new(&bin).arg("--version").output().expect("runs");
        let version = String::from_utf8_lossy(&out.stdout);
        assert!(
            version.starts_with(&format!("{tool} {} (", env!("CARGO_PKG_VERSION"))),
            "{version}"
        );
        let out = Command::new(&bin).arg("--help").output().expect("runs");
        let help = String::from_utf8_lossy(&out.stdout);
        for part in ["Example", "Exit codes: 0", "completions bash|zsh|fish"] {
            assert!(help.contains(part), "{tool} --help lacks {part:?}:\n{help}");
        }
    }
}

/// The subcommands a tool's `--help` lists (clap's `help` aside).
fn subcommands(bin: &Path) -> Vec<String> {
    let out = Command::new(bin).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some(at) = help.find("\nCommands:\n") else {
        return Vec::new();
    };
    help[at + "\nCommands:\n".len()..]
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every `name(1)` a page refers to, its roff escapes undone.
fn page_references(page: &str) -> Vec<String> {
    let text = page
        .replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fR", "");
    text.match_indices("(1)")
        .map(|(at, _)| {
            let before = &text[..at];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(0, |i| i + 1);
            before[start..].to_owned()
        })
        .collect()
}

#[test]
fn man_dir_writes_a_page_per_subcommand_and_every_reference_is_made() {
    let dir = bin_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let man1 = tmp.path().join("man1");
    for tool in TOOLS {
        let out = Command::new(dir.join(tool))
            .args(["man", "--dir"])
            .arg(&man1)
            .output()
            .expect("runs");
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "{tool}: {out:?}"
        );
        let subs = subcommands(&dir.join(tool));
        if tool == "kc-backup" || tool == "kc-user" {
            assert!(subs.len() >= 4, "{tool}: {subs:?}");
        }
        if tool == "kc-store" {
            assert_eq!(subs, ["check", "reindex"]);
        }
        for sub in subs {
            let page = man1.join(format!("{tool}-{sub}.1"));
            assert!(page.exists(), "{} is made", page.display());
        }
        // `<tool> man` (the README's command) prints the tool's own page.
        let out = Command::new(dir.join(tool))
            .arg("man")
            .output()
            .expect("runs");
        let page = std::fs::read(man1.join(format!("{tool}.1"))).expect("the tool's page");
        assert_eq!(out.stdout, page, "{tool} man");
    }
    let mut made: Vec<String> = std::fs::read_dir(&man1)
        .expect("man1")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(
        made,
        [
            "kc-backup-changes.1",
            "kc-backup-create.1",
            "kc-backup-list.1",
            "kc-backup-restore.1",
            "kc-backup-undo.1",
            "kc-backup-verify.1",
            "kc-backup.1",
            "kc-bulk-import.1",
            "kc-orphan-mailbox-finder.1",
            "kc-rename-user.1",
            "kc-store-check.1",
            "kc-store-reindex.1",
            "kc-store.1",
            "kc-user-disable.1",
            "kc-user-enable.1",
            "kc-user-list.1",
            "kc-user-remove.1",
            "kc-user.1",
        ]
    );
    let read = |name: &str| std::fs::read_to_string(man1.join(name)).expect("a page");
    // The flags an admin looks for on a subcommand's page, as option entries.
    for (page, flags) in [
        (
            "kc-backup-restore.1",
            &["to", "in\\-place", "mask", "user"][..],
        ),
        ("kc-backup-create.1", &["kind", "compression"]),
        ("kc-backup-undo.1", &["last", "force"]),
        (
            "kc-user-remove.1",
            &["mailbox", "purge\\-settings", "dry\\-run"],
        ),
    ] {
        let text = read(page);
        let options = &text[text.find(".SH OPTIONS").expect("an OPTIONS section")..];
        for flag in flags {
            let entry = format!("\\fB\\-\\-{flag}\\fR");
            assert!(options.contains(&entry), "{page} lacks --{flag}:\n{text}");
        }
    }
    for name in &made {
        let text = read(name);
        for reference in page_references(&text) {
            assert!(
                made.contains(&format!("{reference}.1")),
                "{name} refers to {reference}(1), which is not made"
            );
        }
    }
    let main = read("kc-backup.1");
    let see_also = &main[main.find(".SH \"SEE ALSO\"").expect("a SEE ALSO")..];
    let named = page_references(see_also);
    assert_eq!(
        named,
        [
            "kc-backup-create",
            "kc-backup-list",
            "kc-backup-changes",
            "kc-backup-verify",
            "kc-backup-restore",
            "kc-backup-undo",
            "kc-rename-user",
            "kc-bulk-import",
            "kc-orphan-mailbox-finder",
            "kc-user",
            "kc-store",
        ]
    );
    assert_eq!(page_references(&read("kc-user-remove.1")), ["kc-user"]);
    assert_eq!(page_references(&read("kc-store-reindex.1")), ["kc-store"]);
}

#[test]
fn every_flag_of_every_tool_is_in_its_docs_page() {
    let dir = bin_dir();
    for tool in TOOLS {
        let page = std::fs::read_to_string(repo().join(format!("docs/{tool}.md")))
            .expect("a docs page per tool");
        let common =
            std::fs::read_to_string(repo().join("docs/README.md")).expect("docs/README.md");
        let mut helps = vec![
            Command::new(dir.join(tool))
                .arg("--help")
                .output()
                .expect("runs"),
        ];
        let subs: &[&str] = match tool {
            "kc-backup" => &["create", "list", "verify", "restore", "undo"],
            "kc-user" => &["disable", "enable", "remove", "list"],
            "kc-store" => &["check", "reindex"],
            _ => &[],
        };
        for sub in subs {
            helps.push(
                Command::new(dir.join(tool))
                    .args([sub, "--help"])
                    .output()
                    .expect("runs"),
            );
        }
        for help in helps {
            let text = String::from_utf8_lossy(&help.stdout).into_owned();
            for flag in text
                .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .map(|w| {
                    w.split('=')
                        .next()
                        .unwrap_or(w)
                        .trim_end_matches(['.', ')', ':'])
                })
            {
                if flag == "--help" {
                    continue;
                }
                assert!(
                    page.contains(flag) || common.contains(flag),
                    "docs/{tool}.md does not describe {flag}"
                );
            }
        }
    }
}
