//! Every tool on an install in the shapes real ones have, all at once (issue #13): the store on
//! another disk with a stale `<root>/store` left behind, users.cfg and mailserver.cfg symlinked
//! into a Docker volume, a BOM and CRLF line endings, mailserver.cfg as Python ElementTree writes
//! it and users.cfg as .NET XDocument does (`<list name="Alias" />`), and the server-wide
//! `mail/#public` with `acl.fld` and `sub.fld` files naming other users.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use kc_testkit::{Options, Scratch, Shapes};

fn all_shapes() -> Options {
    Options {
        shapes: Shapes {
            store_outside: true,
            symlink_configs: true,
            symlink_store: false,
            bom_crlf: true,
            elementtree: true,
            global_public: true,
        },
        ..Options::demo()
    }
}

fn run(s: &Scratch, tool: &str, args: &[&str]) -> Output {
    s.tool(tool).args(args).output().expect("runs")
}

fn ok(s: &Scratch, tool: &str, args: &[&str]) -> Output {
    let out = run(s, tool, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// (kind, domain, name) of every finding of the orphan report.
fn findings(s: &Scratch) -> BTreeSet<(String, String, String)> {
    let out = run(s, "kc-orphan-mailbox-finder", &["--json"]);
    assert_eq!(out.status.code(), Some(1), "findings: exit 1");
    json_lines(&out)
        .iter()
        .map(|f| {
            let text = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
            (text("kind"), text("domain"), text("name"))
        })
        .collect()
}

fn is_link(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
}

#[test]
fn every_tool_works_on_an_install_in_every_real_shape_and_undo_brings_it_all_back() {
    let s = Scratch::new(&all_shapes());
    let store = s.summary.paths.store.clone().expect("the store is outside");
    let volume = s.summary.paths.volume.clone().expect("a volume");
    let stale = s.root.join("store");
    assert!(stale.is_dir() && is_link(&s.root.join("users.cfg")));

    // The report: exactly what the plain demo plants, nothing from the stale tree.
    let plain = Scratch::new(&Options::demo());
    let found = findings(&s);
    assert_eq!(found, findings(&plain));
    assert!(
        !found
            .iter()
            .any(|(_, d, n)| d.contains("stale") || n.contains("stale")),
        "{found:?}"
    );

    // The list reads the real store: mailbox sizes are the real store's, not the stale one's.
    let listed = json_lines(&ok(&s, "kc-user", &["list", "--json"]));
    let anelson = listed
        .iter()
        .find(|r| r["name"] == "anelson")
        .expect("anelson listed");
    let real = kc_core::store::mailbox_stats(&store.join("mail/example.com/anelson")).expect("du");
    assert_eq!(anelson["mailbox_bytes"], real.bytes);

    // A rename, a disable and an import.
    let out = ok(
        &s,
        "kc-rename-user",
        &["anelson@example.com", "anna.nelson"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("kc-rename-user: note: using the store "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&s, "kc-user", &["disable", "pnelson@example.org"]);
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/new-staff.csv");
    ok(
        &s,
        "kc-bulk-import",
        &[csv.to_str().expect("utf-8"), "--domain", "example.com"],
    );

    // The links are still links; their targets got the changes, in their own bytes' style.
    for cfg in ["users.cfg", "mailserver.cfg"] {
        assert!(is_link(&s.root.join(cfg)), "{cfg} is still a link");
    }
    let users = std::fs::read(volume.join("users.cfg")).expect("users.cfg");
    assert!(users.starts_with(b"\xEF\xBB\xBF"), "the BOM is kept");
    let text = String::from_utf8_lossy(&users);
    assert_eq!(
        text.matches('\n').count(),
        text.matches("\r\n").count(),
        "CRLF kept on every line"
    );
    assert_eq!(
        text.matches("<list name=\"Alias\"").count(),
        1,
        "one Alias list"
    );
    assert!(text.contains("<variable name=\"Name\">anna.nelson</variable>"));
    assert!(text.contains("<variable name=\"Name\">jseller</variable>"));
    let pristine_volume = &s
        .siblings
        .iter()
        .find(|(live, _)| *live == volume)
        .expect("the volume has a pristine copy")
        .1;
    let msc_before = std::fs::read(pristine_volume.join("mailserver.cfg")).expect("before");
    let msc_now = std::fs::read(volume.join("mailserver.cfg")).expect("now");
    if msc_before != msc_now {
        assert!(msc_now.starts_with(b"\xEF\xBB\xBF") && !msc_now.starts_with(b"\xEF\xBB\xBF<?xml"));
    }

    // Folder sharing follows the rename, in the public folders and in every subscription.
    let acl = std::fs::read_to_string(store.join("mail/#public/acl.fld")).expect("acl.fld");
    assert!(
        acl.contains("anna.nelson@example.com") && !acl.contains("anelson@example.com"),
        "{acl}"
    );
    for entry in walkdir::WalkDir::new(store.join("mail"))
        .into_iter()
        .flatten()
    {
        if entry.file_name() == "sub.fld" {
            let sub = std::fs::read_to_string(entry.path()).expect("sub.fld");
            assert!(
                !sub.lines().any(|l| l.contains("~anelson@example.com")),
                "{}: {sub}",
                entry.path().display()
            );
        }
    }
    assert!(store.join("mail/example.com/anna.nelson").is_dir());

    // A full backup of it all, verified.
    ok(&s, "kc-backup", &["create"]);
    ok(&s, "kc-backup", &["verify", "latest"]);
    ok(&s, "kc-backup", &["verify", "latest", "--against-live"]);

    // The stale tree was never read or written.
    kc_testkit::compare_trees(&s.before.join("store"), &stale, &[]).expect("stale store untouched");

    // Undo, newest first, brings the root, the store and the volume back byte for byte.
    for _ in 0..3 {
        ok(&s, "kc-backup", &["undo", "--last"]);
    }
    s.assert_unchanged();
    for cfg in ["users.cfg", "mailserver.cfg"] {
        assert!(
            is_link(&s.root.join(cfg)),
            "{cfg} is still a link after undo"
        );
    }

    // An in-place restore of the full backup (taken after the three changes) writes through
    // the links too, and is itself undone.
    ok(&s, "kc-backup", &["restore", "latest", "--in-place"]);
    assert!(is_link(&s.root.join("users.cfg")));
    let restored = std::fs::read_to_string(volume.join("users.cfg")).expect("users.cfg");
    assert!(restored.contains("<variable name=\"Name\">anna.nelson</variable>"));
    kc_testkit::compare_trees(&s.before.join("store"), &stale, &[]).expect("stale store untouched");
    ok(&s, "kc-backup", &["undo", "--last"]);
    s.assert_unchanged();
    assert!(is_link(&s.root.join("users.cfg")) && is_link(&s.root.join("mailserver.cfg")));
}
